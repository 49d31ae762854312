"""The Django fix-up: what a worker, beat or any other command needs to run a Django project's
tasks (Celery's ``celery.fixups.django``, written for celeriac).

The CLI calls :func:`install` right after it has loaded the ``-A`` app. When the process is a
Django one (``DJANGO_SETTINGS_MODULE`` is set, or the app read its configuration from
``django.conf:settings``), it:

* calls ``django.setup()``: models and the app registry are ready before the app finalizes,
  so ``app.autodiscover_tasks()`` (lazy: it runs at finalize) finds ``tasks.py`` in every
  installed app and task modules may import models at module level;
* adds :class:`DjangoMiddleware` to ``worker_middleware``: stale database connections are
  closed before and after every task;
* closes the main process's connections before the pool forks (``worker_init``) and drops any
  a prefork child inherited (``worker_process_init``), so no two processes share a socket;
* installs ``transaction.on_commit`` as the hook of ``Task.delay_on_commit`` /
  ``apply_async_on_commit``.

This module imports Django only inside functions: loading it costs nothing in a process that is
not a Django one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from celeriac import _state, signals
from celeriac.app.base import Celery
from celeriac.middleware import Middleware
from celeriac.task import Context, Task

__all__ = ["MIDDLEWARE", "DjangoMiddleware", "install", "is_django_process", "setup_django"]

SETTINGS_ENVVAR = "DJANGO_SETTINGS_MODULE"
#: the ``worker_middleware`` entry the fix-up adds
MIDDLEWARE = "celeriac.contrib.django.fixup:DjangoMiddleware"

_signals_connected = False


def is_django_process(app: Celery) -> bool:
    """Whether ``app`` runs a Django project: the settings module is named in the environment,
    or the app was configured from ``django.conf:settings``."""
    return bool(os.environ.get(SETTINGS_ENVVAR)) or bool(getattr(app, "_from_django", False))


def setup_django() -> bool:
    """``django.setup()`` once (a no-op when the registry is already populated). False when
    Django is not installed."""
    try:
        import django
        from django.apps import apps
    except ImportError:
        return False
    if not apps.ready:
        django.setup(set_prefix=False)
    return True


def install(app: Celery) -> bool:
    """Prepare ``app``'s process for a Django project (see the module doc); False, doing
    nothing, when it is not a Django process."""
    if not is_django_process(app) or not setup_django():
        return False
    from django.db import transaction

    current = list(app.conf.get("worker_middleware") or ())
    if MIDDLEWARE not in current and DjangoMiddleware not in current:
        app.conf.worker_middleware = [*current, MIDDLEWARE]
    _state.set_on_commit(transaction.on_commit)
    _connect_signals()
    return True


def install_on_commit() -> None:
    """Only the ``delay_on_commit`` hook (a web process: ``CeleriacConfig.ready``)."""
    from django.db import transaction

    _state.set_on_commit(transaction.on_commit)


def _connect_signals() -> None:
    global _signals_connected
    if _signals_connected:
        return
    _signals_connected = True
    signals.worker_init.connect(_close_before_fork, weak=False)
    signals.worker_process_init.connect(_forget_inherited, weak=False)


def close_stale_connections() -> None:
    """Close connections that errored or outlived ``CONN_MAX_AGE`` (what Django does around a
    request)."""
    from django.db import close_old_connections

    close_old_connections()


def _close_before_fork(**_: Any) -> None:
    """Main process, before the pool starts: children inherit no open connection."""
    from django.db import connections

    connections.close_all()


def _forget_inherited(**_: Any) -> None:
    """A prefork child: drop connections inherited from the parent without closing them (a
    close would end the parent's session on the shared socket); the next query reconnects."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            conn.connection = None
            conn.closed_in_transaction = False
            conn.in_atomic_block = False
            conn.savepoint_ids = []
            conn.needs_rollback = False


class DjangoMiddleware(Middleware):
    """Closes stale database connections before and after each task, where the task runs (as
    Django does around each request), so a task never meets a connection the database already
    dropped or one left broken by the previous task."""

    def before_task(
        self, task: Task, request: Context, args: Sequence[Any], kwargs: dict[str, Any]
    ) -> None:
        if not request.is_eager:
            close_stale_connections()

    def after_task(
        self,
        task: Task,
        request: Context,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        state: str,
        retval: Any,
    ) -> None:
        # An eager task runs inside the caller's (maybe atomic) connection: leave it alone.
        if not request.is_eager:
            close_stale_connections()
