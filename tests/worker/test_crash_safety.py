"""A worker killed with SIGKILL loses nothing: its acks_late task finishes on another worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

TASKS = textwrap.dedent(
    """
    import os, time
    from celeriac import Celery

    app = Celery("crashy", broker=os.environ["CRASHY_URL"])
    app.conf.worker_lease_seconds = 1.0

    @app.task(bind=True, acks_late=True)
    def slow(self, marker_dir):
        with open(os.path.join(marker_dir, f"started-{os.getpid()}"), "w") as fh:
            fh.write(str(self.request.delivery_info.get("redelivered")))
        time.sleep(float(os.environ.get("CRASHY_SLEEP", "3")))
        return "done"

    @app.task
    def quick(x):
        return x * 2
    """
)

WORKER = (
    "import sys; sys.path.insert(0, {root!r}); import crashy; "
    "from celeriac.worker import Worker; "
    "sys.exit(Worker(crashy.app, pool={pool!r}, concurrency=1, hostname={name!r}).start())"
)


def _start_worker(root: Path, env: dict[str, str], name: str, pool: str = "solo"
                  ) -> subprocess.Popen[bytes]:
    code = WORKER.format(root=str(root), pool=pool, name=name)
    with open(root / f"{name}.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=root,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_sigkill_mid_task_then_second_worker_finishes_it(
    tmp_path: Path, pool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "crashy.py").write_text(TASKS)
    env = dict(os.environ, CRASHY_URL=f"sqlite:///{tmp_path / 'broker.db'}", CRASHY_SLEEP="2")
    monkeypatch.setenv("CRASHY_URL", env["CRASHY_URL"])
    sys.path.insert(0, str(tmp_path))
    try:
        import crashy  # type: ignore[import-not-found]

        result = crashy.slow.delay(str(tmp_path))
        first = _start_worker(tmp_path, env, "first@test", pool)
        try:
            assert _wait_for(lambda: list(tmp_path.glob("started-*")), 20), "task never started"
            # kill the whole worker (prefork: parent and child) mid-task
            os.killpg(first.pid, signal.SIGKILL)
        finally:
            first.wait(10)
        assert result.state == "PENDING"
        second = _start_worker(tmp_path, env, "second@test", pool)
        try:
            assert result.get(timeout=30) == "done"
            assert result.state == "SUCCESS"
            starts = sorted(tmp_path.glob("started-*"))
            assert len(starts) == 2
            assert {p.read_text() for p in starts} == {"False", "True"}
            # the second worker keeps serving
            assert crashy.quick.delay(21).get(timeout=20) == 42
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0, (tmp_path / "second@test.log").read_text()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("crashy", None)
