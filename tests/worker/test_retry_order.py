"""A retried task's records arrive in the order its attempts ran: the RETRY record of one
attempt is stored before the message of the next attempt is published, so a quick retry
can never finish first and have its SUCCESS overwritten by the older RETRY (seen as a task
left in RETRY on prefork, where another child ran the retry while the parent still held the
first attempt's record in its batch)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import states
from tests.support.services import backend_url, broker_url
from tests.worker.support import start_worker, task_module, worker_code

TASKS = textwrap.dedent(
    """
    import os, time
    from celeriac import Celery, Task

    app = Celery("retrying", broker=os.environ["RETRYING_BROKER"],
                 backend=os.environ["RETRYING_BACKEND"])

    @app.task(bind=True)
    def flaky(self, i):
        if self.request.retries < 2:
            raise self.retry(exc=ValueError(i), countdown=0)
        return i

    class SlowToRetry(Task):
        def on_retry(self, exc, task_id, args, kwargs, einfo):
            time.sleep(0.5)  # the retry's message is out by now: the next attempt may run

    @app.task(bind=True, base=SlowToRetry)
    def slow_on_retry(self, i):
        if self.request.retries == 0:
            raise self.retry(countdown=0)
        return i

    @app.task(bind=True)
    def quietly_flaky(self, i):
        if self.request.retries == 0:
            self.retry(countdown=0, throw=False)  # the message is sent; this run succeeds
        return i
    """
)

TASK_COUNT = 400


@pytest.fixture(params=["sqlite", "redis"])
def retrying(request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    kind = request.param
    with broker_url(kind, tmp_path) as broker, backend_url(kind, tmp_path, broker) as backend:
        yield from task_module("retrying", TASKS, tmp_path, monkeypatch, {
            "RETRYING_BROKER": broker, "RETRYING_BACKEND": backend})


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_every_retried_task_ends_in_success_not_in_its_older_retry(
    retrying: Any, tmp_path: Path, pool: str
) -> None:
    mod = retrying
    results = [mod.flaky.delay(i) for i in range(TASK_COUNT)]
    quiet = [mod.quietly_flaky.delay(i) for i in range(TASK_COUNT // 4)]
    slow: list[Any] = []
    proc = start_worker(tmp_path, worker_code("retrying", pool=pool, concurrency=2))
    try:
        assert [r.get(timeout=60) for r in results] == list(range(TASK_COUNT))
        assert [r.get(timeout=60) for r in quiet] == list(range(TASK_COUNT // 4))
        # One at a time, so a child is free to run the retry while the first attempt's
        # on_retry still runs in the other.
        for i in range(2):
            slow.append(mod.slow_on_retry.delay(i))
            assert slow[-1].get(timeout=60) == i
    finally:
        proc.terminate()
        assert proc.wait(60) == 0, (tmp_path / "worker.log").read_text()
    # The worker has stopped: every record it was ever going to store is stored.
    stored = mod.app.backend.get_state  # not r.state: a result caches the SUCCESS it got
    late = [r.id for r in results + quiet + slow if stored(r.id) != states.SUCCESS]
    assert late == [], f"{len(late)} tasks ended in an older attempt's state"
    assert mod.app.broker.queue_size("celery") == 0
