"""``--max-memory-per-child`` (issue 11 item 5): a prefork child whose resident memory is
over the limit after a task is replaced; the task's result is kept and the next task runs
in a fresh child. Threads and solo run tasks in the worker's process: they warn once."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.brokers import memory as memory_broker
from celeriac.worker import Worker
from tests.worker.support import start_worker, task_module, worker_code

#: KiB; a fresh child of the test worker stays well under it (about 20 MB)
LIMIT_KIB = 50_000

TASKS = textwrap.dedent(
    """
    import os
    from celeriac import Celery

    app = Celery("hungry", broker=os.environ["HUNGRY_URL"])
    KEPT = []

    @app.task
    def whoami(i):
        return [i, os.getpid()]

    @app.task
    def hog(i):
        KEPT.append(bytearray(100 * 1024 * 1024))  # touched: resident, and kept
        KEPT[-1][::4096] = b"x" * len(KEPT[-1][::4096])
        return [i, os.getpid()]
    """
)


@pytest.fixture
def hungry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from task_module("hungry", TASKS, tmp_path, monkeypatch,
                           {"HUNGRY_URL": f"sqlite:///{tmp_path / 'broker.db'}"})


def test_resident_memory_is_read_in_kib() -> None:
    # In a fresh process: a long test run's heap may hand back pages that are resident already.
    code = (
        "from celeriac.worker.pools.prefork import resident_kib\n"
        "before = resident_kib()\n"
        "block = bytearray(30 * 1024 * 1024)\n"
        "block[::4096] = b'x' * len(block[::4096])\n"
        "print(before, resident_kib())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[2])
    before, after = map(int, done.stdout.split())
    assert after - before >= 25 * 1024
    assert before > 1024


@pytest.mark.slow
def test_a_child_over_the_limit_is_replaced_after_its_task(hungry: Any, tmp_path: Path) -> None:
    proc = start_worker(tmp_path, worker_code("hungry", pool="prefork", concurrency=1,
                                              max_memory_per_child=LIMIT_KIB))
    try:
        first = [hungry.whoami.delay(i).get(timeout=30) for i in range(3)]
        hogged = hungry.hog.delay(3).get(timeout=30)
        after = [hungry.whoami.delay(i).get(timeout=30) for i in range(4, 7)]
        batch = [hungry.hog.delay(i) for i in range(7, 10)]
        batch_values = [r.get(timeout=30) for r in batch]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    log_text = (tmp_path / "worker.log").read_text()
    assert code == 0, log_text
    pids_before = {pid for _, pid in first}
    assert len(pids_before) == 1, "under the limit: the same child runs every task"
    assert hogged == [3, first[0][1]], "the task over the limit kept its result"
    pids_after = {pid for _, pid in after}
    assert len(pids_after) == 1
    assert pids_after.isdisjoint(pids_before), "the next task ran in a fresh child"
    assert [i for i, _ in batch_values] == [7, 8, 9]
    assert len({pid for _, pid in batch_values}) == 3, "one fresh child per hog"
    assert log_text.count("is over the memory limit") == 4, log_text
    assert "WorkerLostError" not in log_text


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_threads_and_solo_warn_once_that_it_does_not_apply(
    pool: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"memory://mem-{uuid.uuid4().hex}"
    app = Celery("t", broker=url, backend=url)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    try:
        results = [add.delay(i, i) for i in range(3)]
        with caplog.at_level(logging.WARNING, logger="celeriac.worker"):
            Worker(app, pool=pool, burst=True, max_memory_per_child=1,
                   install_signal_handlers=False).start()
        assert [r.get(timeout=5) for r in results] == [0, 2, 4]
        warnings = [r.getMessage() for r in caplog.records
                    if "max-memory-per-child" in r.getMessage()]
        assert warnings == [f"worker: --max-memory-per-child does not apply to the {pool} pool "
                            "(its tasks run in the worker's own process); ignored"]
    finally:
        app.close()
        memory_broker.reset(url)
