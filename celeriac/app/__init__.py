"""``celeriac.app``: the application class and ``shared_task`` (Celery's import paths)."""

from __future__ import annotations

from celeriac.app.base import Celery
from celeriac.app.shared import shared_task

__all__ = ["Celery", "shared_task"]
