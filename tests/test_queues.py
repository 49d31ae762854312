"""``celeriac.Queue`` / ``celeriac.Exchange``: kombu's declarations without kombu. Each form a
Celery user writes gives the AMQP broker exactly what kombu's own objects give it."""

from __future__ import annotations

from typing import Any

import kombu
import pytest

from celeriac import Exchange, Queue
from celeriac._amqp.topology import spec_of
from celeriac.queues import rabbitmq_arguments
from celeriac.routing import queue_name

FORMS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("default",), {}),
    (("images", "media"), {"routing_key": "image.#"}),
    (("videos", ("EX", "topic")), {"routing_key": "media.video"}),
    (("transient",), {"durable": False}),
    (("bounded",), {"message_ttl": 1.5, "expires": 60, "max_length": 10,
                    "max_length_bytes": 4096}),
    (("both",), {"queue_arguments": {"x-message-ttl": 5, "x-dead-letter-exchange": "dlx"},
                 "message_ttl": 2}),
    (("prio",), {"max_priority": 7}),
    (("quorum",), {"queue_arguments": {"x-queue-type": "quorum"}, "max_priority": 7}),
]


def _build(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) > 1 and isinstance(args[1], tuple):
        name, kind = args[1]
        args = (args[0], module.Exchange(name, type=kind))
    return module.Queue(*args, **kwargs)


@pytest.mark.parametrize(("args", "kwargs"), FORMS)
def test_the_broker_declares_what_kombu_would(args: tuple[Any, ...],
                                              kwargs: dict[str, Any]) -> None:
    ours, theirs = _build(__import__("celeriac"), args, kwargs), _build(kombu, args, kwargs)
    assert spec_of(ours) == spec_of(theirs)
    assert spec_of(ours, max_priority=3) == spec_of(theirs, max_priority=3)
    assert queue_name(ours) == queue_name(theirs) == args[0]


def test_keywords_become_rabbitmq_arguments_and_win() -> None:
    queue = Queue("q", message_ttl=1.5, expires=60, max_length=10, max_length_bytes=4096,
                  queue_arguments={"x-message-ttl": 5, "x-overflow": "reject-publish"})
    assert rabbitmq_arguments(queue) == {
        "x-message-ttl": 1500, "x-expires": 60000, "x-max-length": 10,
        "x-max-length-bytes": 4096, "x-overflow": "reject-publish",
    }
    assert rabbitmq_arguments({"name": "q", "message_ttl": 0.25}) == {"x-message-ttl": 250}
    # what the AMQP broker declares, for kombu's objects too
    assert spec_of(queue).arguments["x-message-ttl"] == 1500
    assert spec_of(kombu.Queue("q", expires=2)).arguments == {"x-expires": 2000}


def test_defaults_and_values() -> None:
    plain = Queue("celery")
    assert plain.exchange is None and plain.routing_key == "celery" and plain.durable
    named = Queue("images", "media")
    assert named.exchange == Exchange("media", type="direct")
    assert Exchange("x", type="").type == "direct"
    assert Queue("a", Exchange("e", type="topic"), "k") == Queue("a", Exchange("e", "topic"), "k")
    assert Queue("a") != Queue("b") and Queue("a") != "a"
    assert "media" in repr(named) and "topic" in repr(Exchange("e", type="topic"))
    assert len({Queue("a"), Queue("a")}) == 1
