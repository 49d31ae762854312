"""Celery's queue settings reach the RabbitMQ broker through the app (``Celery(...,
task_queues=..., task_queue_max_priority=...)``), as Celery users declare them: kombu's own
``Queue``/``Exchange`` objects, celeriac's own (``celeriac.Queue``) and the dict form."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kombu
import pytest

import celeriac
from celeriac import Celery
from celeriac.brokers.amqp import AMQPBroker
from tests.amqp import support
from tests.amqp.test_amqp_broker import delete_exchange

EVENTUALLY_S = 5.0


@pytest.fixture
def apps() -> Iterator[list[Celery]]:
    made: list[Celery] = []
    yield made
    for app in made:
        broker = app.broker
        app.close()
        assert isinstance(broker, AMQPBroker)
        support.cleanup(broker)


def _app(apps: list[Celery], **settings: object) -> Celery:
    app = Celery("amqpsettings", broker=support.amqp_url(), backend="memory://", **settings)
    apps.append(app)
    return app


@pytest.mark.parametrize("entities", [kombu, celeriac], ids=["kombu", "celeriac"])
def test_task_queues_with_kombu_objects_route_through_their_exchange(
    apps: list[Celery], entities: Any
) -> None:
    media = entities.Exchange(support.unique("media"), type="topic")
    video = entities.Queue(support.unique("video"), media, routing_key="media.video",
                           message_ttl=600, max_length=1000)
    everything = entities.Queue(support.unique("all-media"), media, routing_key="media.#")
    app = _app(apps, task_queues=[video, everything])
    broker = app.broker
    broker.consume([everything.name], 1, 0)  # declared and bound before the send
    app.send_task("clips.encode", (1,), queue=video.name)
    [got] = broker.consume([video.name], 10, EVENTUALLY_S)
    [copy] = broker.consume([everything.name], 10, EVENTUALLY_S)
    assert got.envelope.task_name == copy.envelope.task_name == "clips.encode"
    broker.ack([got, copy])
    arguments = support.queue_info(support.run_vhost(), video.name)["arguments"]
    assert '{"x-message-ttl",600000}' in arguments and '{"x-max-length",1000}' in arguments
    delete_exchange(broker.url, media.name)


def test_task_queue_max_priority_from_the_app_orders_by_priority(apps: list[Celery]) -> None:
    app = _app(apps, task_queue_max_priority=9)
    assert app.broker.capabilities.priorities is True
    queue = support.unique("prio")
    low = app.send_task("t.low", queue=queue, priority=1)
    high = app.send_task("t.high", queue=queue, priority=8)
    got = app.broker.consume([queue], 2, EVENTUALLY_S)
    assert [d.task_id for d in got] == [high.id, low.id]
    app.broker.ack(got)
    assert "x-max-priority" in support.queue_info(support.run_vhost(), queue)["arguments"]


def test_old_uppercase_names_reach_the_broker_too(apps: list[Celery]) -> None:
    name, exchange = support.unique("dict"), support.unique("direct-x")
    app = Celery("amqpsettings", broker=support.amqp_url(), backend="memory://")
    apps.append(app)
    app.conf.update(CELERY_QUEUES={name: {"exchange": exchange, "routing_key": "k"}})
    sent = app.send_task("t.one", queue=name)
    [got] = app.broker.consume([name], 10, EVENTUALLY_S)
    assert got.task_id == sent.id
    app.broker.ack([got])
    delete_exchange(app.broker.url, exchange)
