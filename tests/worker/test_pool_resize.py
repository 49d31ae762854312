"""Growing and shrinking the pool (``pool_grow`` / ``pool_shrink``, issue 11 item 5).

The pools are driven directly (prefork on a SQLite file, since its children are other
processes; threads on a private memory:// broker), then a worker is resized from another
thread while tasks run, through the thread-safe ``Worker`` methods remote control calls.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.brokers import memory as memory_broker
from celeriac.exceptions import ImproperlyConfigured
from celeriac.trace import Outcome
from celeriac.worker import Worker
from celeriac.worker.pools import create_pool
from celeriac.worker.pools.base import Job, Pool
from tests.worker.support import wait_until

RESIZABLE = ["prefork", "threads"]


@pytest.fixture
def apps() -> Iterator[list[Celery]]:
    made: list[Celery] = []
    yield made
    for app in made:
        app.close()
        if app.broker_url.startswith("memory://"):
            memory_broker.reset(app.broker_url)


def _app(pool: str, tmp_path: Path, apps: list[Celery]) -> Celery:
    if pool == "prefork":
        app = Celery("t", broker=f"sqlite:///{tmp_path}/b.db")
    else:
        url = f"memory://resize-{uuid.uuid4().hex}"
        app = Celery("t", broker=url, backend=url)
    apps.append(app)
    return app


def _job(task: Any, job_id: int, *args: Any) -> Job:
    request = {"id": uuid.uuid4().hex, "task": task.name, "args": list(args), "kwargs": {},
               "hostname": "test@host"}
    return Job(id=job_id, task_name=task.name, request=request, args=list(args), kwargs={},
               time_limit_s=None, soft_time_limit_s=None, acks_late=False,
               reject_on_worker_lost=False)


def _collect(pool: Pool, count: int, timeout_s: float = 20.0) -> list[tuple[Job, Outcome]]:
    done: list[tuple[Job, Outcome]] = []
    deadline = time.monotonic() + timeout_s
    while len(done) < count:
        assert time.monotonic() < deadline, f"only {len(done)} of {count} outcomes"
        done.extend(pool.poll(0.05))
    return done


def _size(pool: Pool) -> int:
    """Processes (threads) alive in the pool, busy ones retiring included."""
    info = pool.info()
    return len(info["processes"]) if "processes" in info else int(info["threads"])


def drive(worker: Worker, control: Callable[[], None]) -> list[BaseException]:
    """Run ``worker`` here while ``control`` runs in another thread (as remote control's
    thread does), then stop it; returns what ``control`` raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            control()
        except BaseException as exc:
            errors.append(exc)
        finally:
            worker.stop()

    controller = threading.Thread(target=run)
    controller.start()
    worker.start()
    controller.join()
    return errors


def _settle(pool: Pool, size: int) -> None:
    """Poll (which reaps retired children) until ``size`` processes are left."""

    def reached() -> bool:
        pool.poll(0.01)
        return _size(pool) == size

    wait_until(reached)


# -- the pools -------------------------------------------------------------------------------------
def test_the_solo_pool_cannot_resize(tmp_path: Path, apps: list[Celery]) -> None:
    pool = create_pool("solo", _app("threads", tmp_path, apps), 1)
    with pytest.raises(NotImplementedError,
                       match=r"^the solo pool has one process and cannot grow$"):
        pool.grow(1)
    with pytest.raises(NotImplementedError, match="cannot shrink"):
        pool.shrink(1)
    assert pool.free_slots() == 1


@pytest.mark.parametrize("pool_name", RESIZABLE)
def test_grow_runs_more_at_once_and_shrink_gives_it_back(
    pool_name: str, tmp_path: Path, apps: list[Celery]
) -> None:
    app = _app(pool_name, tmp_path, apps)

    @app.task
    def gather(marker_dir: str, name: str, expected: int) -> int:
        # Finishes only when `expected` jobs run at the same time (each leaves a file).
        Path(marker_dir, name).touch()
        deadline = time.monotonic() + 10
        while len(os.listdir(marker_dir)) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError("not run at the same time")
            time.sleep(0.01)
        return expected

    pool = create_pool(pool_name, app, 1)
    pool.start()
    try:
        assert pool.grow(2) == 3
        assert pool.limit == 3
        assert pool.free_slots() == 3
        marker_dir = tmp_path / "markers"
        marker_dir.mkdir()
        for i in range(3):
            pool.apply(_job(gather, i, str(marker_dir), f"m{i}", 3))
        assert [outcome.state for _, outcome in _collect(pool, 3)] == ["SUCCESS"] * 3
        assert pool.shrink(2) == 1
        assert pool.free_slots() == 1
        _settle(pool, 1)
        assert pool.shrink(5) == 1, "never below one process"
        assert pool.free_slots() == 1
        pool.apply(_job(gather, 9, str(tmp_path), "alone", 0))
        assert [outcome.state for _, outcome in _collect(pool, 1)] == ["SUCCESS"]
    finally:
        pool.stop(wait=True)


@pytest.mark.parametrize("pool_name", RESIZABLE)
def test_shrink_retires_a_busy_process_after_its_task(
    pool_name: str, tmp_path: Path, apps: list[Celery]
) -> None:
    app = _app(pool_name, tmp_path, apps)
    release = tmp_path / "release"

    @app.task
    def hold(name: str) -> str:
        Path(tmp_path, f"started-{name}").touch()
        deadline = time.monotonic() + 15
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return name

    pool = create_pool(pool_name, app, 2)
    pool.start()
    try:
        pool.apply(_job(hold, 1, "a"))
        pool.apply(_job(hold, 2, "b"))
        wait_until(lambda: all((tmp_path / f"started-{n}").exists() for n in "ab"))
        assert pool.shrink(1) == 1
        assert pool.free_slots() == 0, "both still busy: no slot until one finishes"
        assert pool.poll(0.1) == []
        release.touch()
        done = _collect(pool, 2)
        assert sorted(outcome.state for _, outcome in done) == ["SUCCESS", "SUCCESS"]
        _settle(pool, 1)
        assert pool.free_slots() == 1
    finally:
        pool.stop(wait=True)


