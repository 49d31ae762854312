"""``schedule`` and Celery's ``is_due`` contract, including a user subclass."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from celeriac.schedules import (
    BaseSchedule,
    crontab,
    maybe_schedule,
    schedstate,
    schedule,
    solar,
)
from tests.beat.user_schedules import every_other_minute

T0 = datetime(2024, 5, 6, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_schedstate_is_a_named_pair() -> None:
    state = schedstate(True, 10.0)
    assert state.is_due is True and state.next == 10.0
    is_due, next_s = state
    assert (is_due, next_s) == (True, 10.0)


@pytest.mark.parametrize("every", [10, 10.0, timedelta(seconds=10)])
def test_schedule_accepts_seconds_or_timedelta(every: float | timedelta) -> None:
    sched = schedule(every)
    assert sched.run_every == timedelta(seconds=10)
    assert sched.seconds == 10.0
    assert repr(sched) == "<freq: 10.00 seconds>"


def test_human_seconds() -> None:
    assert schedule(1).human_seconds == "1.00 second"
    assert schedule(90).human_seconds == "1.50 minutes"
    assert schedule(timedelta(hours=2)).human_seconds == "2.00 hours"
    assert schedule(timedelta(days=1)).human_seconds == "1.00 day"


@pytest.mark.parametrize("every", [0, -1, timedelta(0)])
def test_schedule_must_be_positive(every: float | timedelta) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        schedule(every)


def test_schedule_needs_an_interval() -> None:
    with pytest.raises(TypeError, match="needs seconds or a timedelta"):
        schedule()


def test_is_due_contract() -> None:
    clock = Clock()
    sched = schedule(10, nowfun=clock)
    assert sched.is_due(T0) == schedstate(False, 10.0)
    clock.now = T0 + timedelta(seconds=4)
    assert sched.is_due(T0) == schedstate(False, 6.0)
    clock.now = T0 + timedelta(seconds=10)
    assert sched.is_due(T0) == schedstate(True, 10.0)
    clock.now = T0 + timedelta(seconds=25)
    assert sched.is_due(T0) == schedstate(True, 10.0)
    assert sched.remaining_estimate(T0) == timedelta(seconds=-15)


def test_relative_rounds_to_the_interval_unit() -> None:
    clock = Clock(datetime(2024, 5, 6, 12, 0, 30, tzinfo=UTC))
    sched = schedule(timedelta(minutes=1), relative=True, nowfun=clock)
    # Last run 11:59:50 -> due 12:00:50, rounded down to 12:00:00: already due.
    assert sched.is_due(datetime(2024, 5, 6, 11, 59, 50, tzinfo=UTC)).is_due
    assert not schedule(timedelta(minutes=1), nowfun=clock).is_due(
        datetime(2024, 5, 6, 11, 59, 50, tzinfo=UTC)).is_due


def test_next_due_is_aligned_to_the_epoch() -> None:
    sched = schedule(10)
    assert sched.next_due(datetime(2024, 5, 6, 12, 0, 3, tzinfo=UTC)) == datetime(
        2024, 5, 6, 12, 0, 10, tzinfo=UTC)
    assert sched.next_due(datetime(2024, 5, 6, 12, 0, 10, tzinfo=UTC)) == datetime(
        2024, 5, 6, 12, 0, 20, tzinfo=UTC)
    # The same instant in another zone gives the same run.
    berlin = datetime(2024, 5, 6, 14, 0, 3, tzinfo=ZoneInfo("Europe/Berlin"))
    assert schedule(10).next_due(berlin) == datetime(2024, 5, 6, 12, 0, 10, tzinfo=UTC)
    assert schedule(timedelta(days=1)).next_due(T0) == datetime(2024, 5, 7, tzinfo=UTC)
    assert schedule(0.25).next_due(T0) == T0 + timedelta(milliseconds=250)


def test_due_between_counts_and_finds_the_latest() -> None:
    sched = schedule(10)
    assert sched.due_between(T0, T0 + timedelta(seconds=9)) == (0, None)
    assert sched.due_between(T0, T0 + timedelta(seconds=35)) == (
        3, T0 + timedelta(seconds=30))
    cron = crontab(minute="*/15", tz=UTC)
    assert cron.due_between(T0, T0 + timedelta(hours=1)) == (4, T0 + timedelta(hours=1))
    count, latest = crontab(tz=UTC).due_between(T0, T0 + timedelta(days=30, seconds=30))
    assert count == 1000  # counting stops; the latest is still exact
    assert latest == T0 + timedelta(days=30)


def test_crontab_is_due_contract() -> None:
    clock = Clock(datetime(2024, 5, 6, 12, 14, 0, tzinfo=UTC))
    cron = crontab(minute="*/15", nowfun=clock, tz=UTC)
    last = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
    assert cron.is_due(last) == schedstate(False, 60.0)
    clock.now = datetime(2024, 5, 6, 12, 15, 0, tzinfo=UTC)
    assert cron.is_due(last) == schedstate(True, 900.0)
    assert cron.remaining_estimate(last) == timedelta(0)


def test_user_subclass_uses_the_bound_clock() -> None:
    clock = Clock(datetime(2024, 5, 6, 12, 1, tzinfo=UTC))
    sched = every_other_minute().bind(None, clock)
    assert not sched.is_due(datetime(2024, 5, 6, 11, 59, tzinfo=UTC)).is_due
    clock.now = datetime(2024, 5, 6, 12, 2, tzinfo=UTC)
    assert sched.is_due(datetime(2024, 5, 6, 11, 59, tzinfo=UTC)) == schedstate(True, 60.0)


def test_bind_copies_and_keeps_an_explicit_nowfun() -> None:
    mine, beats = Clock(T0), Clock(T0 + timedelta(hours=1))
    original = schedule(10, nowfun=mine)
    bound = original.bind(None, beats)
    assert bound is not original and bound.now() == T0
    plain = schedule(10)
    assert plain.bind(None, beats).now() == T0 + timedelta(hours=1)
    assert plain._clock is None


def test_naive_times_are_in_the_schedule_zone() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    sched = schedule(10, tz=zone, nowfun=lambda: datetime(2024, 5, 6, 20, 0, 10))
    assert sched.now() == datetime(2024, 5, 6, 20, 0, 10, tzinfo=zone)
    assert sched.to_local(datetime(2024, 5, 6, 12, 0, tzinfo=UTC)).hour == 20
    assert sched.is_due(datetime(2024, 5, 6, 20, 0, 0)).is_due


def test_base_schedule_needs_an_implementation() -> None:
    with pytest.raises(NotImplementedError, match="is_due"):
        BaseSchedule().is_due(T0)
    with pytest.raises(NotImplementedError, match="next_due"):
        BaseSchedule().next_due(T0)


def test_maybe_schedule() -> None:
    assert maybe_schedule(10) == schedule(10)
    assert maybe_schedule(2.5) == schedule(2.5)
    assert maybe_schedule(timedelta(minutes=1)) == schedule(60)
    cron = crontab()
    assert maybe_schedule(cron) is cron
    assert maybe_schedule(None) is None
    with pytest.raises(TypeError, match="is not a schedule"):
        maybe_schedule("every day")
    with pytest.raises(TypeError, match="is not a schedule"):
        maybe_schedule(True)


def test_schedules_pickle() -> None:
    for sched in (schedule(10), crontab(minute="*/5", day_of_week="mon-fri")):
        assert pickle.loads(pickle.dumps(sched)) == sched


def test_solar_is_not_supported() -> None:
    with pytest.raises(NotImplementedError, match="solar"):
        solar("sunrise", 0.0, 0.0)
