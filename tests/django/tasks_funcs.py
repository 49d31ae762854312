"""Django ``@task`` functions for the ``django.tasks`` tests (imported once TASKS names
CeleriacBackend: tests/django/tasks_settings.py in the worker, a settings override in the test)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

try:
    from django.tasks import task  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from django_tasks import task


@task()
def add(x: int, y: int) -> int:
    return x + y


@task(queue_name="default")
def greet(name: str, *, punctuation: str = "!") -> dict[str, Any]:
    return {"text": f"hello {name}{punctuation}", "pid": os.getpid()}


@task()
def fail(message: str) -> None:
    raise ValueError(message)


@task(takes_context=True)
def with_context(context: Any, tag: str) -> list[Any]:
    return [tag, context.attempt, context.task_result.id]


def not_a_task(marker: str) -> None:
    """A plain function: a message naming it must not run it."""
    Path(marker).write_text("ran")