def test_prefork_grow_keeps_a_retiring_child_instead_of_forking(
    tmp_path: Path, apps: list[Celery]
) -> None:
    app = _app("prefork", tmp_path, apps)
    release = tmp_path / "release"

    @app.task
    def hold() -> int:
        Path(tmp_path, f"started-{os.getpid()}").touch()
        while not release.exists():
            time.sleep(0.01)
        return os.getpid()

    pool = create_pool("prefork", app, 2)
    pool.start()
    try:
        before = sorted(pool.info()["processes"])
        pool.apply(_job(hold, 1))
        pool.apply(_job(hold, 2))
        wait_until(lambda: len(list(tmp_path.glob("started-*"))) == 2)
        pool.shrink(1)
        assert pool.grow(1) == 2
        assert sorted(pool.info()["processes"]) == before, "no child forked, none retired"
        release.touch()
        _collect(pool, 2)
        assert pool.free_slots() == 2
        assert sorted(pool.info()["processes"]) == before
    finally:
        pool.stop(wait=True)


# -- the worker's thread-safe entry points ---------------------------------------------------------
def test_resize_requests_that_cannot_be_served_are_refused(
    tmp_path: Path, apps: list[Celery]
) -> None:
    app = _app("threads", tmp_path, apps)
    solo = Worker(app, pool="solo", install_signal_handlers=False)
    with pytest.raises(ValueError, match=r"^the solo pool has one process and cannot grow$"):
        solo.pool_grow(1)
    with pytest.raises(ValueError, match=r"^the solo pool has one process and cannot shrink$"):
        solo.pool_shrink(1)
    threads = Worker(app, pool="threads", concurrency=2, install_signal_handlers=False)
    for bad in (0, -1, "2", 1.5, True, None):
        with pytest.raises(ValueError, match="at least 1"):
            threads.pool_grow(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="at least 1"):
            threads.pool_shrink(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^autoscale is not enabled on this worker"):
        threads.autoscale(4, 1)
    with pytest.raises(ImproperlyConfigured, match="solo pool has one process"):
        Worker(app, pool="solo", autoscale=(4, 1), install_signal_handlers=False)
    with pytest.raises(ImproperlyConfigured, match="autoscale"):
        Worker(app, pool="threads", autoscale=(0, 0), install_signal_handlers=False)
    assert threads.concurrency == 2, "a refused request changes nothing"


@pytest.mark.slow
@pytest.mark.parametrize("pool_name", RESIZABLE)
def test_resizing_a_running_worker_from_another_thread_loses_nothing(
    pool_name: str, tmp_path: Path, apps: list[Celery]
) -> None:
    app = _app(pool_name, tmp_path, apps)

    @app.task
    def who(i: int) -> list[Any]:
        time.sleep(0.2)
        return [i, os.getpid(), threading.get_ident()]

    results = [who.delay(i) for i in range(24)]
    worker = Worker(app, pool=pool_name, concurrency=1, prefetch_multiplier=1,
                    install_signal_handlers=False)
    sizes: list[int] = []
    replies: list[str] = []

    def control() -> None:
        wait_until(lambda: worker.executor is not None and worker.executor.active)
        replies.append(worker.pool_grow(3))
        wait_until(lambda: worker.concurrency == 4)
        wait_until(lambda: worker.executor is not None and len(worker.executor.active) == 4)
        sizes.append(worker.concurrency)
        replies.append(worker.pool_shrink(2))
        wait_until(lambda: worker.concurrency == 2)
        sizes.append(worker.concurrency)
        replies.append(worker.pool_shrink(5))  # never below one
        wait_until(lambda: all(r.ready() for r in results), timeout_s=60)
        sizes.append(worker.concurrency)

    assert drive(worker, control) == []
    assert replies == ["pool will grow", "pool will shrink", "pool will shrink"]
    assert sizes == [4, 2, 1]
    assert [r.state for r in results] == ["SUCCESS"] * 24
    assert sorted(r.result[0] for r in results) == list(range(24))
    runners = {(r.result[1], r.result[2]) for r in results}
    assert len(runners) >= 4, "four processes (threads) ran tasks"
    assert app.broker.queue_size("celery") == 0


# -- the default size ------------------------------------------------------------------------------
def test_concurrency_defaults_to_the_cpu_count_as_in_celery(tmp_path: Path,
                                                            apps: list[Celery]) -> None:
    app = _app("prefork", tmp_path, apps)
    cpus = os.cpu_count() or 1
    assert Worker(app, install_signal_handlers=False).concurrency == cpus, "prefork is default"
    assert Worker(app, pool="threads", install_signal_handlers=False).concurrency == cpus
    assert Worker(app, pool="solo", concurrency=8, install_signal_handlers=False).concurrency == 1
    app.conf.worker_concurrency = cpus + 3
    assert Worker(app, install_signal_handlers=False).concurrency == cpus + 3
    assert Worker(app, concurrency=2, install_signal_handlers=False).concurrency == 2
    assert Worker(app, concurrency=2, autoscale=(6, 3),
                  install_signal_handlers=False).concurrency == 3, "autoscale starts at min"
    assert Worker(app, autoscale=(6, 0), install_signal_handlers=False).concurrency == 1
