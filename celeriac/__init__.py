"""celeriac: a distributed task queue with Celery's API, built for speed and safety."""

from __future__ import annotations

from typing import Any

from celeriac import states
from celeriac._state import current_task as _current_task
from celeriac._state import get_current_app as _get_current_app
from celeriac.app.base import Celery
from celeriac.app.shared import shared_task
from celeriac.canvas import (
    Signature,
    chain,
    chord,
    chunks,
    group,
    maybe_signature,
    signature,
    subtask,
    xmap,
    xstarmap,
)
from celeriac.queues import Exchange, Queue
from celeriac.signals import Signal
from celeriac.task import Task

__version__ = "0.1.0"
VERSION = tuple(int(p) for p in __version__.split("."))

class _CurrentApp:
    """``celeriac.current_app``: the app that is current in this thread."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(_get_current_app(), attr)

    def __repr__(self) -> str:
        return repr(_get_current_app())


class _CurrentTask:
    def __getattr__(self, attr: str) -> Any:
        return getattr(_current_task(), attr)

    def __bool__(self) -> bool:
        return _current_task() is not None


current_app = _CurrentApp()
current_task = _CurrentTask()


__all__ = [
    "VERSION",
    "Celery",
    "Exchange",
    "Queue",
    "Signal",
    "Signature",
    "Task",
    "__version__",
    "chain",
    "chord",
    "chunks",
    "current_app",
    "current_task",
    "group",
    "maybe_signature",
    "shared_task",
    "signature",
    "states",
    "subtask",
    "xmap",
    "xstarmap",
]
