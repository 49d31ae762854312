"""Cold shutdown and SIGQUIT never lose a task, on every pool and broker (issue 8, item 3).

A real worker process runs an acks_late task and an early-acked task, both sleeping; it is
stopped cold (two SIGINTs, or one SIGQUIT) while they run. Then:

* the acks_late message is back in the queue (PENDING, not FAILURE) and a second worker runs it;
* the early-acked task, whose message was settled when it started, is FAILURE/WorkerLostError
  (nobody waits for it forever);
* the worker exited promptly with status 0 (it did not wait for the sleeping tasks).
"""

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

from tests.redis.support import BROKER_DB, drop_keys, redis_url

TASKS = textwrap.dedent(
    """
    import os, time
    from celeriac import Celery

    app = Celery("coldstop", broker=os.environ["COLDSTOP_URL"])

    def _nap(task_id, marker_dir):
        open(os.path.join(marker_dir, f"started-{task_id}"), "w").close()
        time.sleep(float(os.environ.get("NAP_S", "30")))
        return "rested"

    @app.task(bind=True)
    def nap(self, marker_dir):
        return _nap(self.request.id, marker_dir)

    @app.task(bind=True, acks_late=True)
    def late_nap(self, marker_dir):
        return _nap(self.request.id, marker_dir)
    """
)

WORKER = (
    "import sys; sys.path.insert(0, {root!r}); import coldstop; "
    "from celeriac.worker import Worker; "
    "sys.exit(Worker(coldstop.app, pool={pool!r}, concurrency={concurrency}).start())"
)


@pytest.fixture(params=["sqlite", "redis"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'broker.db'}"
        return
    url = redis_url(BROKER_DB)
    yield url
    drop_keys(url)


@pytest.fixture
def coldstop(tmp_path: Path, broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    (tmp_path / "coldstop.py").write_text(TASKS)
    monkeypatch.setenv("COLDSTOP_URL", broker_url)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("coldstop", None)
    import coldstop as module  # type: ignore[import-not-found]

    yield module
    module.app.close()
    sys.modules.pop("coldstop", None)


def _worker(root: Path, pool: str, concurrency: int, nap_s: float) -> subprocess.Popen[bytes]:
    log = open(root / "worker.log", "ab")  # noqa: SIM115 - closed after the process ends
    env = dict(os.environ, NAP_S=str(nap_s))
    code = WORKER.format(root=str(root), pool=pool, concurrency=concurrency)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    log.close()
    return proc


def _wait(predicate: Callable[[], object], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


COLD_WAYS = {
    "double-SIGINT": [signal.SIGINT, signal.SIGINT],
    "SIGQUIT": [signal.SIGQUIT],
}


@pytest.mark.slow
@pytest.mark.parametrize("how", sorted(COLD_WAYS))
@pytest.mark.parametrize(
    ("pool", "kinds"),
    [
        ("solo", ("late_nap",)),
        ("solo", ("nap",)),
        ("threads", ("late_nap", "nap")),
        ("prefork", ("late_nap", "nap")),
    ],
)
def test_cold_shutdown_requeues_acks_late_and_records_early_acked_as_lost(
    coldstop: object, tmp_path: Path, pool: str, kinds: tuple[str, ...], how: str
) -> None:
    mod = coldstop
    results = {kind: getattr(mod, kind).delay(str(tmp_path)) for kind in kinds}
    proc = _worker(tmp_path, pool, len(kinds), nap_s=30)
    try:
        for result in results.values():
            _wait(lambda r=result: (tmp_path / f"started-{r.id}").exists())
        time.sleep(0.2)  # every task is inside its sleep
        started = time.monotonic()
        for signum in COLD_WAYS[how]:
            proc.send_signal(signum)
            time.sleep(0.3)
        assert proc.wait(20) == 0, (tmp_path / "worker.log").read_text()
        assert time.monotonic() - started < 15, "cold shutdown waited for the running tasks"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (tmp_path / "worker.log").read_text()
    assert "Cold shutdown" in log, log
    if "nap" in results:
        lost = results["nap"]
        assert lost.state == "FAILURE", log
        assert type(lost.result).__name__ == "WorkerLostError"
    if "late_nap" in results:
        late = results["late_nap"]
        assert late.state == "PENDING", (late.state, log)
        assert mod.app.broker.queue_size("celery") == 1  # type: ignore[attr-defined]
        # not lost: another worker runs it to the end
        again = _worker(tmp_path, "solo", 1, nap_s=0)
        try:
            assert late.get(timeout=30) == "rested"
        finally:
            again.send_signal(signal.SIGTERM)
            assert again.wait(20) == 0
