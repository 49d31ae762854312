"""Publishing through a broker outage on real Redis: the producer talks to Redis through a small
TCP proxy that the test closes for ~2 s (refusing and dropping connections, as a restarting
server does) and opens again. The shared server itself is never restarted."""

from __future__ import annotations

import threading
import time

import pytest

from celeriac import Celery
from celeriac.brokers import create_broker
from celeriac.exceptions import BrokerConnectionError
from tests.redis.conftest import OUTAGE_DB
from tests.redis.proxy import Proxy
from tests.redis.support import HOST, PORT


def _app(proxy: Proxy, outage_prefix: str) -> Celery:
    return Celery("blip", broker=f"redis://127.0.0.1:{proxy.port}/{OUTAGE_DB}?global_keyprefix={outage_prefix}")


def test_delay_rides_through_a_two_second_outage_exactly_once(
    proxy: Proxy, outage_prefix: str
) -> None:
    app = _app(proxy, outage_prefix)
    echo = app.task(name="blip.echo")(lambda i: i)
    count = 400
    sent: list[str] = []
    errors: list[BaseException] = []

    def produce() -> None:
        for i in range(count):
            try:
                sent.append(echo.delay(i).id)
            except BaseException as exc:  # every failure is the finding
                errors.append(exc)
            time.sleep(0.005)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        deadline = time.monotonic() + 30
        while len(sent) < count // 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        proxy.down()
        time.sleep(2.0)
        during = len(sent)
        proxy.up()
        producer.join(60)
    finally:
        app.close()
    assert not producer.is_alive()
    assert errors == []
    assert during < count, "the outage must fall inside the run"

    direct = create_broker(f"redis://{HOST}:{PORT}/{OUTAGE_DB}?global_keyprefix={outage_prefix}")
    try:
        assert direct.queue_size("celery") == count
        stored = [d.envelope.task_id for d in direct.consume(["celery"], 2 * count, 1.0)]
    finally:
        direct.close()
    assert sorted(stored) == sorted(sent)


def test_delay_raises_about_the_bound_after_when_the_broker_stays_down(
    proxy: Proxy, outage_prefix: str
) -> None:
    app = _app(proxy, outage_prefix)
    app.conf.task_publish_retry_policy = {"timeout": 1.0}
    echo = app.task(name="blip.echo")(lambda i: i)
    try:
        echo.delay(0)
        proxy.down()
        started = time.monotonic()
        with pytest.raises(BrokerConnectionError):
            echo.delay(1)
        elapsed_s = time.monotonic() - started
    finally:
        app.close()
    assert 1.0 <= elapsed_s < 8.0
