"""``worker --without-heartbeat`` (Celery's): the worker sends no periodic worker-heartbeat
events; worker-online and task events still go out."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from celeriac import Celery
from celeriac.worker import Worker


@pytest.mark.parametrize("without", [True, False])
def test_without_heartbeat_sends_no_periodic_heartbeats(app: Celery, without: bool) -> None:
    receiver = app.events.Receiver(app.connection())
    receiver.open()
    worker = Worker(app, pool="threads", concurrency=1, hostname="hb@test", send_events=True,
                    without_heartbeat=without, install_signal_handlers=False)
    worker.events.freq_s = 0.2  # several periods within the test
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        # long enough for five heartbeats when they are on
        # (wakeup=False: a capture's wake-up asks every worker for one heartbeat on purpose)
        events: list[dict[str, Any]] = []
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            try:
                events.extend(receiver.itercapture(timeout=0.3, wakeup=False))
            except TimeoutError:
                pass
    finally:
        worker.stop()
        thread.join(10)
    types = [e["type"] for e in events]
    assert "worker-online" in types
    assert ("worker-heartbeat" not in types) is without, types
