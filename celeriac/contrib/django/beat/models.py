"""Periodic tasks and their schedules as database rows.

A :class:`PeriodicTask` names a task, its arguments and options, and exactly one schedule:
an :class:`IntervalSchedule`, a :class:`CrontabSchedule` (with its own time zone) or a
:class:`ClockedSchedule` (one run at a given time). :class:`ScheduleChange` is one row whose
``version`` goes up whenever a task or a schedule is saved or deleted through the ORM (signals
connected in ``apps.py``) or through the admin's bulk actions; a running beat reads it every
second or so and reloads its entries only when it moved. Code that changes rows with
``QuerySet.update()`` (which sends no signal) calls :meth:`ScheduleChange.bump` itself.

Beat writes ``last_run_at`` (the *scheduled* time of the last run, docs/decisions/0007),
``total_run_count`` and ``schedule_fingerprint`` with ``update()``: its own bookkeeping does not
count as a change.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from celeriac.schedules import BaseSchedule, ParseException, crontab, schedstate, schedule

__all__ = [
    "ClockedSchedule",
    "CrontabSchedule",
    "IntervalSchedule",
    "PeriodicTask",
    "ScheduleChange",
    "clocked",
]

PERIODS = ("days", "hours", "minutes", "seconds", "microseconds")
PERIOD_CHOICES = [(period, period.capitalize()) for period in PERIODS]


def validate_timezone(value: str) -> None:
    if not value:
        return
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown time zone {value!r}") from exc


def validate_json_list(value: str) -> None:
    try:
        parsed = json.loads(value or "[]")
    except ValueError as exc:
        raise ValidationError(f"not JSON: {exc}") from exc
    if not isinstance(parsed, list):
        raise ValidationError("positional arguments must be a JSON list, e.g. [1, 2]")


def validate_json_dict(value: str) -> None:
    try:
        parsed = json.loads(value or "{}")
    except ValueError as exc:
        raise ValidationError(f"not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValidationError('keyword arguments must be a JSON object, e.g. {"x": 1}')


class clocked(BaseSchedule):
    """One run at ``clocked_time``, then never again (a :class:`ClockedSchedule`)."""

    #: "never": the next run after the clocked time (far enough for any arithmetic on it)
    NEVER = datetime(9999, 1, 1, tzinfo=ZoneInfo("UTC"))

    def __init__(self, clocked_time: datetime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clocked_time = self.maybe_make_aware(clocked_time).astimezone(ZoneInfo("UTC"))

    def next_due(self, after: datetime) -> datetime:
        if self.maybe_make_aware(after) < self.clocked_time:
            return self.clocked_time
        return self.NEVER

    def is_due(self, last_run_at: datetime) -> Any:
        remaining_s = (self.next_due(last_run_at) - self.now()).total_seconds()
        return schedstate(remaining_s <= 0, max(remaining_s, 0.0))

    def __repr__(self) -> str:
        return f"<clocked: {self.clocked_time.isoformat()}>"


class IntervalSchedule(models.Model):  # type: ignore[misc]
    """Every ``every`` ``period`` (runs on multiples of the interval, docs/decisions/0007)."""

    every = models.PositiveIntegerField(help_text="How many periods between runs (at least 1).")
    period = models.CharField(max_length=24, choices=PERIOD_CHOICES, default="seconds")

    class Meta:
        verbose_name = "interval"
        ordering = ["period", "every"]

    def clean(self) -> None:
        if not self.every or self.every < 1:
            raise ValidationError({"every": "must be at least 1"})

    @property
    def schedule(self) -> schedule:
        return schedule(timedelta(**{self.period: self.every}))

    def __str__(self) -> str:
        unit = self.period if self.every != 1 else self.period.rstrip("s")
        return f"every {self.every} {unit}"


class CrontabSchedule(models.Model):  # type: ignore[misc]
    """Cron fields, read in ``timezone`` (empty: the app's ``timezone``)."""

    minute = models.CharField(max_length=240, default="*")
    hour = models.CharField(max_length=96, default="*")
    day_of_week = models.CharField(max_length=64, default="*")
    day_of_month = models.CharField(max_length=124, default="*")
    month_of_year = models.CharField(max_length=64, default="*")
    timezone = models.CharField(
        max_length=63, blank=True, default="", validators=[validate_timezone],
        help_text="An IANA zone (Asia/Shanghai...); empty: the app's timezone.",
    )

    class Meta:
        verbose_name = "crontab"
        ordering = ["month_of_year", "day_of_month", "day_of_week", "hour", "minute"]

    def clean(self) -> None:
        validate_timezone(self.timezone)
        try:
            self.schedule  # noqa: B018 - parsing is the check
        except (ParseException, ValueError) as exc:
            raise ValidationError(str(exc)) from exc

    @property
    def schedule(self) -> crontab:
        return crontab(
            minute=self.minute, hour=self.hour, day_of_week=self.day_of_week,
            day_of_month=self.day_of_month, month_of_year=self.month_of_year,
            tz=self.timezone or None,
        )

    def __str__(self) -> str:
        fields = (self.minute, self.hour, self.day_of_month, self.month_of_year, self.day_of_week)
        return f"{' '.join(fields)} ({self.timezone or 'app timezone'})"


class ClockedSchedule(models.Model):  # type: ignore[misc]
    """One run at a given time (its tasks are one-off)."""

    clocked_time = models.DateTimeField()

    class Meta:
        verbose_name = "clocked"
        ordering = ["clocked_time"]

    @property
    def schedule(self) -> clocked:
        return clocked(self.clocked_time)

    def __str__(self) -> str:
        return f"at {self.clocked_time.isoformat()}"


class PeriodicTask(models.Model):  # type: ignore[misc]
    """A task sent by beat on one schedule."""

    name = models.CharField(max_length=200, unique=True,
                            help_text="Unique; part of every run's task id.")
    task = models.CharField(max_length=200, help_text="The registered task name, e.g. app.add")
    interval = models.ForeignKey(IntervalSchedule, null=True, blank=True,
                                 on_delete=models.CASCADE)
    crontab = models.ForeignKey(CrontabSchedule, null=True, blank=True, on_delete=models.CASCADE)
    clocked = models.ForeignKey(ClockedSchedule, null=True, blank=True,
                                on_delete=models.CASCADE)
    args = models.TextField(blank=True, default="[]", validators=[validate_json_list],
                            help_text="JSON list")
    kwargs = models.TextField(blank=True, default="{}", validators=[validate_json_dict],
                              help_text="JSON object")
    queue = models.CharField(max_length=200, blank=True, default="",
                             help_text="Empty: the task's usual routing.")
    priority = models.PositiveIntegerField(null=True, blank=True)
    expires = models.DateTimeField(null=True, blank=True,
                                   help_text="No run is sent after this time.")
    expire_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Each message expires this long after it is sent.")
    one_off = models.BooleanField(default=False,
                                  help_text="Run once, then disable (clocked tasks always are).")
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True, default="")
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    total_run_count = models.PositiveIntegerField(default=0, editable=False)
    schedule_fingerprint = models.CharField(max_length=500, blank=True, default="",
                                            editable=False)
    date_changed = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "periodic task"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                name="celeriac_beat_one_schedule",
                condition=(
                    Q(interval__isnull=False, crontab__isnull=True, clocked__isnull=True)
                    | Q(interval__isnull=True, crontab__isnull=False, clocked__isnull=True)
                    | Q(interval__isnull=True, crontab__isnull=True, clocked__isnull=False)
                ),
            )
        ]

    def clean(self) -> None:
        chosen = [s for s in (self.interval_id, self.crontab_id, self.clocked_id) if s]
        if len(chosen) != 1:
            raise ValidationError("Choose exactly one schedule: interval, crontab or clocked.")

    @property
    def schedule_row(self) -> IntervalSchedule | CrontabSchedule | ClockedSchedule:
        row: IntervalSchedule | CrontabSchedule | ClockedSchedule | None = (
            self.interval or self.crontab or self.clocked)
        if row is None:
            raise ValueError(f"periodic task {self.name!r} has no schedule")
        return row

    @property
    def is_one_off(self) -> bool:
        return self.one_off or self.clocked_id is not None

    def to_spec(self) -> dict[str, Any]:
        """The ``beat_schedule`` entry this row stands for."""
        options: dict[str, Any] = {}
        if self.queue:
            options["queue"] = self.queue
        if self.priority is not None:
            options["priority"] = self.priority
        if self.expire_seconds:
            options["expires"] = self.expire_seconds
        return {
            "task": self.task,
            "schedule": self.schedule_row.schedule,
            "args": tuple(json.loads(self.args or "[]")),
            "kwargs": json.loads(self.kwargs or "{}"),
            "options": options,
        }

    def __str__(self) -> str:
        return f"{self.name}: {self.schedule_row if self.pk else '-'}"


class ScheduleChange(models.Model):  # type: ignore[misc]
    """One row (``ident`` 1): its ``version`` moves on every change a beat must reload for."""

    ident = models.SmallIntegerField(primary_key=True, default=1, unique=True)
    version = models.BigIntegerField(default=0)
    last_update = models.DateTimeField(null=True)

    class Meta:
        verbose_name = "schedule change"

    @classmethod
    def bump(cls, using: str = "default") -> None:
        from django.utils import timezone

        now = timezone.now()
        rows = cls.objects.using(using)
        if not rows.filter(ident=1).update(version=F("version") + 1, last_update=now):
            rows.get_or_create(ident=1, defaults={"version": 1, "last_update": now})

    @classmethod
    def current(cls, using: str = "default") -> int:
        row = cls.objects.using(using).filter(ident=1).values_list("version", flat=True).first()
        return int(row or 0)
