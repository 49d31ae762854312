"""A bulk send through a broker outage on real Redis: batches are written before the previous
batch's replies are read (``Broker.publish_stored(wait=False)``), so a connection that drops
mid-send leaves batches unconfirmed. Every message must still be stored (at least once), and
the producer's connection must stay in step for the next publish."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from celeriac import Celery
from celeriac.brokers import create_broker
from tests.redis.conftest import OUTAGE_DB
from tests.redis.proxy import Proxy
from tests.redis.support import HOST, PORT


def test_bulk_send_rides_through_an_outage(proxy: Proxy, outage_prefix: str) -> None:
    app = Celery("bulkblip",
                 broker=f"redis://127.0.0.1:{proxy.port}/{OUTAGE_DB}?global_keyprefix={outage_prefix}")
    app.task(name="bulkblip.echo")(lambda i: i)
    count, cut_at = 6000, 2500
    shared: dict[str, Any] = {}
    timers: list[threading.Timer] = []

    def calls() -> Iterator[tuple[str, Any, Any, Any]]:
        for i in range(count):
            if i == cut_at:  # two batches written, the third being encoded
                proxy.down()
                timer = threading.Timer(1.0, proxy.up)
                timers.append(timer)
                timer.start()
            yield ("bulkblip.echo", (i,), None, shared)

    try:
        results = app.send_many(calls())
        after = app.send_task("bulkblip.echo", (-1,))  # the connection is in step again
    finally:
        for timer in timers:
            timer.join()
        app.close()
    assert timers, "the outage must fall inside the send"

    direct = create_broker(f"redis://{HOST}:{PORT}/{OUTAGE_DB}?global_keyprefix={outage_prefix}")
    try:
        stored: list[str] = []
        while batch := direct.consume(["celery"], 1000, 0.5):
            stored.extend(d.task_id for d in batch)
            direct.ack(batch)
    finally:
        direct.close()
    assert set(stored) == {r.id for r in results} | {after.id}
    assert len(stored) >= count + 1  # a batch sent again may be stored twice, never lost
