"""Workers on real Redis: a Redis restart under load, and repeated SIGKILLs with acks_late."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from tests.redis.conftest import RedisServer

TASKS = textwrap.dedent(
    """
    import os
    import redis
    from celeriac import Celery

    URL = os.environ["RW_URL"]
    app = Celery("rw", broker=URL, backend=URL)
    app.conf.worker_lease_seconds = 1.0
    app.conf.worker_prefetch_multiplier = 16
    _counter = redis.Redis.from_url(URL)

    @app.task
    def echo(i):
        return i

    @app.task(bind=True, acks_late=True)
    def counted(self, i):
        _counter.hincrby("runs", self.request.id, 1)
        return i
    """
)

WORKER = (
    "import sys; sys.path.insert(0, {root!r}); import rw_tasks; "
    "from celeriac.worker import Worker; "
    "sys.exit(Worker(rw_tasks.app, pool='solo', hostname={name!r}).start())"
)


@pytest.fixture
def tasks_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], ModuleType]]:
    (tmp_path / "rw_tasks.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))

    def load(url: str) -> ModuleType:
        monkeypatch.setenv("RW_URL", url)
        import rw_tasks  # type: ignore[import-not-found]

        return rw_tasks  # type: ignore[no-any-return]

    yield load
    module = sys.modules.pop("rw_tasks", None)
    if module is not None:
        module.app.close()
        module._counter.close()


def _worker(root: Path, name: str) -> subprocess.Popen[bytes]:
    log = open(root / f"{name}.log", "ab")  # noqa: SIM115 - closed once the child has it
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER.format(root=str(root), name=name)],
        cwd=root, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_redis_restart_under_load_loses_nothing(
    durable_redis: RedisServer, tasks_module: Callable[[str], ModuleType], tmp_path: Path
) -> None:
    mod = tasks_module(durable_redis.url)
    before = mod.echo.delay_many([(i,) for i in range(3000)])
    worker = _worker(tmp_path, "w1")
    try:
        assert before[200].get(timeout=30) == 200
        durable_redis.stop()  # SIGKILL: a crash; the AOF (fsync always) keeps what was written
        time.sleep(1.0)
        durable_redis.start()
        after = mod.echo.delay_many([(i,) for i in range(3000, 4000)])
        results = before + after
        assert [r.get(timeout=60) for r in results] == list(range(4000))
        assert worker.poll() is None, "the worker died instead of reconnecting"
    finally:
        _stop(worker)
    log = (tmp_path / "w1.log").read_text()
    assert log.count("lost the broker/backend") == 1
    assert log.count("connection to the broker restored") == 1


def test_five_sigkills_during_ten_thousand_acks_late_tasks(
    private_redis: RedisServer, tasks_module: Callable[[str], ModuleType], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mod = tasks_module(private_redis.url)
    total = 10_000
    results = mod.counted.delay_many([(i,) for i in range(total)])
    counter = redis.Redis.from_url(private_redis.url)
    try:
        for kill in range(5):
            seen = counter.hlen("runs")
            worker = _worker(tmp_path, f"victim{kill}")
            deadline = time.monotonic() + 30
            # let it get well into a batch, then kill it without warning
            while counter.hlen("runs") < seen + 600 and time.monotonic() < deadline:
                time.sleep(0.01)
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        assert counter.hlen("runs") < total, "the kills came too late to matter"
        survivor = _worker(tmp_path, "survivor")
        try:
            values = [r.get(timeout=120) for r in results]
        finally:
            _stop(survivor)
        assert values == list(range(total))
        runs = {k.decode(): int(v) for k, v in counter.hgetall("runs").items()}
        assert len(runs) == total
        assert all(r.state == "SUCCESS" for r in results[:: 97])
        twice = sum(1 for n in runs.values() if n > 1)
        with capsys.disabled():
            print(f"\n{total} acks_late tasks, 5 SIGKILLs: all SUCCESS; {twice} ran more than once")
        # at-least-once: duplicates only from the batches in flight at each kill
        assert twice <= 5 * 16 * 2
    finally:
        counter.close()
