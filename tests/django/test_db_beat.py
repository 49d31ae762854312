"""The database scheduler in-process: schedule types with an injected clock, reloading on a
change, the scheduler paths beat accepts, the admin pages."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client

from celeriac import Celery
from celeriac.beat import Service, run_id
from celeriac.beat.service import scheduler_class
from celeriac.contrib.django.beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    ScheduleChange,
)
from celeriac.contrib.django.schedulers import DatabaseScheduler
from tests.beat.test_scheduler import T0, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def published(scheduler: DatabaseScheduler) -> list[tuple[str, datetime]]:
    return [(run.entry, run.scheduled_at) for run in scheduler.history if run.published]


def interval_task(name: str = "every10", every: int = 10, **fields: Any) -> PeriodicTask:
    interval = IntervalSchedule.objects.create(every=every, period="seconds")
    return PeriodicTask.objects.create(name=name, task="proj.add", interval=interval,
                                       args="[2, 3]", **fields)


@pytest.mark.django_db
def test_interval_task_runs_on_its_multiples_and_keeps_its_state(
    app: Celery, clock: Clock
) -> None:
    interval_task(queue="periodic", expire_seconds=30, kwargs='{"z": 1}')
    scheduler = DatabaseScheduler(app, clock=clock)
    assert list(scheduler.entries) == ["every10"]
    entry = scheduler.entries["every10"]
    assert (entry.task, entry.args, entry.kwargs) == ("proj.add", (2, 3), {"z": 1})
    assert entry.options == {"queue": "periodic", "expires": 30}
    assert scheduler.tick() <= 10.0  # first sight: nothing due
    assert published(scheduler) == []
    clock.advance(seconds=10)
    scheduler.tick()
    clock.advance(seconds=10)
    scheduler.tick()
    assert published(scheduler) == [("every10", T0 + timedelta(seconds=10)),
                                    ("every10", T0 + timedelta(seconds=20))]
    deliveries = app.broker.consume(["periodic"], 10, 0.0)
    assert [d.task_id for d in deliveries] == [
        run_id("every10", T0 + timedelta(seconds=s)) for s in (10, 20)]
    row = PeriodicTask.objects.get(name="every10")
    assert row.last_run_at == T0 + timedelta(seconds=20)
    assert row.total_run_count == 2

    # A second scheduler on the same rows resumes: the runs it finds sent are not sent again.
    again = DatabaseScheduler(app, clock=clock)
    clock.advance(seconds=5)
    again.tick()
    assert published(again) == []
    clock.advance(seconds=5)
    again.tick()
    assert published(again) == [("every10", T0 + timedelta(seconds=30))]


@pytest.mark.django_db
def test_two_schedulers_send_each_run_once(app: Celery, clock: Clock) -> None:
    interval_task(every=1)
    first, second = DatabaseScheduler(app, clock=clock), DatabaseScheduler(app, clock=clock)
    first.tick()
    second.tick()
    for _ in range(5):
        clock.advance(seconds=1)
        first.tick()
        second.tick()
    runs = published(first) + published(second)
    assert sorted(at for _, at in runs) == [T0 + timedelta(seconds=s) for s in range(1, 6)]
    assert PeriodicTask.objects.get().total_run_count == 5


@pytest.mark.django_db
def test_crontab_runs_in_its_own_time_zone(app: Celery) -> None:
    app.conf.timezone = "UTC"
    cron = CrontabSchedule.objects.create(minute="30", hour="8", timezone="Asia/Shanghai")
    PeriodicTask.objects.create(name="morning", task="proj.add", crontab=cron)
    clock = Clock(datetime(2024, 5, 6, 0, 0, tzinfo=UTC))
    scheduler = DatabaseScheduler(app, clock=clock)
    scheduler.tick()
    clock.advance(minutes=29)
    scheduler.tick()
    assert published(scheduler) == []
    clock.advance(minutes=1)  # 00:30 UTC is 08:30 in Shanghai
    scheduler.tick()
    assert published(scheduler) == [("morning", datetime(2024, 5, 6, 0, 30, tzinfo=UTC))]
    clock.advance(hours=8)  # 08:30 UTC: not a Shanghai 08:30
    scheduler.tick()
    assert len(published(scheduler)) == 1


@pytest.mark.django_db
def test_crontab_without_zone_follows_the_app_timezone(app: Celery) -> None:
    app.conf.timezone = "America/New_York"
    cron = CrontabSchedule.objects.create(minute="0", hour="9")
    PeriodicTask.objects.create(name="nine", task="proj.add", crontab=cron)
    clock = Clock(datetime(2024, 5, 6, 12, 0, tzinfo=UTC))
    scheduler = DatabaseScheduler(app, clock=clock)
    scheduler.tick()
    clock.advance(hours=1)  # 13:00 UTC = 09:00 EDT
    scheduler.tick()
    assert published(scheduler) == [("nine", datetime(2024, 5, 6, 13, 0, tzinfo=UTC))]


@pytest.mark.django_db
def test_clocked_task_runs_once_then_is_disabled(app: Celery, clock: Clock) -> None:
    at = T0 + timedelta(seconds=30)
    PeriodicTask.objects.create(name="once", task="proj.add",
                                clocked=ClockedSchedule.objects.create(clocked_time=at))
    scheduler = DatabaseScheduler(app, clock=clock)
    assert 0 < scheduler.tick() <= 30.0
    clock.advance(seconds=31)
    scheduler.tick()
    clock.advance(seconds=60)
    scheduler.tick()
    assert published(scheduler) == [("once", at)]
    assert PeriodicTask.objects.get(name="once").enabled is False
    assert "once" not in scheduler.entries


@pytest.mark.django_db
def test_one_off_interval_and_expired_tasks_stop(app: Celery, clock: Clock) -> None:
    interval_task("one", one_off=True)
    interval_task("expiring", expires=T0 + timedelta(seconds=15))
    scheduler = DatabaseScheduler(app, clock=clock)
    for _ in range(4):
        scheduler.tick()
        clock.advance(seconds=10)
    scheduler.tick()
    assert sorted(published(scheduler)) == [("expiring", T0 + timedelta(seconds=10)),
                                            ("one", T0 + timedelta(seconds=10))]
    assert set(PeriodicTask.objects.filter(enabled=True).values_list("name", flat=True)) == set()


@pytest.mark.django_db
def test_disabled_and_broken_rows_are_not_entries(app: Celery, clock: Clock,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    interval_task("off", enabled=False)
    interval_task("bad", kwargs="[1]")  # not an object: skipped with an error, not a crash
    interval_task("good")
    scheduler = DatabaseScheduler(app, clock=clock)
    assert list(scheduler.entries) == ["good"]
    assert "periodic task 'bad' is skipped" in caplog.text


@pytest.mark.django_db
def test_a_change_bumps_the_version_and_the_scheduler_reloads(app: Celery, clock: Clock) -> None:
    scheduler = DatabaseScheduler(app, clock=clock)
    assert scheduler.entries == {}
    assert scheduler.refresh() is False
    before = ScheduleChange.current()
    row = interval_task()
    assert ScheduleChange.current() > before
    assert scheduler.refresh() is True
    assert list(scheduler.entries) == ["every10"]
    row.interval.every = 20  # editing the schedule row is a change too
    assert row.interval is not None
    row.interval.save()
    assert scheduler.refresh() is True
    assert scheduler.entries["every10"].schedule.run_every == timedelta(seconds=20)
    row.delete()
    assert scheduler.refresh() is True
    assert scheduler.entries == {}


def test_validation_rejects_bad_rows() -> None:
    with pytest.raises(ValidationError):
        CrontabSchedule(minute="61").full_clean()
    with pytest.raises(ValidationError):
        CrontabSchedule(timezone="Mars/Olympus").full_clean()
    with pytest.raises(ValidationError, match="exactly one schedule"):
        PeriodicTask(name="x", task="t").clean()
    with pytest.raises(ValidationError):
        PeriodicTask(name="x", task="t", args='{"a": 1}').clean_fields()


@pytest.mark.django_db
def test_database_refuses_a_task_with_two_schedules() -> None:
    interval = IntervalSchedule.objects.create(every=1, period="minutes")
    cron = CrontabSchedule.objects.create()
    with pytest.raises(IntegrityError), transaction.atomic():
        PeriodicTask.objects.create(name="two", task="t", interval=interval, crontab=cron)


def test_beat_accepts_both_scheduler_paths() -> None:
    assert scheduler_class("celeriac.contrib.django.schedulers:DatabaseScheduler") is (
        DatabaseScheduler)
    assert scheduler_class("django_celery_beat.schedulers:DatabaseScheduler") is (
        DatabaseScheduler)
    assert scheduler_class("django_celery_beat.schedulers.DatabaseScheduler") is (
        DatabaseScheduler)


@pytest.mark.django_db(transaction=True)
def test_running_beat_picks_up_a_change_within_5_seconds(app: Celery) -> None:
    service = Service(app, scheduler_cls=DatabaseScheduler, max_interval=30)
    thread = threading.Thread(target=service.start, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while service.scheduler is None or not hasattr(service.scheduler, "_rows"):
            assert time.monotonic() < deadline, "the beat did not start"
            time.sleep(0.05)
        scheduler = service.scheduler
        assert isinstance(scheduler, DatabaseScheduler)
        time.sleep(0.5)  # the beat sleeps (no entries: up to max_interval, bounded by syncs)
        interval_task("live", every=1)
        added = time.monotonic()
        while not published(scheduler):
            assert time.monotonic() - added < 5.0, "the new task was not picked up in 5 s"
            time.sleep(0.05)

        PeriodicTask.objects.filter(name="live").update(enabled=False)
        ScheduleChange.bump()
        changed = time.monotonic()
        while "live" in scheduler.entries:
            assert time.monotonic() - changed < 5.0, "the disabled task still runs after 5 s"
            time.sleep(0.05)
        count = len(published(scheduler))
        time.sleep(2.0)
        assert len(published(scheduler)) == count
    finally:
        service.stop()
        thread.join(10)
    assert not thread.is_alive()


@pytest.mark.django_db
def test_admin_pages_load_and_actions_toggle_tasks(client: Client) -> None:
    admin_user = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(admin_user)
    row = interval_task()
    cron = CrontabSchedule.objects.create(minute="0", hour="*/2", timezone="Europe/Berlin")
    for url in (
        "/admin/celeriac_beat/periodictask/",
        "/admin/celeriac_beat/periodictask/add/",
        f"/admin/celeriac_beat/periodictask/{row.pk}/change/",
        "/admin/celeriac_beat/intervalschedule/",
        "/admin/celeriac_beat/crontabschedule/",
        f"/admin/celeriac_beat/crontabschedule/{cron.pk}/change/",
        "/admin/celeriac_beat/clockedschedule/add/",
        "/admin/celeriac_beat/periodictask/?q=every",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
    assert b"every10" in client.get("/admin/celeriac_beat/periodictask/").content

    version = ScheduleChange.current()
    response = client.post("/admin/celeriac_beat/periodictask/", {
        "action": "disable_tasks", "_selected_action": [str(row.pk)]})
    assert response.status_code == 302
    assert PeriodicTask.objects.get(pk=row.pk).enabled is False
    assert ScheduleChange.current() > version

    # Adding a task through the admin form: two schedules are refused, one is stored.
    form = {"name": "from-admin", "task": "proj.add", "enabled": "on", "args": "[1]",
            "kwargs": "{}", "interval": str(row.interval_id), "crontab": str(cron.pk)}
    response = client.post("/admin/celeriac_beat/periodictask/add/", form)
    assert response.status_code == 200 and b"exactly one schedule" in response.content
    del form["crontab"]
    response = client.post("/admin/celeriac_beat/periodictask/add/", form)
    assert response.status_code == 302, response.content[:2000]
    assert PeriodicTask.objects.get(name="from-admin").args == "[1]"


@pytest.mark.django_db
def test_settings_entries_become_rows_once(app: Celery, clock: Clock) -> None:
    from celeriac.schedules import crontab

    app.conf.timezone = "Asia/Shanghai"
    app.conf.beat_schedule = {
        "ten": {"task": "proj.add", "schedule": 10, "args": (1, 2),
                "options": {"queue": "q", "expires": 5}},
        "monday": {"task": "proj.mul", "schedule": crontab(hour=20, minute=20, day_of_week=1)},
        "zoned": {"task": "proj.mul", "schedule": crontab(minute="*/15", tz="Europe/Berlin")},
        "half": {"task": "proj.add", "schedule": timedelta(milliseconds=500)},
    }
    scheduler = DatabaseScheduler(app, clock=clock)
    assert sorted(scheduler.entries) == ["half", "monday", "ten", "zoned"]
    ten = PeriodicTask.objects.get(name="ten")
    assert (ten.args, ten.queue, ten.expire_seconds) == ("[1, 2]", "q", 5)
    assert ten.interval is not None and (ten.interval.every, ten.interval.period) == (
        10, "seconds")
    half = PeriodicTask.objects.get(name="half")
    assert half.interval is not None and half.interval.every == 500_000
    monday = PeriodicTask.objects.get(name="monday").crontab
    assert monday is not None
    assert (monday.minute, monday.hour, monday.day_of_week, monday.timezone) == (
        "20", "20", "1", "")
    zoned = PeriodicTask.objects.get(name="zoned").crontab
    assert zoned is not None and zoned.timezone == "Europe/Berlin"
    # The row wins once it exists: an admin edit is not overwritten by the settings.
    PeriodicTask.objects.filter(name="ten").update(queue="edited")
    DatabaseScheduler(app, clock=clock)
    assert PeriodicTask.objects.get(name="ten").queue == "edited"
    assert PeriodicTask.objects.filter(name="ten").count() == 1
    # Monday 20:20 in Shanghai (the app's zone) is 12:20 UTC.
    clock.now = datetime(2024, 5, 6, 12, 19, tzinfo=UTC)
    only_monday = DatabaseScheduler(app, {}, clock=clock)
    only_monday.entries = {"monday": only_monday.entries["monday"]}
    only_monday.tick()
    clock.advance(minutes=1)
    only_monday.tick()
    assert published(only_monday) == [("monday", datetime(2024, 5, 6, 12, 20, tzinfo=UTC))]


@pytest.mark.django_db(databases=["default", "postgres"])
def test_scheduler_on_postgresql(app: Celery, clock: Clock) -> None:
    before = ScheduleChange.current("postgres")
    interval = IntervalSchedule.objects.using("postgres").create(every=10, period="seconds")
    PeriodicTask.objects.using("postgres").create(name="pg", task="proj.add", interval=interval)
    assert ScheduleChange.current("postgres") > before
    scheduler = DatabaseScheduler(app, clock=clock, using="postgres")
    assert scheduler.info == "the database ('postgres', Django)"
    scheduler.tick()
    clock.advance(seconds=10)
    scheduler.tick()
    assert published(scheduler) == [("pg", T0 + timedelta(seconds=10))]
    row = PeriodicTask.objects.using("postgres").get(name="pg")
    assert (row.last_run_at, row.total_run_count) == (T0 + timedelta(seconds=10), 1)
    assert not PeriodicTask.objects.filter(name="pg").exists()  # nothing on the default database
    PeriodicTask.objects.using("postgres").filter(name="pg").update(enabled=False)
    ScheduleChange.bump(using="postgres")
    assert scheduler.refresh() is True
    assert scheduler.entries == {}


@pytest.mark.django_db
def test_a_database_error_while_reloading_keeps_the_entries(
    app: Celery, clock: Clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django.db import OperationalError

    interval_task(every=1)
    scheduler = DatabaseScheduler(app, clock=clock, sync_every=0)
    scheduler.tick()

    def locked() -> bool:
        raise OperationalError("database is locked")

    monkeypatch.setattr(scheduler, "schedule_changed", locked)
    clock.advance(seconds=1)
    scheduler.tick()  # no exception: beat goes on with the entries it has
    assert published(scheduler) == [("every10", T0 + timedelta(seconds=1))]
    assert "could not reload the periodic tasks: database is locked" in caplog.text
