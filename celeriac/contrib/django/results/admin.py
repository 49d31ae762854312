"""The results in Django's admin: read-only lists with filters and search."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from celeriac.contrib.django.results.models import ChordCounter, GroupResult, TaskResult


class _ReadOnly(admin.ModelAdmin):  # type: ignore[misc]
    """Workers write these rows; the admin browses and deletes them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TaskResult)
class TaskResultAdmin(_ReadOnly):
    date_hierarchy = "date_done"
    list_display = ("task_id", "task_name", "status", "worker", "queue", "date_created",
                    "date_done")
    list_filter = ("status", "task_name", "worker", "queue", "date_created", "date_done")
    search_fields = ("task_id", "task_name", "task_args", "task_kwargs", "result", "traceback",
                     "worker")
    readonly_fields = ("task_id", "status", "task_name", "task_args", "task_kwargs", "worker",
                       "retries", "queue", "result", "traceback", "date_created", "date_done",
                       "expires_at")
    exclude = ("payload",)


@admin.register(GroupResult)
class GroupResultAdmin(_ReadOnly):
    date_hierarchy = "date_done"
    list_display = ("group_id", "date_created", "date_done")
    list_filter = ("date_created", "date_done")
    search_fields = ("group_id", "result")
    readonly_fields = ("group_id", "result", "date_created", "date_done", "expires_at")
    exclude = ("payload",)


@admin.register(ChordCounter)
class ChordCounterAdmin(_ReadOnly):
    list_display = ("key", "value", "expires_at")
    search_fields = ("key",)
    readonly_fields = ("key", "value", "expires_at")
