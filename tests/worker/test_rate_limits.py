"""Task rate limits (issue 11, item 4): Celery's per-worker ``rate_limit``, the settings, the
run-time ``executor.rate_limits.set``, and celeriac's global scope through the coordination
store. Unit tests drive :class:`RateLimits` on a hand-moved clock; the worker tests assert on
the start times the tasks record (never on how long the test took)."""

from __future__ import annotations

import logging
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.coordination import memory as memory_store
from celeriac.worker import Worker
from celeriac.worker.pools.base import Job
from celeriac.worker.rate_limits import RateLimits, parse_rate
from tests.redis.support import BROKER_DB, drop_keys, redis_url
from tests.worker.support import start_worker, task_module, wait_until, worker_code

#: a Redis address nothing listens on (connection refused at once)
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


_ids = iter(range(1, 1_000_000))


def job(name: str) -> Job:
    return Job(next(_ids), name, {}, [], {}, None, None, False, False)


def limits_of(app: Celery, clock: Clock, **kwargs: Any) -> RateLimits:
    return RateLimits(app, clock=clock, **kwargs)


# -- rates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "per_s"),
    [("10/s", 10.0), ("30/m", 0.5), ("1800/h", 0.5), (5, 5.0), (2.5, 2.5), ("5", 5.0),
     (" 6 / m ", 0.1), ("10/", 10.0), (None, None), ("", None), (0, None), ("0/s", None),
     ("0", None)],
)
def test_rates_read_as_celery_reads_them(rate: Any, per_s: float | None) -> None:
    assert parse_rate(rate) == pytest.approx(per_s) if per_s else parse_rate(rate) is None


@pytest.mark.parametrize(
    "rate", ["10/d", "ten/s", "/s", "10/sec", "-1/s", -3, "nan", "inf/m", True, [10], {"r": 1}]
)
def test_a_bad_rate_is_a_value_error(rate: Any) -> None:
    with pytest.raises(ValueError, match="Invalid rate limit"):
        parse_rate(rate)


# -- the per-worker bucket ----------------------------------------------------------------------


def test_no_limit_anywhere_keeps_the_gate_off(app: Celery) -> None:
    app.task(name="free")(lambda: None)
    assert not RateLimits(app).active


def test_starts_are_spaced_at_the_rate_and_held_jobs_keep_their_order(app: Celery) -> None:
    limited = "limited"
    app.task(name=limited, rate_limit="4/s")(lambda: None)
    clock = Clock()
    limits = limits_of(app, clock)
    assert limits.active
    first, second, third = job(limited), job(limited), job(limited)
    assert limits.admit(first)
    assert not limits.admit(second)
    assert not limits.admit(third)
    assert limits.held_count == 2
    assert limits.held_jobs() == [second, third]
    assert limits.next_release_in_s() == 0.25
    clock.now_s += 0.125
    assert limits.release(4) == []
    clock.now_s += 0.125
    assert limits.release(4) == [second]  # one token: the capacity is one, as Celery's
    assert limits.admit(second)  # released with its token: it goes through once
    later = job(limited)
    clock.now_s += 0.5
    assert not limits.admit(later)  # behind the one still held, though a token is there
    assert limits.release(4) == [third]
    assert limits.admit(third)
    clock.now_s += 0.25
    assert limits.release(0) == []  # no free slot: nothing taken
    assert limits.release(1) == [later]
    assert limits.next_release_in_s() is None


def test_held_jobs_can_be_removed_by_task_id(app: Celery) -> None:
    app.task(name="slow", rate_limit="1/h")(lambda: None)
    limits = limits_of(app, Clock())
    jobs = [Job(next(_ids), "slow", {"id": f"t{n}"}, [], {}, None, None, False, False)
            for n in range(4)]
    assert [limits.admit(j) for j in jobs] == [True, False, False, False]
    assert limits.remove({"t2", "t0", "nope"}) == [jobs[2]]
    assert limits.held_count == 2 and limits.held_jobs() == [jobs[1], jobs[3]]
    limits.set("slow", None)
    assert limits.remove({"t3"}) == [jobs[3]]
    assert limits.take_held() == [jobs[1]] and limits.held_count == 0


