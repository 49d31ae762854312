"""Admin pages for periodic tasks and their schedules, with enable/disable/run-again actions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from celeriac.contrib.django.beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    ScheduleChange,
)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(admin.ModelAdmin):  # type: ignore[misc]
    list_display = ("name", "task", "enabled", "one_off", "interval", "crontab", "clocked",
                    "last_run_at", "total_run_count")
    list_filter = ("enabled", "one_off", "queue")
    search_fields = ("name", "task", "description")
    readonly_fields = ("last_run_at", "total_run_count", "date_changed")
    actions = ("enable_tasks", "disable_tasks", "reset_last_run")
    fieldsets = (
        (None, {"fields": ("name", "task", "enabled", "description")}),
        ("Schedule (choose exactly one)", {"fields": ("interval", "crontab", "clocked",
                                                      "one_off")}),
        ("Arguments", {"fields": ("args", "kwargs")}),
        ("Options", {"fields": ("queue", "priority", "expires", "expire_seconds")}),
        ("Runs", {"fields": ("last_run_at", "total_run_count", "date_changed")}),
    )

    def _set(self, request: HttpRequest, queryset: QuerySet[Any], **values: Any) -> int:
        count: int = queryset.update(**values)
        ScheduleChange.bump(using=queryset.db)  # update() sends no signal: tell the beats
        return count

    @admin.action(description="Enable the selected tasks")  # type: ignore[untyped-decorator]
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = self._set(request, queryset, enabled=True)
        self.message_user(request, f"{count} task(s) enabled.", messages.SUCCESS)

    @admin.action(description="Disable the selected tasks")  # type: ignore[untyped-decorator]
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = self._set(request, queryset, enabled=False)
        self.message_user(request, f"{count} task(s) disabled.", messages.SUCCESS)

    @admin.action(description="Forget the last run (start afresh)")  # type: ignore[untyped-decorator]
    def reset_last_run(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = self._set(request, queryset, last_run_at=None, schedule_fingerprint="")
        self.message_user(request, f"{count} task(s) start afresh.", messages.SUCCESS)


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(admin.ModelAdmin):  # type: ignore[misc]
    list_display = ("__str__", "every", "period")


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(admin.ModelAdmin):  # type: ignore[misc]
    list_display = ("__str__", "minute", "hour", "day_of_month", "month_of_year", "day_of_week",
                    "timezone")


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(admin.ModelAdmin):  # type: ignore[misc]
    list_display = ("__str__", "clocked_time")
