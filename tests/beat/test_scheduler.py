"""The scheduler with an injected clock: ids, dedupe, persistence, catch-up, DST, errors."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from celeriac import Celery
from celeriac.beat import PersistentScheduler, Scheduler, run_id
from celeriac.beat.store import SQLiteStore
from celeriac.exceptions import TransportError
from celeriac.message import Envelope
from celeriac.schedules import crontab
from tests.beat.user_schedules import every_other_minute

T0 = datetime(2024, 5, 6, 12, 0, 0, tzinfo=UTC)  # a Monday


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def drain(app: Celery, queue: str = "celery") -> list[Envelope]:
    deliveries = app.broker.consume([queue], 10_000, 0.0)
    app.broker.ack(deliveries)
    return [d.envelope for d in deliveries]


def args_of(envelope: Envelope) -> list[Any]:
    args: list[Any] = orjson.loads(envelope.body)[0]
    return args


def every_10s(app: Celery) -> dict[str, Any]:
    return {"add": {"task": "tasks.add", "schedule": 10, "args": (10, 5)}}


def test_runs_are_sent_on_time_with_deterministic_ids(app: Celery, clock: Clock) -> None:
    scheduler = Scheduler(app, every_10s(app), clock=clock)
    assert scheduler.tick() == 10.0  # first sight: nothing due
    assert drain(app) == []
    clock.advance(seconds=4)
    assert scheduler.tick() == 6.0
    clock.advance(seconds=6)
    assert scheduler.tick() == 10.0
    (envelope,) = drain(app)
    assert envelope.task_id == run_id("add", T0 + timedelta(seconds=10))
    assert envelope.task_name == "tasks.add"
    assert args_of(envelope) == [10, 5]
    assert scheduler.schedule["add"].total_run_count == 1
    assert [run.scheduled_at for run in scheduler.history] == [T0 + timedelta(seconds=10)]


def test_run_id_is_deterministic_and_zone_independent() -> None:
    moment = datetime(2024, 5, 6, 20, 20, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert run_id("e", moment) == run_id("e", moment.astimezone(UTC))
    assert run_id("e", moment) != run_id("f", moment)
    assert run_id("e", moment) != run_id("e", moment + timedelta(seconds=1))


def test_two_schedulers_never_double_fire(app: Celery, clock: Clock) -> None:
    first = Scheduler(app, every_10s(app), clock=clock)
    second = Scheduler(app, every_10s(app), clock=clock)
    for _ in range(30):
        clock.advance(seconds=1)
        first.tick()
        second.tick()
    envelopes = drain(app)
    assert len(envelopes) == 3
    assert len({e.task_id for e in envelopes}) == 3
    published = Counter(run.published for run in [*first.history, *second.history])
    assert published == {True: 3, False: 3}


def test_max_interval_caps_the_sleep(app: Celery, clock: Clock) -> None:
    app.conf.beat_max_loop_interval = 5
    scheduler = Scheduler(app, {"daily": {"task": "t", "schedule": crontab(0, 0)}}, clock=clock)
    assert scheduler.tick() == 5.0
    assert Scheduler(app, {}, max_interval=2, clock=clock).tick() == 2.0
    app.conf.beat_max_loop_interval = 0
    assert Scheduler(app, {}, clock=clock).tick() == 300.0


def test_entry_options_and_task_defaults(app: Celery, clock: Clock) -> None:
    @app.task(queue="slow")
    def report() -> None:
        pass

    scheduler = Scheduler(app, {
        "report": {"task": report.name, "schedule": 10},
        "fast": {"task": report.name, "schedule": 10, "options": {"queue": "fast", "priority": 7,
                                                                   "expires": 5}},
    }, clock=clock)
    scheduler.tick()
    clock.advance(seconds=10)
    scheduler.tick()
    assert len(drain(app, "slow")) == 1
    (fast,) = drain(app, "fast")
    assert fast.priority == 7 and fast.headers["expires"]


def test_a_restart_neither_refires_nor_forgets(tmp_path: Path, app: Celery, clock: Clock,
                                               caplog: pytest.LogCaptureFixture) -> None:
    path = str(tmp_path / "beat")
    first = PersistentScheduler(app, every_10s(app), schedule_filename=path, clock=clock)
    first.tick()
    clock.advance(seconds=10)
    first.tick()
    first.close()
    assert len(drain(app)) == 1
    assert (tmp_path / "beat.db").exists()

    # Restarted within the same interval: the run at +10 s is not sent again.
    clock.advance(seconds=5)
    second = PersistentScheduler(app, every_10s(app), schedule_filename=path, clock=clock)
    assert second.schedule["add"].total_run_count == 1
    assert second.tick() == 5.0
    assert drain(app) == []
    # The next run comes as usual, without any "missed" warning.
    clock.advance(seconds=5)
    with caplog.at_level(logging.INFO, logger="celeriac.beat"):
        second.tick()
    assert len(drain(app)) == 1
    assert "missed" not in caplog.text
    second.close()


def test_catch_up_runs_once_and_says_how_many_were_missed(
    tmp_path: Path, app: Celery, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "beat")
    first = PersistentScheduler(app, every_10s(app), schedule_filename=path, clock=clock)
    first.tick()
    first.close()
    clock.advance(seconds=425)  # runs due at +10 ... +420: 42 of them
    second = PersistentScheduler(app, every_10s(app), schedule_filename=path, clock=clock)
    with caplog.at_level(logging.INFO, logger="celeriac.beat"):
        assert second.tick() == 5.0
    (envelope,) = drain(app)
    assert envelope.task_id == run_id("add", T0 + timedelta(seconds=420))
    assert "add missed 41 run(s) since 2024-05-06T12:00:00+00:00" in caplog.text
    assert "running it once now, for 2024-05-06T12:07:00+00:00" in caplog.text
    # ...and only once.
    clock.advance(seconds=1)
    second.tick()
    assert drain(app) == []
    second.close()


def test_a_changed_schedule_starts_afresh(tmp_path: Path, app: Celery, clock: Clock,
                                          caplog: pytest.LogCaptureFixture) -> None:
    path = str(tmp_path / "beat")
    first = PersistentScheduler(app, every_10s(app), schedule_filename=path, clock=clock)
    first.tick()
    first.close()
    clock.advance(hours=1)
    changed = {"add": {"task": "tasks.add", "schedule": 20}}
    with caplog.at_level(logging.INFO, logger="celeriac.beat"):
        second = PersistentScheduler(app, changed, schedule_filename=path, clock=clock)
        second.tick()
    assert "the schedule of add changed" in caplog.text
    assert drain(app) == []
    second.close()


def test_cron_starting_deadline_skips_late_runs(app: Celery, clock: Clock,
                                                caplog: pytest.LogCaptureFixture) -> None:
    app.conf.beat_cron_starting_deadline = 30
    scheduler = Scheduler(app, {"m": {"task": "t", "schedule": crontab()}}, clock=clock)
    scheduler.tick()
    clock.advance(seconds=90)  # 12:01:30: the run of 12:01 is 30 s late, not more
    scheduler.tick()
    assert len(drain(app)) == 1
    clock.advance(seconds=100)  # 12:03:10: the latest run (12:03) is 10 s late
    scheduler.tick()
    assert len(drain(app)) == 1
    clock.advance(seconds=160)  # 12:05:50: the run of 12:05 is 50 s late
    with caplog.at_level(logging.WARNING, logger="celeriac.beat"):
        scheduler.tick()
    assert drain(app) == []
    assert "skipping the run due at 2024-05-06T12:05:00+00:00" in caplog.text


def test_a_user_schedule_is_asked_each_tick(app: Celery, clock: Clock) -> None:
    scheduler = Scheduler(app, {"e": {"task": "t", "schedule": every_other_minute()}},
                          clock=clock)
    sent_at = []
    for _ in range(10 * 4):
        clock.advance(seconds=15)
        scheduler.tick()
        if drain(app):
            sent_at.append(clock.now)
    assert [t.minute for t in sent_at] == [2, 4, 6, 8, 10]
    assert all(t.second == 0 for t in sent_at)


def _local_runs(app: Celery, zone: ZoneInfo, start: datetime, days: int,
                step: timedelta) -> list[datetime]:
    clock = Clock(start)
    scheduler = Scheduler(app, {"nightly": {"task": "t", "schedule": crontab(30, 2)}},
                          clock=clock)
    runs = []
    end = start + timedelta(days=days)
    while clock.now < end:
        scheduler.tick()
        runs += [run.scheduled_at.astimezone(zone) for run in scheduler.history]
        scheduler.history.clear()
        clock.now += step
    assert len(drain(app)) == len(runs)
    return runs


@pytest.mark.parametrize(
    ("zone_name", "spring", "autumn"),
    [("Europe/Berlin", datetime(2024, 3, 29), datetime(2024, 10, 25)),
     ("America/New_York", datetime(2024, 3, 8), datetime(2024, 11, 1))],
)
def test_daily_0230_across_both_dst_changes(app: Celery, zone_name: str, spring: datetime,
                                            autumn: datetime) -> None:
    zone = ZoneInfo(zone_name)
    app.conf.timezone = zone_name
    for start, odd_day in ((spring, spring + timedelta(days=2)),
                           (autumn, autumn + timedelta(days=2))):
        runs = _local_runs(app, zone, start.replace(tzinfo=zone), 4, timedelta(minutes=7))
        assert [r.date() for r in runs] == [(start + timedelta(days=n)).date() for n in range(4)]
        on_the_day = next(r for r in runs if r.date() == odd_day.date())
        if start is spring:
            assert (on_the_day.hour, on_the_day.minute) == (3, 0)  # first valid time after gap
        else:
            assert (on_the_day.hour, on_the_day.minute, on_the_day.fold) == (2, 30, 0)


def test_monday_2020_in_shanghai(app: Celery) -> None:
    app.conf.timezone = "Asia/Shanghai"
    zone = ZoneInfo("Asia/Shanghai")
    clock = Clock(datetime(2024, 5, 4, tzinfo=UTC))  # a Saturday
    scheduler = Scheduler(
        app, {"mondays": {"task": "t", "schedule": crontab(hour=20, minute=20, day_of_week=1)}},
        clock=clock)
    while clock.now < datetime(2024, 5, 25, tzinfo=UTC):
        clock.now += timedelta(seconds=scheduler.tick())
    local = [run.scheduled_at.astimezone(zone) for run in scheduler.history]
    assert [(t.date().isoformat(), t.hour, t.minute) for t in local] == [
        ("2024-05-06", 20, 20), ("2024-05-13", 20, 20), ("2024-05-20", 20, 20)]
    assert all(t.weekday() == 0 for t in local)


def test_one_bad_entry_does_not_stop_the_others(app: Celery, clock: Clock,
                                                caplog: pytest.LogCaptureFixture) -> None:
    scheduler = Scheduler(app, {
        "bad": {"task": "t", "schedule": 10, "args": (object(),)},
        "good": {"task": "t", "schedule": 10},
    }, clock=clock)
    scheduler.tick()
    clock.advance(seconds=10)
    with caplog.at_level(logging.ERROR, logger="celeriac.beat"):
        scheduler.tick()
    assert "could not send bad" in caplog.text
    assert len(drain(app)) == 1
    clock.advance(seconds=1)
    scheduler.tick()  # the failed run is not retried forever
    assert scheduler.schedule["bad"].total_run_count == 0


@pytest.mark.parametrize("atomic", [False, True], ids=["add_once-then-publish", "publish_once"])
def test_broker_errors_propagate_and_the_run_is_retried(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch, atomic: bool
) -> None:
    # memory:// has no atomic publish_once (the coordination store takes the key, then the
    # broker publishes); sqlite:// has one.
    url = f"sqlite:///{tmp_path / 'b.db'}" if atomic else f"memory://beat-{tmp_path.name}"
    app = Celery("t", broker=url, backend=url)
    try:
        assert app.broker.capabilities.atomic_publish_once is atomic
        scheduler = Scheduler(app, every_10s(app), clock=clock)
        scheduler.tick()
        clock.advance(seconds=10)

        def down(*args: Any) -> bool:
            raise TransportError("down")

        monkeypatch.setattr(app.broker, "publish_once" if atomic else "publish", down)
        with pytest.raises(TransportError):
            scheduler.tick()
        monkeypatch.undo()
        clock.advance(seconds=2)
        scheduler.tick()
        (envelope,) = drain(app)
        assert envelope.task_id == run_id("add", T0 + timedelta(seconds=10))
        clock.advance(seconds=2)
        scheduler.tick()
        assert drain(app) == []  # sent once: the retry settled it
    finally:
        app.close()


def test_without_a_coordination_store_runs_are_still_sent(
    app: Celery, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    app.conf.coordination_url = "nosuch://anywhere"
    scheduler = Scheduler(app, every_10s(app), clock=clock)
    scheduler.tick()
    with caplog.at_level(logging.WARNING, logger="celeriac.beat"):
        for _ in range(2):
            clock.advance(seconds=10)
            scheduler.tick()
    assert len(drain(app)) == 2
    assert caplog.text.count("run only one beat") == 1


def test_eager_mode_runs_the_task_here(app: Celery, clock: Clock) -> None:
    app.conf.task_always_eager = True
    calls = []

    @app.task
    def ping(x: int) -> None:
        calls.append(x)

    scheduler = Scheduler(app, {"p": {"task": ping.name, "schedule": 1, "args": (3,)}},
                          clock=clock)
    scheduler.tick()
    clock.advance(seconds=1)
    scheduler.tick()
    assert calls == [3]


def test_persistent_scheduler_refuses_a_foreign_file(tmp_path: Path, app: Celery) -> None:
    (tmp_path / "celerybeat-schedule.db").write_bytes(b"\x00" * 4096 + b"not sqlite")
    from celeriac.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="not a celeriac schedule file"):
        PersistentScheduler(app, {}, schedule_filename=str(tmp_path / "celerybeat-schedule"))


def test_sqlite_store_round_trip(tmp_path: Path) -> None:
    from celeriac.beat.store import EntryState

    store = SQLiteStore(str(tmp_path / "s.db"))
    state = EntryState(T0, 3, "fp")
    store.save("e", state)
    store.save("e", EntryState(T0 + timedelta(seconds=1), 4, "fp"))
    store.close()
    assert SQLiteStore(str(tmp_path / "s.db")).load() == {
        "e": EntryState(T0 + timedelta(seconds=1), 4, "fp")}