def test_other_task_types_are_never_held(app: Celery) -> None:
    app.task(name="slow", rate_limit="1/h")(lambda: None)
    app.task(name="fast")(lambda: None)
    limits = limits_of(app, Clock())
    assert limits.admit(job("slow"))
    assert not limits.admit(job("slow"))
    assert all(limits.admit(job("fast")) for _ in range(50))
    assert limits.held_count == 1


def test_the_default_rate_limit_applies_to_tasks_that_set_none(app: Celery) -> None:
    app.conf.task_default_rate_limit = "1/m"
    app.task(name="plain")(lambda: None)
    app.task(name="own", rate_limit="100/s")(lambda: None)
    clock = Clock()
    limits = limits_of(app, clock)
    assert limits.admit(job("plain")) and not limits.admit(job("plain"))
    assert limits.admit(job("own"))
    clock.now_s += 0.5
    assert limits.admit(job("own"))
    assert limits.current()["plain"] == "1/m" and limits.current()["own"] == "100/s"


def test_worker_disable_rate_limits_turns_every_limit_off(app: Celery) -> None:
    app.conf.worker_disable_rate_limits = True
    app.conf.task_default_rate_limit = "1/m"
    app.task(name="own", rate_limit="1/h")(lambda: None)
    limits = limits_of(app, Clock())
    assert not limits.active
    assert limits.current()["own"] is None


