"""``revoke(terminate=True)`` stops a running task on every pool (issue 8, item 7): prefork
signals the child, threads and solo raise in the task's thread. The task ends REVOKED and the
worker goes on with the next task."""

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

    app = Celery("stoppable", broker=os.environ["STOPPABLE_URL"])

    @app.task(bind=True)
    def forever(self, marker_dir):
        open(os.path.join(marker_dir, f"started-{self.request.id}"), "w").close()
        for _ in range(600):
            time.sleep(0.05)
        return "finished"

    @app.task
    def quick(x):
        return x * 2
    """
)

WORKER = (
    "import sys; sys.path.insert(0, {root!r}); import stoppable; "
    "from celeriac.worker import Worker; "
    "sys.exit(Worker(stoppable.app, pool={pool!r}, concurrency=2).start())"
)


@pytest.fixture
def stoppable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    (tmp_path / "stoppable.py").write_text(TASKS)
    monkeypatch.setenv("STOPPABLE_URL", f"sqlite:///{tmp_path / 'broker.db'}")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("stoppable", None)
    import stoppable as module  # type: ignore[import-not-found]

    yield module
    module.app.close()
    sys.modules.pop("stoppable", None)


def _wait(predicate: Callable[[], object], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pool", "signame"),
    [("prefork", None), ("prefork", "SIGKILL"), ("threads", None), ("solo", None)],
)
def test_revoke_terminate_stops_the_running_task(
    stoppable: object, tmp_path: Path, pool: str, signame: str | None
) -> None:
    mod = stoppable
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER.format(root=str(tmp_path), pool=pool)],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
        )
    try:
        running = mod.forever.delay(str(tmp_path))  # type: ignore[attr-defined]
        _wait(lambda: (tmp_path / f"started-{running.id}").exists())
        running.revoke(terminate=True, signal=signame)
        _wait(lambda: running.state == "REVOKED", timeout_s=10)
        assert mod.quick.delay(21).get(timeout=20) == 42  # type: ignore[attr-defined]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    log_text = log_path.read_text()
    assert code == 0, log_text
    assert "Terminating" in log_text, log_text
