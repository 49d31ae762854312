"""Entries from ``beat_schedule`` / ``CELERYBEAT_SCHEDULE`` and ``app.add_periodic_task``."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from celeriac import Celery
from celeriac.beat import ScheduleEntry, Scheduler
from celeriac.beat.service import prepare_app
from celeriac.exceptions import ImproperlyConfigured
from celeriac.schedules import crontab, schedstate, schedule


def test_entry_from_spec() -> None:
    entry = ScheduleEntry.from_spec("e", {
        "task": "tasks.add", "schedule": 30.0, "args": [16, 16], "kwargs": {"z": 1},
        "options": {"queue": "q", "expires": 10}, "relative": True,
    })
    assert entry.task == "tasks.add"
    assert entry.schedule == schedule(30)
    assert entry.args == (16, 16) and entry.kwargs == {"z": 1}
    assert entry.options == {"queue": "q", "expires": 10}
    assert entry.relative and entry.schedule.relative
    assert not entry.uses_is_due
    assert "tasks.add(16, 16, z=1)" in repr(entry)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"schedule": 10}, "beat_schedule['e'] needs 'task'"),
        ({"task": "t"}, "needs 'schedule'"),
        ({"task": "t", "schedule": 10, "args": "hello"}, "'args' must be a list or tuple"),
        ({"task": "t", "schedule": 10, "kwargs": [1]}, "'kwargs' must be a dict"),
        ({"task": "t", "schedule": 10, "options": 3}, "'options' must be a dict"),
        ({"task": "t", "schedule": 10, "every": 3}, "unknown key(s) every"),
        ({"task": "t", "schedule": "daily"}, "is not a schedule"),
        ({"task": "t", "schedule": -5}, "must be positive"),
    ],
)
def test_bad_entries_are_refused_clearly(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        ScheduleEntry.from_spec("e", spec)
    assert message in str(info.value)


def test_entry_must_be_a_dict() -> None:
    with pytest.raises(ImproperlyConfigured, match="must be a dict"):
        ScheduleEntry.from_spec("e", ["tasks.add", 10])  # type: ignore[arg-type]


def test_is_due_detection() -> None:
    class mine(schedule):
        def is_due(self, last_run_at: datetime) -> schedstate:
            return schedstate(False, 1.0)

    class mine_too(mine):
        def next_due(self, after: datetime) -> datetime:
            return after + timedelta(seconds=1)

    class duck:
        def is_due(self, last_run_at: datetime) -> schedstate:
            return schedstate(False, 1.0)

    def entry(sched: Any) -> ScheduleEntry:
        return ScheduleEntry.from_spec("e", {"task": "t", "schedule": sched})

    assert not entry(10).uses_is_due
    assert not entry(crontab()).uses_is_due
    assert entry(mine(1)).uses_is_due
    assert not entry(mine_too(1)).uses_is_due
    assert entry(duck()).uses_is_due


def test_fingerprint_follows_the_schedule() -> None:
    def fingerprint(sched: Any) -> str:
        return ScheduleEntry.from_spec("e", {"task": "t", "schedule": sched}).fingerprint

    assert fingerprint(10) == fingerprint(timedelta(seconds=10))
    assert fingerprint(10) != fingerprint(20)
    assert fingerprint(crontab(minute=1)) != fingerprint(crontab(minute=2))
    assert fingerprint(crontab(minute=1, tz="Asia/Shanghai")) != fingerprint(
        crontab(minute=1, tz="UTC"))

    class plain:
        def is_due(self, last_run_at: datetime) -> schedstate:
            return schedstate(False, 1.0)

    # An object without its own repr must not get a new fingerprint each start.
    assert fingerprint(plain()) == fingerprint(plain())


@pytest.mark.parametrize("setting", ["beat_schedule", "CELERYBEAT_SCHEDULE"])
def test_scheduler_reads_either_setting_name(memory_url: str, setting: str) -> None:
    app = Celery("t", broker=memory_url)
    config = types.SimpleNamespace(**{setting: {
        "add-every-30-seconds": {"task": "tasks.add", "schedule": 30.0, "args": (16, 16)},
        "monday": {"task": "tasks.test", "schedule": crontab(hour=7, minute=30, day_of_week=1)},
    }})
    app.config_from_object(config)
    scheduler = Scheduler(app)
    assert set(scheduler.schedule) == {"add-every-30-seconds", "monday"}
    assert scheduler.schedule["add-every-30-seconds"].args == (16, 16)


def test_add_periodic_task_with_a_signature_dict(memory_url: str) -> None:
    app = Celery("t", broker=memory_url)
    name = app.add_periodic_task(
        10.0, {"task": "tasks.test", "args": ("hello",), "kwargs": {}, "options": {"queue": "q"}},
        args=("more",), kwargs={"k": 1}, priority=3,
    )
    assert name == "tasks.test('hello', 'more', k=1)"
    assert app.conf.beat_schedule[name] == {
        "task": "tasks.test", "schedule": 10.0, "args": ("hello", "more"), "kwargs": {"k": 1},
        "options": {"queue": "q", "priority": 3},
    }


def test_add_periodic_task_with_a_task_or_signature_object(memory_url: str) -> None:
    app = Celery("t", broker=memory_url)

    @app.task
    def test(arg: str) -> None:
        pass

    assert app.add_periodic_task(60, test, args=("x",), name="plain") == "plain"
    assert app.conf.beat_schedule["plain"]["task"] == test.name
    assert app.conf.beat_schedule["plain"]["args"] == ("x",)

    signature = types.SimpleNamespace(task=test.name, args=("y",), kwargs={}, options={})
    name = app.add_periodic_task(crontab(minute=0), signature, expires=10)
    assert app.conf.beat_schedule[name]["options"] == {"expires": 10}
    with pytest.raises(TypeError, match="not a signature or a task"):
        app.add_periodic_task(10, object())


def test_add_periodic_task_with_task_s(memory_url: str) -> None:
    app = Celery("t", broker=memory_url)

    @app.task
    def test(arg: str) -> None:
        pass

    try:
        sig = test.s("hello")
    except (NotImplementedError, ImportError):
        pytest.skip("celeriac.canvas is not available")
    name = app.add_periodic_task(10.0, sig, name="add every 10")
    entry = app.conf.beat_schedule[name]
    assert entry["task"] == test.name and tuple(entry["args"]) == ("hello",)


def test_hooks_run_before_beat_reads_its_schedule(memory_url: str) -> None:
    app = Celery("t", broker=memory_url)
    calls: list[str] = []

    @app.on_after_configure.connect
    def configure(sender: Celery, **kwargs: Any) -> None:
        calls.append("configure")
        sender.add_periodic_task(10.0, {"task": "tasks.a"}, name="from-configure")

    @app.on_after_finalize.connect
    def finalize(sender: Celery, **kwargs: Any) -> None:
        calls.append("finalize")
        sender.add_periodic_task(20.0, {"task": "tasks.b"}, name="from-finalize")

    app.conf.beat_schedule = {"own": {"task": "tasks.c", "schedule": 5}}
    prepare_app(app)
    prepare_app(app)  # a second start sends nothing again
    assert calls == ["configure", "finalize"]
    assert set(Scheduler(app).schedule) == {"own", "from-configure", "from-finalize"}


def test_config_from_object_counts_as_configured(memory_url: str) -> None:
    app = Celery("t", broker=memory_url)
    calls: list[str] = []
    app.on_after_configure.connect(lambda sender, **kw: calls.append("configure"))
    app.config_from_object({"timezone": "UTC"})
    prepare_app(app)
    assert calls == ["configure"]


def test_entry_is_due_uses_the_schedule(memory_url: str) -> None:
    now = datetime(2024, 5, 6, 12, 0, 5, tzinfo=UTC)
    entry = ScheduleEntry.from_spec("e", {"task": "t", "schedule": 10}, clock=lambda: now)
    assert entry.is_due() == schedstate(False, 10.0)
    entry.last_run_at = now - timedelta(seconds=10)
    assert entry.is_due().is_due