def test_a_bad_rate_on_a_task_logs_one_error_and_the_task_runs_unlimited(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    app.task(name="bad", rate_limit="ten per second")(lambda: None)
    app.task(name="worse", rate_limit=-1)(lambda: None)
    app.task(name="good", rate_limit="1/h")(lambda: None)
    with caplog.at_level(logging.ERROR, "celeriac.worker"):
        limits = limits_of(app, Clock())
        assert all(limits.admit(job("bad")) and limits.admit(job("worse")) for _ in range(20))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len([e for e in errors if "Task bad:" in e]) == 1
    assert len([e for e in errors if "Task worse:" in e]) == 1
    assert limits.admit(job("good")) and not limits.admit(job("good"))


def test_a_bad_default_rate_or_scope_is_logged_and_ignored(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    app.conf.task_default_rate_limit = "fast"
    app.conf.task_rate_limit_scope = "everywhere"
    app.task(name="plain")(lambda: None)
    app.task(name="odd", rate_limit="1/h", rate_limit_scope="galaxy")(lambda: None)
    with caplog.at_level(logging.ERROR, "celeriac.worker"):
        limits = limits_of(app, Clock())
        assert limits.admit(job("plain")) and limits.admit(job("plain"))
        assert limits.admit(job("odd")) and not limits.admit(job("odd"))  # per worker
    text = caplog.text
    assert "everywhere" in text and "galaxy" in text and "fast" in text


# -- changing limits at run time ----------------------------------------------------------------


def test_set_validates_and_changes_the_limit_and_the_task(app: Celery) -> None:
    task = app.task(name="t", rate_limit="1/h")(lambda: None)
    clock = Clock()
    limits = limits_of(app, clock)
    with pytest.raises(ValueError, match="Invalid rate limit"):
        limits.set("t", "fast")
    with pytest.raises(KeyError):
        limits.set("nobody", "1/s")
    assert limits.current()["t"] == "1/h"
    assert limits.admit(job("t"))
    held = [job("t"), job("t")]
    assert not any(limits.admit(j) for j in held)
    limits.set("t", "10/s")  # the held jobs follow the new rate (a new, full bucket)
    assert task.rate_limit == "10/s" and limits.current()["t"] == "10/s"
    assert limits.release(5) == held[:1]
    clock.now_s += 0.1
    assert limits.release(5) == held[1:]
    more = [job("t"), job("t")]
    assert [limits.admit(j) for j in more] == [False, False]
    limits.set("t", None)  # no limit: what was held starts at once
    assert task.rate_limit is None and limits.current()["t"] is None
    assert limits.release(5) == more
    assert all(limits.admit(job("t")) for _ in range(10))
    limits.set("t", 0)
    assert not limits.active


def test_set_turns_the_gate_on_for_a_worker_that_had_no_limit(app: Celery) -> None:
    app.task(name="t")(lambda: None)
    limits = limits_of(app, Clock())
    assert not limits.active
    limits.set("t", "2/m")
    assert limits.active
    assert limits.admit(job("t")) and not limits.admit(job("t"))


def test_set_from_another_thread_while_the_loop_admits(app: Celery) -> None:
    app.task(name="t", rate_limit="1000/s")(lambda: None)
    clock = Clock()
    limits = limits_of(app, clock)
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            limits.set("t", "1/h")
            limits.set("t", "1000/s")

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        admitted = 0
        for _ in range(2000):
            clock.now_s += 0.001
            admitted += limits.admit(job("t"))
            admitted += len(limits.release(10))
    finally:
        stop.set()
        flipper.join()
    limits.set("t", None)
    admitted += len(limits.release(10_000))
    assert admitted == 2000  # every job came out once, none lost
    assert limits.held_count == 0


def test_a_running_worker_follows_a_new_limit(app: Celery) -> None:
    started: list[int] = []

    @app.task(name="paced", rate_limit="1/m")
    def paced(n: int) -> None:
        started.append(n)

    worker = Worker(app, pool="threads", concurrency=2, install_signal_handlers=False)
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        for n in range(6):
            paced.delay(n)
        wait_until(lambda: worker.executor is not None
                   and worker.executor.rate_limits.held_count == 5)
        assert started == [0]
        assert worker.executor is not None
        worker.executor.rate_limits.set("paced", "1000/s")
        wait_until(lambda: len(started) == 6)
        assert started == [0, 1, 2, 3, 4, 5]
        worker.executor.rate_limits.set("paced", "1/h")
        for n in range(6, 9):
            paced.delay(n)
        wait_until(lambda: worker.executor is not None
                   and worker.executor.rate_limits.held_count == 2)
        assert started == list(range(7))
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    # The held messages went back to the queue at shutdown: another worker runs them.
    paced.rate_limit = None
    Worker(app, pool="solo", burst=True, install_signal_handlers=False).start()
    assert started == list(range(9))


def test_a_task_revoked_while_held_never_runs(app: Celery) -> None:
    started: list[int] = []

    @app.task(name="hourly", rate_limit="1/h")
    def hourly(n: int) -> None:
        started.append(n)

    worker = Worker(app, pool="threads", concurrency=2, install_signal_handlers=False)
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    try:
        results = [hourly.delay(n) for n in range(3)]
        wait_until(lambda: worker.executor is not None
                   and worker.executor.rate_limits.held_count == 2)
        worker.revoke_local([results[1].id], None)
        wait_until(lambda: results[1].state == "REVOKED")
        assert worker.executor is not None
        assert [j.request["id"] for j in worker.executor.rate_limits.held_jobs()] == [
            results[2].id]
        worker.executor.rate_limits.set("hourly", None)
        wait_until(lambda: len(started) == 2)
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert started == [0, 2]


# -- the global scope ---------------------------------------------------------------------------


def test_a_global_limit_is_shared_by_workers_on_one_store(app: Celery) -> None:
    app.task(name="shared", rate_limit="1/h", rate_limit_scope="global")(lambda: None)
    app.task(name="own", rate_limit="1/h")(lambda: None)
    store_url = f"memory://{uuid.uuid4().hex}"
    try:
        from celeriac.coordination import create_store

        one = limits_of(app, Clock(), store=create_store(store_url))
        two = limits_of(app, Clock(), store=create_store(store_url))
        assert one.admit(job("shared"))
        assert not two.admit(job("shared"))  # the one token of the hour was taken
        assert one.admit(job("own")) and two.admit(job("own"))  # per worker: one each
    finally:
        memory_store.reset(store_url)


def test_the_scope_setting_makes_limits_global(app: Celery) -> None:
    app.conf.task_rate_limit_scope = "global"
    app.task(name="t", rate_limit="1/h")(lambda: None)
    app.task(name="mine", rate_limit="1/h", rate_limit_scope="worker")(lambda: None)
    store_url = f"memory://{uuid.uuid4().hex}"
    try:
        from celeriac.coordination import create_store

        one = limits_of(app, Clock(), store=create_store(store_url))
        two = limits_of(app, Clock(), store=create_store(store_url))
        assert one.admit(job("t")) and not two.admit(job("t"))
        assert one.admit(job("mine")) and two.admit(job("mine"))
    finally:
        memory_store.reset(store_url)


def test_an_unreachable_store_falls_back_to_the_worker_limit_with_one_warning(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    from celeriac.coordination import create_store

    app.task(name="g", rate_limit="5/s", rate_limit_scope="global")(lambda: None)
    clock = Clock()
    store = create_store(UNREACHABLE_REDIS)
    try:
        with caplog.at_level(logging.WARNING, "celeriac.worker"):
            limits = limits_of(app, clock, store=store)
            assert limits.admit(job("g"))
            assert not limits.admit(job("g"))  # the worker's own bucket still limits
            admitted = 0
            for _ in range(10):
                clock.now_s += 0.2
                admitted += len(limits.release(10)) + limits.admit(job("g"))
    finally:
        store.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    assert admitted <= 11  # 5/s over 2 s, one at a time: never the unlimited 20


def test_a_slow_store_never_blocks_the_threads_that_read_held_jobs(app: Celery) -> None:
    """The heartbeat thread renews the leases of held jobs: it must not wait while the main
    loop waits for the coordination store."""
    app.task(name="g", rate_limit="1/h", rate_limit_scope="global")(lambda: None)
    answering = threading.Event()
    asked = threading.Event()

    class SlowStore(memory_store.MemoryCoordination):
        def take_tokens(self, key: str, rate_per_s: float, capacity: float,
                        wanted: int) -> tuple[int, float]:
            asked.set()
            answering.wait(10)
            return super().take_tokens(key, rate_per_s, capacity, wanted)

    store_url = f"memory://{uuid.uuid4().hex}"
    limits = limits_of(app, Clock(), store=SlowStore(store_url))
    first, second = job("g"), job("g")
    answering.set()
    assert limits.admit(first)  # the hour's one token
    answering.clear()
    asked.clear()
    admitting = threading.Thread(target=limits.admit, args=(second,))
    try:
        admitting.start()
        assert asked.wait(10)
        reads: list[list[Job]] = []
        reader = threading.Thread(target=lambda: reads.append(limits.held_jobs()))
        reader.start()
        reader.join(5)
        assert reads == [[]]  # answered while the store call is still pending
        limits.set("g", "2/h")  # so is the remote-control thread
        assert admitting.is_alive()
    finally:
        answering.set()
        admitting.join(10)
        memory_store.reset(store_url)
    assert limits.held_jobs() == [second]


# -- real worker processes ----------------------------------------------------------------------

TASKS = textwrap.dedent(
    """
    import os, socket, time, uuid
    from celeriac import Celery

    app = Celery("limited", broker=os.environ["LIMITED_URL"])
    MARKS = os.environ["LIMITED_MARKS"]

    def _mark(kind, who=""):
        at = time.time()
        name = uuid.uuid4().hex
        with open(os.path.join(MARKS, f".{name}"), "w") as f:
            f.write(f"{at!r} {who}")
        os.replace(os.path.join(MARKS, f".{name}"), os.path.join(MARKS, f"{kind}-{name}"))

    @app.task(rate_limit="5/s")
    def limited():
        _mark("limited")
        time.sleep(0.5)

    @app.task
    def quick():
        _mark("quick")

    @app.task(rate_limit="ten per second")
    def badly_limited():
        _mark("bad")

    @app.task(bind=True, rate_limit="5/s", rate_limit_scope="global")
    def shared(self):
        _mark("shared", self.request.hostname)
        time.sleep(0.5)
    """
)


def _starts(marks: Path, kind: str) -> list[float]:
    return sorted(float(p.read_text().split()[0]) for p in marks.glob(f"{kind}-*"))


def _most_in_one_second(starts: list[float]) -> int:
    """The most starts in any window [t, t + 1 s)."""
    return max(sum(1 for s in starts if t <= s < t + 1.0) for t in starts)


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


@pytest.fixture(params=["sqlite"])
def limited(request: pytest.FixtureRequest, tmp_path: Path, marks: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The task module on a broker: ``sqlite`` (a file) or ``redis`` (a fresh key prefix)."""
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    if request.param == "redis":
        url = redis_url(BROKER_DB)
    try:
        yield from task_module("limited", TASKS, tmp_path, monkeypatch,
                               {"LIMITED_URL": url, "LIMITED_MARKS": str(marks)})
    finally:
        if request.param == "redis":
            drop_keys(url)


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_worker_spaces_a_limited_task_and_runs_the_others_meanwhile(
    limited: Any, tmp_path: Path, marks: Path, pool: str
) -> None:
    for _ in range(20):
        limited.limited.delay()
    for _ in range(5):
        limited.quick.delay()
    for _ in range(3):
        limited.badly_limited.delay()
    proc = start_worker(tmp_path, worker_code("limited", pool=pool, concurrency=8,
                                              prefetch_multiplier=5))
    try:
        wait_until(lambda: len(_starts(marks, "limited")) == 20, timeout_s=40)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    starts = _starts(marks, "limited")
    # 5/s, evenly spaced (one token at most in the bucket): 19 gaps of 200 ms; at most 6 starts
    # in a second, 7 with a task's clock reading a little late (unlimited: 16).
    assert _most_in_one_second(starts) <= 7
    assert starts[-1] - starts[0] >= 3.0
    # The other types did not wait for the limited one (all done before its 3rd second).
    assert len(_starts(marks, "quick")) == 5 and len(_starts(marks, "bad")) == 3
    assert max(_starts(marks, "quick") + _starts(marks, "bad")) < starts[9]
    log = (tmp_path / "worker.log").read_text()
    assert len([line for line in log.splitlines()
                if "limited.badly_limited" in line and "Invalid rate limit" in line]) == 1


@pytest.mark.slow
@pytest.mark.parametrize("limited", ["sqlite", "redis"], indirect=True)
def test_a_global_limit_holds_across_two_worker_processes(
    limited: Any, tmp_path: Path, marks: Path
) -> None:
    # Each worker on its own queue, so both surely run half the tasks.
    procs = [
        start_worker(tmp_path, worker_code("limited", pool="threads", concurrency=8,
                                           hostname=f"{queue}@test", queues=[queue]),
                     log_name=f"{queue}.log")
        for queue in ("a", "b")
    ]
    try:
        for n in range(20):
            limited.shared.apply_async(queue="ab"[n % 2])
        wait_until(lambda: len(_starts(marks, "shared")) == 20, timeout_s=40)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
    starts = _starts(marks, "shared")
    hosts = {p.read_text().split()[1] for p in marks.glob("shared-*")}
    assert hosts == {"a@test", "b@test"}
    # Together at 5/s: 6 in a second, 7 with a late clock reading (each alone at 5/s: 12).
    assert _most_in_one_second(starts) <= 7
    assert starts[-1] - starts[0] >= 3.0
