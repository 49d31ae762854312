"""Prefork children hold short batches of jobs (ADR 0027): whatever happens to a child, every
job of its batch ends exactly once and as the rules say: the job it had begun is lost
(WorkerLostError) or revoked, the ones it had not begun run on another child."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.exceptions import TaskRevokedError, TimeLimitExceeded, WorkerLostError
from celeriac.result_meta import decode_exception
from celeriac.trace import Outcome
from celeriac.worker.pools import create_pool
from celeriac.worker.pools.base import Job
from celeriac.worker.pools.prefork import PreforkPool
from tests.worker.test_pools import _burst, _job, _make, apps

__all__ = ["apps"]


def _collect(pool: PreforkPool, count: int, timeout_s: float = 20.0) -> dict[int, Outcome]:
    """Outcomes by job id; fails on a job reported twice."""
    outcomes: dict[int, Outcome] = {}
    deadline = time.monotonic() + timeout_s
    while len(outcomes) < count and time.monotonic() < deadline:
        for job, outcome in pool.poll(0.05):
            assert job.id not in outcomes, f"job {job.id} reported twice"
            outcomes[job.id] = outcome
    assert len(outcomes) == count, f"{len(outcomes)} of {count} outcomes"
    return outcomes


def _wait_for(path: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.005)


def _batch_pool(app: Celery, depth: int, **options: Any) -> PreforkPool:
    """One child that takes ``depth`` jobs at once (as it would once tasks proved short), and
    keeps them however long the first one runs."""
    pool = create_pool("prefork", app, 1, **options)
    assert isinstance(pool, PreforkPool)
    pool.start()
    pool.depth = depth
    pool.take_back_after_s = 600.0
    return pool


def _runs(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _tasks(app: Celery, tmp_path: Path) -> tuple[Any, Any]:
    log = tmp_path / "runs.log"

    @app.task
    def blocker(name: str) -> int:
        """Says it began, then waits (up to 30 s) for the test to release it."""
        with log.open("a") as out:
            out.write(f"{name}\n")
        (tmp_path / f"began-{name}").touch()
        deadline = time.monotonic() + 30
        while not (tmp_path / f"release-{name}").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return os.getpid()

    @app.task
    def quick(name: str) -> int:
        with log.open("a") as out:
            out.write(f"{name}\n")
        return os.getpid()

    return blocker, quick


def _with_args(job: Job, *args: Any) -> Job:
    job.args = list(args)
    job.request["args"] = list(args)
    return job


@contextmanager
def _setup(tmp_path: Path, apps: list[Celery], depth: int,
           **options: Any) -> Iterator[tuple[Celery, PreforkPool, list[Job]]]:
    """A one-child pool taking ``depth`` jobs at once, and three jobs: a (blocks until
    released), b and c (quick). The pool stops (warm) on the way out."""
    app = _make("prefork", tmp_path, apps)
    blocker, quick = _tasks(app, tmp_path)
    jobs = [_with_args(_job(blocker, 1), "a"), _with_args(_job(quick, 2), "b"),
            _with_args(_job(quick, 3), "c")]
    pool = _batch_pool(app, depth, **options)
    try:
        yield app, pool, jobs
    finally:
        pool.stop(wait=True)


def _decoded(app: Celery, outcome: Outcome) -> BaseException:
    """The exception stored in ``outcome``'s record."""
    stored: BaseException = decode_exception(
        app.decode_result(outcome.payload or b"")["result"])
    return stored


def _pid(app: Celery, outcome: Outcome) -> int:
    assert outcome.payload is not None
    return int(app.decode_result(outcome.payload)["result"])


def test_a_child_killed_holding_a_batch_loses_only_the_job_it_had_begun(
    tmp_path: Path, apps: list[Celery]
) -> None:
    with _setup(tmp_path, apps, depth=4) as (app, pool, jobs):
        pool.apply_many(jobs)
        assert pool.free_slots() == 1, "the child holds all three"
        _wait_for(tmp_path / "began-a")
        victim = pool.info()["processes"][0]
        os.kill(victim, signal.SIGKILL)
        outcomes = _collect(pool, 3)
        assert outcomes[1].state == "FAILURE"
        assert outcomes[1].exc_type == "WorkerLostError"
        assert isinstance(_decoded(app, outcomes[1]), WorkerLostError)
        assert (outcomes[2].state, outcomes[3].state) == ("SUCCESS", "SUCCESS")
        assert _pid(app, outcomes[2]) != victim, "the jobs it had not begun ran on a new child"
        assert sorted(_runs(tmp_path / "runs.log")) == ["a", "b", "c"], "each ran once"


@pytest.mark.parametrize("target", [1, 2], ids=["running", "queued"])
def test_terminate_stops_only_its_job_of_a_batch(
    tmp_path: Path, apps: list[Celery], target: int
) -> None:
    """Running: its child is signalled and replaced, the jobs behind it run on the new one.
    Queued: it ends REVOKED without running, and the child lives on."""
    with _setup(tmp_path, apps, depth=3) as (app, pool, jobs):
        pool.apply_many(jobs)
        _wait_for(tmp_path / "began-a")
        assert pool.terminate(target, signal.SIGTERM) is True
        assert pool.terminate(target, signal.SIGTERM) is False, "already being terminated"
        (tmp_path / "release-a").touch()
        outcomes = _collect(pool, 3)
        states = {job_id: outcome.state for job_id, outcome in outcomes.items()}
        assert states == {1: "SUCCESS", 2: "SUCCESS", 3: "SUCCESS", target: "REVOKED"}
        stored = _decoded(app, outcomes[target])
        assert type(stored) is TaskRevokedError
        assert str(stored) == "terminated"
        if target == 2:
            assert _runs(tmp_path / "runs.log") == ["a", "c"], "the terminated job never ran"
            assert _pid(app, outcomes[1]) == _pid(app, outcomes[3]), "the child lived on"
        else:
            assert _runs(tmp_path / "runs.log") == ["a", "b", "c"]


