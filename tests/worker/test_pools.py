"""Time limits, lost workers, child recycling and warm stop, for every pool.

solo and threads run on a private memory:// broker; prefork runs on a SQLite file, since its
children are other processes (tasks defined here are inherited through fork).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.brokers import memory as memory_broker
from celeriac.exceptions import (
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
    WorkerLostError,
)
from celeriac.result_meta import decode_exception
from celeriac.trace import Outcome
from celeriac.worker import Worker
from celeriac.worker.pools import create_pool
from celeriac.worker.pools.base import Job, Pool

ALL_POOLS = ["solo", "threads", "prefork"]


def busy_wait(seconds: float) -> None:
    # Short sleeps: the threads pool's asynchronous exception lands between them.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)


def app_for_pool(pool: str, tmp_path: Path) -> Celery:
    if pool == "prefork":
        return Celery("t", broker=f"sqlite:///{tmp_path}/b.db")
    url = f"memory://pools-{uuid.uuid4().hex}"
    return Celery("t", broker=url, backend=url)


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[list[Celery]]:
    made: list[Celery] = []
    yield made
    for app in made:
        close_app(app)


def close_app(app: Celery) -> None:
    app.close()
    if app.broker_url.startswith("memory://"):
        memory_broker.reset(app.broker_url)


def _make(pool: str, tmp_path: Path, apps: list[Celery]) -> Celery:
    app = app_for_pool(pool, tmp_path)
    apps.append(app)
    return app


def _burst(app: Celery, pool: str, **options: Any) -> Worker:
    options.setdefault("concurrency", 1)
    worker = Worker(app, pool=pool, burst=True, install_signal_handlers=False, **options)
    worker.start()
    return worker


# -- soft time limit -----------------------------------------------------------------------------
@pytest.mark.parametrize("pool", ALL_POOLS)
def test_soft_time_limit_raises_inside_the_task(pool: str, tmp_path: Path,
                                                apps: list[Celery]) -> None:
    app = _make(pool, tmp_path, apps)

    @app.task(soft_time_limit=0.2)
    def soft_limited() -> str:
        try:
            busy_wait(10)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "not interrupted"

    result = soft_limited.delay()
    _burst(app, pool)
    assert result.state == "SUCCESS"
    assert result.result == "cleaned up"


# -- hard time limit -----------------------------------------------------------------------------
@pytest.mark.parametrize("pool", ALL_POOLS)
def test_hard_time_limit_fails_the_task_and_the_worker_goes_on(
    pool: str, tmp_path: Path, apps: list[Celery], caplog: pytest.LogCaptureFixture
) -> None:
    app = _make(pool, tmp_path, apps)
    pid_file = tmp_path / "pid"

    @app.task(time_limit=0.3)
    def hard_limited() -> str:
        pid_file.write_text(str(os.getpid()))
        busy_wait(10)
        return "not interrupted"

    @app.task
    def whoami() -> int:
        return os.getpid()

    stuck = hard_limited.delay()
    after = whoami.delay()
    started = time.monotonic()
    _burst(app, pool)
    assert time.monotonic() - started < 8
    assert stuck.state == "FAILURE"
    assert isinstance(stuck.result, TimeLimitExceeded)
    assert after.state == "SUCCESS"
    if pool == "prefork":
        assert "TimeLimitExceeded(0.3,)" in str(stuck.result)
        assert after.result != int(pid_file.read_text()), "the killed child was replaced"
        assert f"Hard time limit (0.3s) exceeded for {hard_limited.name}[{stuck.id}]" in caplog.text
    else:
        assert after.result == os.getpid()


# -- lost worker (prefork) -----------------------------------------------------------------------
def test_child_killed_mid_task_is_worker_lost(tmp_path: Path, apps: list[Celery],
                                             caplog: pytest.LogCaptureFixture) -> None:
    app = _make("prefork", tmp_path, apps)

    @app.task
    def suicide() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    @app.task
    def whoami() -> int:
        return os.getpid()

    lost = suicide.delay()
    after = whoami.delay()
    _burst(app, "prefork")
    assert lost.state == "FAILURE"
    assert isinstance(lost.result, WorkerLostError)
    assert "Worker exited prematurely: signal 9 (SIGKILL)" in str(lost.result)
    assert "exited with 'signal 9 (SIGKILL)'" in caplog.text
    assert after.state == "SUCCESS"


def test_child_lost_with_reject_on_worker_lost_requeues(tmp_path: Path,
                                                        apps: list[Celery]) -> None:
    app = _make("prefork", tmp_path, apps)

    @app.task(bind=True, acks_late=True, reject_on_worker_lost=True)
    def dies_once(self: Any) -> str:
        if self.request.delivery_info["redelivered"]:
            return "second life"
        os.kill(os.getpid(), signal.SIGKILL)
        return "unreachable"

    result = dies_once.delay()
    _burst(app, "prefork")
    assert result.state == "SUCCESS"
    assert result.result == "second life"
    assert app.broker.queue_size("celery") == 0


# -- max_tasks_per_child ---------------------------------------------------------------------------
def test_max_tasks_per_child_recycles_children(tmp_path: Path, apps: list[Celery]) -> None:
    app = _make("prefork", tmp_path, apps)

    @app.task
    def whoami() -> int:
        return os.getpid()

    results = [whoami.delay() for _ in range(5)]
    _burst(app, "prefork", max_tasks_per_child=2)
    assert [r.state for r in results] == ["SUCCESS"] * 5
    pids = [r.result for r in results]
    assert len(set(pids)) >= 3
    assert os.getpid() not in pids


# -- warm stop -------------------------------------------------------------------------------------
@pytest.mark.parametrize("pool", ALL_POOLS)
def test_warm_stop_lets_the_running_task_finish(pool: str, tmp_path: Path,
                                                apps: list[Celery]) -> None:
    app = _make(pool, tmp_path, apps)

    @app.task
    def nap() -> str:
        time.sleep(0.5)
        return "rested"

    result = nap.delay()
    worker = Worker(app, pool=pool, concurrency=1, install_signal_handlers=False)

    def stop_once_running() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            executor = worker.executor
            if executor is not None and executor.active:
                worker.stop()
                return
            time.sleep(0.005)

    stopper = threading.Thread(target=stop_once_running)
    stopper.start()
    worker.start()
    stopper.join()
    assert result.state == "SUCCESS"
    assert result.result == "rested"


# -- threads concurrency ---------------------------------------------------------------------------
def test_threads_pool_runs_tasks_concurrently(tmp_path: Path, apps: list[Celery]) -> None:
    app = _make("threads", tmp_path, apps)
    parties = 3
    barrier = threading.Barrier(parties)

    @app.task
    def meet() -> int:
        # Raises BrokenBarrierError unless all `parties` tasks are running at the same time.
        return barrier.wait(timeout=10)

    results = [meet.delay() for _ in range(parties)]
    _burst(app, "threads", concurrency=parties)
    assert [r.state for r in results] == ["SUCCESS"] * parties
    assert sorted(r.result for r in results) == list(range(parties))


# -- prefork: cold stop, idle child death, child signals -------------------------------------------
def test_cold_stop_reports_running_jobs_lost(tmp_path: Path, apps: list[Celery]) -> None:
    app = _make("prefork", tmp_path, apps)
    marker = tmp_path / "started"

    @app.task
    def stuck() -> str:
        marker.touch()
        time.sleep(30)
        return "not interrupted"

    @app.task(acks_late=True, reject_on_worker_lost=True)
    def stuck_late() -> str:
        time.sleep(30)
        return "not interrupted"

    lost = stuck.delay()
    requeued = stuck_late.delay()
    worker = Worker(app, pool="prefork", concurrency=2, install_signal_handlers=False)

    def stop_cold_once_both_run() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            executor = worker.executor
            if executor is not None and len(executor.active) == 2 and marker.exists():
                worker.stop("cold")
                return
            time.sleep(0.005)

    stopper = threading.Thread(target=stop_cold_once_both_run)
    stopper.start()
    started = time.monotonic()
    worker.start()
    stopper.join()
    assert time.monotonic() - started < 10
    assert lost.state == "FAILURE"
    assert isinstance(lost.result, WorkerLostError)
    assert requeued.state == "PENDING"
    assert app.broker.queue_size("celery") == 1


def test_idle_child_killed_from_outside_is_replaced(tmp_path: Path, apps: list[Celery],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from celeriac.worker.pools.prefork import PreforkPool

    app = _make("prefork", tmp_path, apps)
    pool = PreforkPool(app, 2)
    pool.start()
    try:
        before = pool.info()["processes"]
        os.kill(before[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pool.info()["processes"][:1] == before[:1] and time.monotonic() < deadline:
            assert pool.poll(0.1) == []
        after = pool.info()["processes"]
        assert len(after) == 2
        assert before[0] not in after
        assert before[1] in after
        assert pool.free_slots() == 2
        assert "signal 9 (SIGKILL)" in caplog.text
    finally:
        pool.stop(wait=True)
    assert pool.info()["processes"] == []


def test_children_send_process_signals(tmp_path: Path, apps: list[Celery]) -> None:
    from celeriac import signals

    app = _make("prefork", tmp_path, apps)
    seen = tmp_path / "seen"

    def on_init(**kwargs: Any) -> None:
        with seen.open("a") as f:
            f.write(f"init {os.getpid()}\n")

    def on_shutdown(**kwargs: Any) -> None:
        with seen.open("a") as f:
            f.write(f"shutdown {kwargs['pid']} {kwargs['exitcode']}\n")

    @app.task
    def whoami() -> int:
        return os.getpid()

    signals.worker_process_init.connect(on_init)
    signals.worker_process_shutdown.connect(on_shutdown)
    try:
        result = whoami.delay()
        _burst(app, "prefork")
    finally:
        signals.worker_process_init.disconnect(on_init)
        signals.worker_process_shutdown.disconnect(on_shutdown)
    pid = result.result
    lines = seen.read_text().splitlines()
    assert f"init {pid}" in lines
    assert f"shutdown {pid} 0" in lines


# -- terminate (revoke(terminate=True)) ------------------------------------------------------------
def _job(task: Any, job_id: int, **limits: float) -> Job:
    request = {"id": uuid.uuid4().hex, "task": task.name, "args": [], "kwargs": {},
               "hostname": "test@host"}
    return Job(id=job_id, task_name=task.name, request=request, args=[], kwargs={},
               time_limit_s=limits.get("time_limit_s"),
               soft_time_limit_s=limits.get("soft_time_limit_s"),
               acks_late=False, reject_on_worker_lost=False)


def _poll_one(pool: Pool, timeout_s: float = 10.0) -> tuple[Job, Outcome]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = pool.poll(0.05)
        if done:
            assert len(done) == 1
            return done[0]
    raise AssertionError(f"no outcome within {timeout_s}s")


def _when_started(marker: Path, action: Any) -> threading.Thread:
    """Run ``action`` in a thread once ``marker`` exists (the task started)."""

    def wait_then_act() -> None:
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        action()

    thread = threading.Thread(target=wait_then_act)
    thread.start()
    return thread


@pytest.mark.parametrize("pool_name", ALL_POOLS)
def test_terminate_ends_a_running_job_revoked(pool_name: str, tmp_path: Path,
                                              apps: list[Celery]) -> None:
    app = _make(pool_name, tmp_path, apps)
    marker = tmp_path / "started"

    @app.task
    def long_running() -> str:
        marker.write_text(str(os.getpid()))
        busy_wait(30)
        return "not interrupted"

    @app.task
    def whoami() -> int:
        return os.getpid()

    pool = create_pool(pool_name, app, 1)
    pool.start()
    try:
        job = _job(long_running, 1)
        assert pool.terminate(job.id, signal.SIGTERM) is False, "not running yet"
        answers: list[bool] = []
        stopper = _when_started(marker, lambda: answers.append(
            pool.terminate(job.id, signal.SIGTERM)))
        started = time.monotonic()
        pool.apply(job)  # solo: runs here, until terminated from the stopper thread
        finished, outcome = _poll_one(pool)
        stopper.join()
        assert answers == [True]
        assert time.monotonic() - started < 8
        assert finished is job
        assert outcome.state == "REVOKED"
        assert outcome.payload is not None
        meta = app.decode_result(outcome.payload)
        assert meta["status"] == "REVOKED"
        stored = decode_exception(meta["result"])
        assert type(stored) is TaskRevokedError
        assert str(stored) == "terminated"
        assert pool.terminate(job.id, signal.SIGTERM) is False, "no longer running"
        # The pool goes on (prefork: with a new child).
        after = _job(whoami, 2)
        pool.apply(after)
        finished, outcome = _poll_one(pool)
        assert (finished, outcome.state) == (after, "SUCCESS")
        if pool_name == "prefork":
            assert outcome.retval is None  # values stay in the child; the pid is in the record
            pid = app.decode_result(outcome.payload or b"")["result"]
            assert pid != int(marker.read_text())
    finally:
        pool.stop(wait=True)


def test_prefork_children_ignore_stop_signals_from_others(tmp_path: Path,
                                                          apps: list[Celery]) -> None:
    app = _make("prefork", tmp_path, apps)
    marker = tmp_path / "started"

    @app.task
    def nap() -> str:
        # written whole, then renamed: the waiting thread never reads a half-written pid
        (tmp_path / "started.tmp").write_text(str(os.getpid()))
        os.replace(tmp_path / "started.tmp", marker)
        time.sleep(0.5)
        return "rested"

    pool = create_pool("prefork", app, 1)
    pool.start()
    try:
        job = _job(nap, 1)
        kill = _when_started(marker, lambda: os.kill(int(marker.read_text()), signal.SIGTERM))
        pool.apply(job)
        _, outcome = _poll_one(pool)
        kill.join()
        assert outcome.state == "SUCCESS"
    finally:
        pool.stop(wait=True)


def test_solo_alarm_after_the_job_ended_is_ignored(tmp_path: Path, apps: list[Celery]) -> None:
    app = _make("solo", tmp_path, apps)

    @app.task
    def quick() -> str:
        return "done"

    previous = signal.getsignal(signal.SIGALRM)
    pool = create_pool("solo", app, 1)
    try:
        pool.apply(_job(quick, 1, time_limit_s=30))
        _, outcome = _poll_one(pool)
        assert outcome.state == "SUCCESS"
        os.kill(os.getpid(), signal.SIGALRM)  # a late alarm: must raise nothing here
        time.sleep(0.01)
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_prefork_outcome_that_cannot_be_pickled_is_sent_as_a_failure(
    tmp_path: Path, apps: list[Celery]
) -> None:
    from celeriac.worker.pools.prefork import _dumps_outcome, _loads_outcome

    app = _make("solo", tmp_path, apps)  # only its settings are used

    class LocalText(str):  # defined in a function: pickle cannot find it
        pass

    outcome = Outcome("SUCCESS", None, LocalText("summary"), 0.1, b"{}")
    job_id, sent, _ = _loads_outcome(_dumps_outcome(app, "t.task", {"id": "tid"}, 7, outcome))
    assert job_id == 7
    assert (sent.state, sent.exc_type) == ("FAILURE", "EncodeError")
    assert app.decode_result(sent.payload)["status"] == "FAILURE"
