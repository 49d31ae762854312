"""Process-wide state: the current app, every app created, shared tasks, the running task."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.task import Task


class _Local(threading.local):
    current_app: Celery | None = None
    task_stack: list[Task] | None = None


_local = _Local()
_default_app: Celery | None = None
_apps: weakref.WeakSet[Celery] = weakref.WeakSet()
#: Functions run for every app, existing and future (shared_task registration).
_on_app_finalizers: list[Callable[[Celery], Any]] = []
#: Whether a running task is allowed to block on results (allow_join_result).
_join_local = threading.local()
#: How ``Task.delay_on_commit`` defers a send until the database transaction commits: set by a
#: framework integration (celeriac.contrib.django: ``django.db.transaction.on_commit``).
_on_commit: Callable[[Callable[[], Any]], Any] | None = None


def set_on_commit(hook: Callable[[Callable[[], Any]], Any] | None) -> None:
    """Install the function that runs a callback once the current transaction commits."""
    global _on_commit
    _on_commit = hook


def on_commit(callback: Callable[[], Any]) -> None:
    """Run ``callback`` when the current transaction commits (at once outside a transaction),
    through the hook an integration installed; without one, say which integration is missing."""
    if _on_commit is None:
        raise ImproperlyConfigured(
            "delay_on_commit/apply_async_on_commit need a transaction manager: add "
            "'celeriac.contrib.django' to INSTALLED_APPS (or start the process with the "
            "celeriac CLI and DJANGO_SETTINGS_MODULE set)"
        )
    _on_commit(callback)


def set_current_app(app: Celery) -> None:
    global _default_app
    _default_app = app
    _local.current_app = app


def register_app(app: Celery) -> None:
    _apps.add(app)


def all_apps() -> list[Celery]:
    return list(_apps)


def get_current_app() -> Celery:
    app = _local.current_app or _default_app
    if app is None:
        raise ImproperlyConfigured(
            "No celeriac app has been created: create one with `app = Celery('proj')` "
            "(and import it, e.g. from proj/__init__.py) before using shared tasks."
        )
    return app


def maybe_current_app() -> Celery | None:
    return _local.current_app or _default_app


def connect_on_app_finalize(callback: Callable[[Celery], Any]) -> Callable[[Celery], Any]:
    _on_app_finalizers.append(callback)
    for app in list(_apps):
        callback(app)
    return callback


def app_finalizers() -> list[Callable[[Celery], Any]]:
    return list(_on_app_finalizers)


def push_task(task: Task) -> None:
    stack = _local.task_stack
    if stack is None:
        stack = _local.task_stack = []
    stack.append(task)


def pop_task() -> None:
    stack = _local.task_stack
    if stack:
        stack.pop()


def current_task() -> Task | None:
    stack = _local.task_stack
    return stack[-1] if stack else None


def join_allowed() -> bool:
    return bool(getattr(_join_local, "allowed", 0))


def set_join_allowed(delta: int) -> None:
    _join_local.allowed = getattr(_join_local, "allowed", 0) + delta
