"""A finished task's result is never lost because a later task kills the worker: on the
solo pool (tasks run in the worker's own process) the results of the tasks before have left
the process before the next task starts, as its early ack has. Checked with a task that
SIGKILLs its own worker in the middle of a prefetched batch, on each broker/backend pair
where results and acks can leave together or apart."""

from __future__ import annotations

import signal
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
    import os, signal
    from celeriac import Celery

    app = Celery("killing", broker=os.environ["KILLING_BROKER"],
                 backend=os.environ["KILLING_BACKEND"])

    @app.task
    def add(x, y):
        return x + y

    @app.task
    def kill_my_worker():
        os.kill(os.getpid(), signal.SIGKILL)
    """
)

QUICK = 40


@pytest.fixture(params=["redis", "redis-apart", "sqlite"])
def killing(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    kind = request.param
    with broker_url(kind.split("-")[0], tmp_path) as broker:
        if kind == "redis-apart":  # results on another Redis database than the broker
            backend_cm = backend_url("redis", tmp_path)
        else:
            backend_cm = backend_url(kind, tmp_path, broker)
        with backend_cm as backend:
            yield from task_module("killing", TASKS, tmp_path, monkeypatch, {
                "KILLING_BROKER": broker, "KILLING_BACKEND": backend})


@pytest.mark.slow
def test_results_of_earlier_tasks_survive_a_task_that_kills_the_worker(
    killing: Any, tmp_path: Path
) -> None:
    mod = killing
    quick = [mod.add.delay(i, i) for i in range(QUICK)]
    mod.kill_my_worker.delay()
    after = [mod.add.delay(i, 1) for i in range(5)]
    # One claim takes every message, so all of them sit in the worker's reserve together.
    proc = start_worker(tmp_path, worker_code("killing", pool="solo", prefetch_multiplier=64))
    status = proc.wait(60)
    assert status == -signal.SIGKILL, (tmp_path / "worker.log").read_text()
    stored = mod.app.backend.get_state
    lost = [r.id for r in quick if stored(r.id) != states.SUCCESS]
    assert lost == [], f"{len(lost)} of {QUICK} finished tasks have no stored result"
    # The tasks after the killer were never started: still waiting, not lost.
    assert all(stored(r.id) is None for r in after)