def test_jobs_queued_behind_a_long_one_are_taken_back_and_never_run_there(
    tmp_path: Path, apps: list[Celery]
) -> None:
    with _setup(tmp_path, apps, depth=3) as (_, pool, jobs):
        pool.take_back_after_s = 0.2
        pool.apply_many(jobs)
        _wait_for(tmp_path / "began-a")
        taken: list[Job] = []
        deadline = time.monotonic() + 20
        while len(taken) < 2 and time.monotonic() < deadline:
            assert pool.poll(0.05) == []
            taken += pool.take_back()
        assert [job.id for job in taken] == [2, 3]
        assert pool.depth == 1, "tasks proved long: one job per child again"
        assert pool.running() == [jobs[0]]
        assert pool.free_slots() == 0
        (tmp_path / "release-a").touch()
        assert set(_collect(pool, 1)) == {1}
        assert _runs(tmp_path / "runs.log") == ["a"], "the child skipped what was taken back"
        pool.apply(jobs[2])  # runs when sent again
        assert _collect(pool, 1)[3].state == "SUCCESS"
        assert _runs(tmp_path / "runs.log") == ["a", "c"]


def test_the_hard_time_limit_counts_from_when_a_queued_job_begins(
    tmp_path: Path, apps: list[Celery]
) -> None:
    with _setup(tmp_path, apps, depth=3) as (app, pool, jobs):
        blocker = app.tasks[jobs[0].task_name]
        jobs[1] = _with_args(_job(blocker, 2, time_limit_s=1.0), "b")
        pool.apply_many(jobs)
        _wait_for(tmp_path / "began-a")
        time.sleep(1.5)  # longer than b's limit, all of it before b begins
        (tmp_path / "release-a").touch()
        outcomes = _collect(pool, 3)
        assert outcomes[1].state == "SUCCESS", "a queued job's limit never hits the one before"
        assert outcomes[2].state == "FAILURE"
        assert isinstance(_decoded(app, outcomes[2]), TimeLimitExceeded)
        assert outcomes[3].state == "SUCCESS"
        assert _runs(tmp_path / "runs.log") == ["a", "b", "c"]


def test_a_child_is_never_sent_more_jobs_than_it_will_serve(
    tmp_path: Path, apps: list[Celery]
) -> None:
    with _setup(tmp_path, apps, depth=8, max_tasks_per_child=2) as (app, pool, jobs):
        quick = app.tasks[jobs[1].task_name]
        pool.apply_many([_with_args(_job(quick, i), f"j{i}") for i in range(1, 6)])
        outcomes = _collect(pool, 5)
        assert {o.state for o in outcomes.values()} == {"SUCCESS"}
        pids = [_pid(app, outcomes[i]) for i in range(1, 6)]
        assert [pids.count(pid) for pid in dict.fromkeys(pids)] == [2, 2, 1]
        assert sorted(_runs(tmp_path / "runs.log")) == [f"j{i}" for i in range(1, 6)]


@pytest.mark.parametrize("wait", [True, False])
def test_stop_settles_every_job_of_every_batch(
    tmp_path: Path, apps: list[Celery], wait: bool
) -> None:
    """Warm: every queued job runs; cold: every job held is reported lost, none twice."""
    with _setup(tmp_path, apps, depth=4) as (_, pool, jobs):
        pool.apply_many(jobs)
        _wait_for(tmp_path / "began-a")
        (tmp_path / "release-a").touch()
        if not wait:
            os.kill(pool.info()["processes"][0], signal.SIGSTOP)  # nothing more finishes
        pool.stop(wait=wait)
        outcomes = _collect(pool, 3)
    expected = "SUCCESS" if wait else "FAILURE"
    assert [outcomes[i].state for i in (1, 2, 3)] == [expected] * 3
    if wait:
        assert sorted(_runs(tmp_path / "runs.log")) == ["a", "b", "c"]


def test_a_warm_stop_runs_the_jobs_a_dying_child_had_not_begun(
    tmp_path: Path, apps: list[Celery]
) -> None:
    with _setup(tmp_path, apps, depth=4) as (_, pool, jobs):
        pool.apply_many(jobs)
        _wait_for(tmp_path / "began-a")
        os.kill(pool.info()["processes"][0], signal.SIGKILL)
        pool.stop(wait=True)
        outcomes = _collect(pool, 3)
    assert [outcomes[i].state for i in (1, 2, 3)] == ["FAILURE", "SUCCESS", "SUCCESS"]
    assert sorted(_runs(tmp_path / "runs.log")) == ["a", "b", "c"]


def test_a_worker_whose_child_dies_mid_stream_settles_every_task_once(
    tmp_path: Path, apps: list[Celery]
) -> None:
    """A real worker, tasks short enough for children to take batches, one child killed."""
    app = _make("prefork", tmp_path, apps)
    _, quick = _tasks(app, tmp_path)
    suicide = app.task(name="suicide")(lambda: os.kill(os.getpid(), signal.SIGKILL))
    first = [quick.delay(str(i)) for i in range(150)]
    lost = suicide.delay()
    then = [quick.delay(str(i)) for i in range(150, 300)]
    _burst(app, "prefork", concurrency=2, prefetch_multiplier=16)
    assert lost.state == "FAILURE"
    assert isinstance(lost.result, WorkerLostError)
    assert [r.state for r in first + then] == ["SUCCESS"] * 300
    assert sorted(map(int, _runs(tmp_path / "runs.log"))) == list(range(300)), "each ran once"
    assert app.broker.queue_size("celery") == 0
