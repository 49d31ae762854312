"""Cold shutdown and SIGQUIT never lose a task, on every pool and broker (issue 8, item 3).

A real worker process runs an acks_late task and an early-acked task, both sleeping; it is
stopped cold (two SIGINTs, or one SIGQUIT) while they run. Then:

* the acks_late message is back in the queue (PENDING, not FAILURE) and a second worker runs it;
* the early-acked task, whose message was settled when it started, is FAILURE/WorkerLostError
  (nobody waits for it forever);
* the worker exited promptly with status 0 (it did not wait for the sleeping tasks).
"""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis.support import BROKER_DB, drop_keys, redis_url
from tests.worker.support import start_worker, task_module, wait_until, worker_code

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

@pytest.fixture(params=["sqlite", "redis"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'broker.db'}"
        return
    url = redis_url(BROKER_DB)
    yield url
    drop_keys(url)


@pytest.fixture
def coldstop(tmp_path: Path, broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from task_module("coldstop", TASKS, tmp_path, monkeypatch, {"COLDSTOP_URL": broker_url})


def _worker(root: Path, pool: str, concurrency: int, nap_s: float) -> subprocess.Popen[bytes]:
    code = worker_code("coldstop", pool=pool, concurrency=concurrency)
    return start_worker(root, code, {"NAP_S": str(nap_s)})


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
    coldstop: Any, tmp_path: Path, pool: str, kinds: tuple[str, ...], how: str
) -> None:
    mod = coldstop
    results = {kind: getattr(mod, kind).delay(str(tmp_path)) for kind in kinds}
    proc = _worker(tmp_path, pool, len(kinds), nap_s=30)
    try:
        for result in results.values():
            wait_until(lambda r=result: (tmp_path / f"started-{r.id}").exists())
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
        assert mod.app.broker.queue_size("celery") == 1
        # not lost: another worker runs it to the end
        again = _worker(tmp_path, "solo", 1, nap_s=0)
        try:
            assert late.get(timeout=30) == "rested"
        finally:
            again.send_signal(signal.SIGTERM)
            assert again.wait(20) == 0
