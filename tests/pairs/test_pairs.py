"""Worker-level contract scenarios on every broker x result-backend pair that makes sense.

Pairs: brokers sqlite, redis, amqp, postgresql x backends sqlite, redis, postgresql (through
SQLAlchemy, ``db+postgresql://``) and rpc. Excluded: rpc with any broker but amqp (rpc:// sends
each result back to the caller over AMQP, as Celery's does). Within a pair, a scenario skips
where the pair cannot hold it, saying why: priorities where the broker does not declare
``Capabilities.priorities``, remote control and events where it does not declare
``broadcast``, the two-beats scenario where neither ``atomic_publish_once`` nor a
coordination store keeps a run from being sent twice. On rpc,
which holds no chord counter, the chord scenario checks that a chord is refused up front.

Every scenario drives the pair's one shared worker process (``threads`` pool, two slots,
prefetch 1), except crash recovery, which starts and kills workers of its own on a queue the
shared worker does not read.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from celeriac import chain, chord, group
from celeriac.beat.scheduler import Scheduler, run_id
from celeriac.exceptions import ImproperlyConfigured
from celeriac.result import AsyncResult
from tests.pairs.conftest import Pair, hold_both_slots, release
from tests.support.workers import wait_until

TIMEOUT_S = 30


def test_delay_get(pair: Pair) -> None:
    assert pair.tasks.add.delay(2, 3).get(timeout=TIMEOUT_S) == 5


def test_exception_propagates_with_its_type(pair: Pair) -> None:
    result = pair.tasks.boom.delay("no such key")
    with pytest.raises(KeyError, match="no such key"):
        result.get(timeout=TIMEOUT_S)
    assert result.state == "FAILURE"


def test_retry_with_countdown_runs_again_not_before_due(pair: Pair) -> None:
    first_at, second_at, retries = pair.tasks.retry_later.delay().get(timeout=TIMEOUT_S)
    assert retries == 1
    assert second_at >= first_at + 1.0 - 0.01


def test_autoretry_for(pair: Pair) -> None:
    assert pair.tasks.flaky.delay().get(timeout=TIMEOUT_S) == 2


def test_chain(pair: Pair) -> None:
    add = pair.tasks.add
    assert chain(add.s(1, 2), add.s(3), add.s(4)).apply_async().get(timeout=TIMEOUT_S) == 10


def test_group(pair: Pair) -> None:
    add = pair.tasks.add
    result = group(add.s(i, i) for i in range(6)).apply_async()
    assert result.get(timeout=TIMEOUT_S) == [0, 2, 4, 6, 8, 10]


def test_chord(pair: Pair) -> None:
    add, tsum = pair.tasks.add, pair.tasks.tsum
    if pair.backend == "rpc":
        # rpc:// holds no chord counter: refused before anything is sent
        with pytest.raises(ImproperlyConfigured):
            chord(add.s(i, i) for i in range(5))(tsum.s())
        return
    assert chord(add.s(i, i) for i in range(5))(tsum.s()).get(timeout=TIMEOUT_S) == 20


def test_countdown_and_eta_not_before_due(pair: Pair) -> None:
    sent_at = time.time()
    by_countdown = pair.tasks.now.apply_async(countdown=2)
    eta = datetime.now(UTC) + timedelta(seconds=2)
    by_eta = pair.tasks.now.apply_async(eta=eta)
    assert by_countdown.get(timeout=TIMEOUT_S) >= sent_at + 2.0 - 0.01
    assert by_eta.get(timeout=TIMEOUT_S) >= eta.timestamp() - 0.01


def test_priority_honoured(pair: Pair, fresh_tag: str) -> None:
    if not pair.capabilities.priorities:
        pytest.skip(f"the {pair.broker} broker does not declare priorities")
    log = f"order-{fresh_tag}"
    held = hold_both_slots(pair, fresh_tag)
    lows = [pair.tasks.record.apply_async((log, f"low{n}"), priority=0) for n in range(6)]
    high = pair.tasks.record.apply_async((log, "high"), priority=9)
    release(pair, fresh_tag)
    for result in [*held, *lows, high]:
        result.get(timeout=TIMEOUT_S)
    order = pair.marks(log)
    # The worker may hold a prefetched low or two; the high one still overtakes the rest.
    assert order.index("high") < order.index("low5"), order


def test_revoke_of_a_queued_task(pair: Pair, fresh_tag: str) -> None:
    log = f"revoked-{fresh_tag}"
    held = hold_both_slots(pair, fresh_tag)
    # Fillers first: the worker's prefetch takes them, so the victim is still in the queue.
    fillers = [pair.tasks.record.delay(log, f"filler{n}") for n in range(3)]
    victim = pair.tasks.record.delay(log, "victim")
    victim.revoke()
    release(pair, fresh_tag)
    after = pair.tasks.record.delay(log, "after")
    for result in [*held, *fillers, after]:
        result.get(timeout=TIMEOUT_S)
    wait_until(lambda: victim.state == "REVOKED", TIMEOUT_S, "victim REVOKED")
    assert "victim" not in pair.marks(log)


def test_control_ping_and_inspect_active(pair: Pair, fresh_tag: str) -> None:
    if not pair.capabilities.broadcast:
        pytest.skip(f"the {pair.broker} broker does not broadcast")
    app, name = pair.app, pair.worker.hostname
    # Addressed to the pair's worker: the call returns once it answered.
    assert app.control.ping(destination=[name], timeout=10) == [{name: {"ok": "pong"}}]
    held = hold_both_slots(pair, fresh_tag)
    try:
        active = app.control.inspect(destination=[name], timeout=10).active()
        assert active is not None
        running = {task["id"] for task in active[name]}
        assert {result.id for result in held} <= running
    finally:
        release(pair, fresh_tag)
    for result in held:
        result.get(timeout=TIMEOUT_S)


def test_events_seen_by_a_receiver(pair: Pair) -> None:
    if not pair.capabilities.broadcast:
        pytest.skip(f"the {pair.broker} broker does not broadcast")
    app = pair.app
    with app.events.Receiver(app.connection()) as receiver:
        result = pair.tasks.add.delay(20, 22)
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + TIMEOUT_S
        while ("task-succeeded", result.id) not in seen:
            assert time.monotonic() < deadline, seen
            try:
                for event in receiver.itercapture(timeout=0.5):
                    seen.append((event["type"], event.get("uuid", "")))
            except TimeoutError:
                pass
    assert ("task-received", result.id) in seen
    assert ("task-started", result.id) in seen
    assert result.get(timeout=TIMEOUT_S) == 42


def test_crash_recovery_acks_late(pair: Pair, fresh_tag: str) -> None:
    queue = f"crash-{fresh_tag}"
    result = pair.tasks.slow.apply_async((fresh_tag, 2.0), queue=queue)
    victim = pair.start_worker(queues=[queue], pool="solo")
    try:
        wait_until(lambda: pair.marks(f"slow-{fresh_tag}"), TIMEOUT_S, "slow task started")
        victim.kill()
    finally:
        victim.kill()
    assert result.state == "PENDING"
    rescuer = pair.start_worker(queues=[queue], pool="solo")
    try:
        assert result.get(timeout=TIMEOUT_S) == f"done {fresh_tag}"
        runs = pair.marks(f"slow-{fresh_tag}")
        assert len(runs) == 2, runs
        assert runs[1].split()[0] != runs[0].split()[0]
    finally:
        assert rescuer.stop() == 0, rescuer.output()


def _scheduler(pair: Pair, name: str, clock: list[datetime]) -> Scheduler:
    """A beat with one entry ``name`` every second; its clock reads ``clock[0]``. (Entry
    names differ per test: a run's id, hence its dedup key, is made of name and time.)"""
    entry = {"task": "pairtasks.add", "schedule": 1.0, "args": (40, 2)}
    return Scheduler(pair.app, schedule={name: entry}, clock=lambda: clock[0])


def test_beat_fires_an_interval_entry(pair: Pair, fresh_tag: str) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    clock = [start]
    beat = _scheduler(pair, fresh_tag, clock)
    try:
        beat.tick()  # first sight: nothing due
        clock[0] = start + timedelta(seconds=1.5)
        beat.tick()
    finally:
        beat.close()
    sent = [run for run in beat.history if run.published]
    assert [run.task_id for run in sent] == [run_id(fresh_tag, start + timedelta(seconds=1))]
    assert AsyncResult(sent[0].task_id, app=pair.app).get(timeout=TIMEOUT_S) == 42


def test_two_beats_never_double_fire(pair: Pair, fresh_tag: str) -> None:
    if not pair.app.broker.capabilities.atomic_publish_once:
        try:
            pair.app.coordination  # noqa: B018 - whether a store serves this pair
        except ImproperlyConfigured:
            pytest.skip("no atomic publish_once and no coordination store on this pair")
    start = datetime.now(UTC).replace(microsecond=0)
    clock = [start]
    beats = [_scheduler(pair, fresh_tag, clock) for _ in range(2)]
    try:
        for beat in beats:
            beat.tick()
        for step in range(1, 4):
            clock[0] = start + timedelta(seconds=step + 0.5)
            for beat in beats:
                beat.tick()
    finally:
        for beat in beats:
            beat.close()
    published = [run.task_id for beat in beats for run in beat.history if run.published]
    expected = [run_id(fresh_tag, start + timedelta(seconds=s)) for s in range(1, 4)]
    assert sorted(published) == sorted(expected)
    for task_id in expected:
        assert AsyncResult(task_id, app=pair.app).get(timeout=TIMEOUT_S) == 42
