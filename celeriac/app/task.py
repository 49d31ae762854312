"""``celeriac.app.task``: Celery's import path for Task and Context."""

from __future__ import annotations

from celeriac.task import Context, Task

__all__ = ["Context", "Task"]
