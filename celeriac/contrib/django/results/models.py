"""Where ``django-db`` keeps task results, group results and chord counters.

``payload`` holds the record exactly as the worker encoded it (Celery's result meta, see
:mod:`celeriac.result_meta`), so ``AsyncResult`` reads it back unchanged whatever the result
serializer. The other columns are the same record decoded when it is JSON, for the admin and for
queries; they are never read back by celeriac. ``expires_at`` is checked on every read, so an
expired record is invisible at once; the rows themselves go in ``cleanup()``.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from celeriac import states

_STATE_CHOICES = sorted((state, state) for state in states.ALL_STATES)


class _Record(models.Model):  # type: ignore[misc]
    """What task and group records share: the encoded record, its dates and its expiry."""

    payload = models.BinaryField("stored record")
    date_created = models.DateTimeField("created", default=timezone.now, db_index=True)
    date_done = models.DateTimeField("done", null=True, db_index=True)
    expires_at = models.DateTimeField("expires", null=True, db_index=True)

    class Meta:
        abstract = True
        ordering = ("-date_done",)


class TaskResult(_Record):
    task_id = models.CharField("task id", max_length=255, unique=True)
    status = models.CharField(
        "state", max_length=50, choices=_STATE_CHOICES, default=states.PENDING, db_index=True
    )
    task_name = models.CharField("task name", max_length=255, null=True, db_index=True)
    task_args = models.TextField("positional arguments", null=True)
    task_kwargs = models.TextField("keyword arguments", null=True)
    worker = models.CharField("worker", max_length=255, null=True, db_index=True)
    retries = models.IntegerField("retries", null=True)
    queue = models.CharField("queue", max_length=255, null=True)
    result = models.TextField("result", null=True, help_text="The result or exception, as JSON.")
    traceback = models.TextField("traceback", null=True)

    class Meta(_Record.Meta):
        verbose_name = "task result"
        verbose_name_plural = "task results"

    def __str__(self) -> str:
        return f"<Task: {self.task_id} ({self.status})>"


class GroupResult(_Record):
    """A saved group (``GroupResult.save()``; every chord saves its header)."""

    group_id = models.CharField("group id", max_length=255, unique=True)
    result = models.TextField("member task ids", null=True, help_text="JSON list of task ids.")

    class Meta(_Record.Meta):
        verbose_name = "group result"
        verbose_name_plural = "group results"

    def __str__(self) -> str:
        return f"<Group: {self.group_id}>"


class ChordCounter(models.Model):  # type: ignore[misc]
    """How many members of a chord's header have finished (the backend's ``incr`` counters)."""

    key = models.CharField("counter", max_length=255, unique=True)
    value = models.BigIntegerField("count", default=0)
    expires_at = models.DateTimeField("expires", null=True, db_index=True)

    class Meta:
        verbose_name = "chord counter"
        verbose_name_plural = "chord counters"

    def __str__(self) -> str:
        return f"<Counter: {self.key} = {self.value}>"
