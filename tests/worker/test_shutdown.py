"""Warm and cold shutdown of a real worker process on the SQLite broker."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.worker.support import start_worker, task_module, wait_until

TASKS = textwrap.dedent(
    """
    import os, time
    from celeriac import Celery

    app = Celery("stopper", broker=os.environ["STOPPER_URL"])

    @app.task(bind=True)
    def nap(self, marker_dir, seconds):
        open(os.path.join(marker_dir, f"started-{self.request.id}"), "w").close()
        time.sleep(seconds)
        return "rested"

    @app.task(bind=True, acks_late=True)
    def late_nap(self, marker_dir, seconds):
        open(os.path.join(marker_dir, f"started-{self.request.id}"), "w").close()
        time.sleep(seconds)
        return "rested"
    """
)

WORKER = (
    "import os, sys; import stopper; "
    "stopper.app.conf.worker_early_ack_batch = int(os.environ.get('EAB', '1')); "
    "from celeriac.worker import Worker; "
    "sys.exit(Worker(stopper.app, pool='solo', prefetch_multiplier=8).start())"
)


@pytest.fixture
def stopper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from task_module("stopper", TASKS, tmp_path, monkeypatch,
                           {"STOPPER_URL": f"sqlite:///{tmp_path / 'broker.db'}"})


def _worker(root: Path, early_ack_batch: int = 1) -> subprocess.Popen[bytes]:
    return start_worker(root, WORKER, {"EAB": str(early_ack_batch)})


@pytest.mark.parametrize("early_ack_batch", [1, 8])
def test_warm_shutdown_finishes_running_and_returns_prefetched(
    stopper: Any, tmp_path: Path, early_ack_batch: int
) -> None:
    mod = stopper
    first = mod.nap.delay(str(tmp_path), 1.5)
    rest = [mod.nap.delay(str(tmp_path), 0) for _ in range(5)]
    proc = _worker(tmp_path, early_ack_batch)
    wait_until(lambda: (tmp_path / f"started-{first.id}").exists())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert first.get(timeout=5) == "rested"
    log = (tmp_path / "worker.log").read_text()
    assert "Warm shutdown" in log
    # the prefetched messages went back to the queue: nothing lost, nothing ran
    assert all(r.state == "PENDING" for r in rest)
    assert mod.app.broker.queue_size("celery") == 5
    second = _worker(tmp_path)
    try:
        assert [r.get(timeout=20) for r in rest] == ["rested"] * 5
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0


def test_second_sigterm_is_cold_and_requeues_acks_late(stopper: Any, tmp_path: Path) -> None:
    mod = stopper
    long = mod.late_nap.delay(str(tmp_path), 30)
    proc = _worker(tmp_path)
    wait_until(lambda: (tmp_path / f"started-{long.id}").exists())
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    proc.wait(20)
    assert time.monotonic() - started < 15, "cold shutdown waited for the task"
    assert "Cold shutdown" in (tmp_path / "worker.log").read_text() or os.name != "posix"
    assert long.state == "PENDING"
    assert mod.app.broker.queue_size("celery") == 1
