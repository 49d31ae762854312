"""Warm and cold shutdown of a real worker process on the SQLite broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
    "import os, sys; sys.path.insert(0, {root!r}); import stopper; "
    "stopper.app.conf.worker_early_ack_batch = int(os.environ.get('EAB', '1')); "
    "from celeriac.worker import Worker; "
    "sys.exit(Worker(stopper.app, pool='solo', prefetch_multiplier=8).start())"
)


@pytest.fixture
def stopper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    (tmp_path / "stopper.py").write_text(TASKS)
    monkeypatch.setenv("STOPPER_URL", f"sqlite:///{tmp_path / 'broker.db'}")
    monkeypatch.syspath_prepend(str(tmp_path))
    import stopper as module  # type: ignore[import-not-found]

    yield module
    sys.modules.pop("stopper", None)


def _worker(root: Path, early_ack_batch: int = 1) -> subprocess.Popen[bytes]:
    log = open(root / "worker.log", "ab")  # noqa: SIM115 - closed after the process ends
    env = dict(os.environ, EAB=str(early_ack_batch))
    proc = subprocess.Popen([sys.executable, "-c", WORKER.format(root=str(root))],
                            cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    return proc


def _wait(predicate: Callable[[], object], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


@pytest.mark.parametrize("early_ack_batch", [1, 8])
def test_warm_shutdown_finishes_running_and_returns_prefetched(
    stopper: object, tmp_path: Path, early_ack_batch: int
) -> None:
    mod = stopper
    first = mod.nap.delay(str(tmp_path), 1.5)  # type: ignore[attr-defined]
    rest = [mod.nap.delay(str(tmp_path), 0) for _ in range(5)]  # type: ignore[attr-defined]
    proc = _worker(tmp_path, early_ack_batch)
    _wait(lambda: (tmp_path / f"started-{first.id}").exists())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert first.get(timeout=5) == "rested"
    log = (tmp_path / "worker.log").read_text()
    assert "Warm shutdown" in log
    # the prefetched messages went back to the queue: nothing lost, nothing ran
    assert all(r.state == "PENDING" for r in rest)
    assert mod.app.broker.queue_size("celery") == 5  # type: ignore[attr-defined]
    second = _worker(tmp_path)
    try:
        assert [r.get(timeout=20) for r in rest] == ["rested"] * 5
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0


def test_second_sigterm_is_cold_and_requeues_acks_late(stopper: object, tmp_path: Path) -> None:
    mod = stopper
    long = mod.late_nap.delay(str(tmp_path), 30)  # type: ignore[attr-defined]
    proc = _worker(tmp_path)
    _wait(lambda: (tmp_path / f"started-{long.id}").exists())
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    proc.wait(20)
    assert time.monotonic() - started < 15, "cold shutdown waited for the task"
    assert "Cold shutdown" in (tmp_path / "worker.log").read_text() or os.name != "posix"
    assert long.state == "PENDING"
    assert mod.app.broker.queue_size("celery") == 1  # type: ignore[attr-defined]
