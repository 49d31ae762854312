"""A backend for Django's Tasks framework (``django.tasks`` in Django 6; the ``django-tasks``
backport on Django 5.2) that runs ``@task`` functions on celeriac workers::

    TASKS = {"default": {"BACKEND": "celeriac.contrib.django.tasks.CeleriacBackend"}}

``task.enqueue(...)`` sends one celeriac message to the generic task
``celeriac.contrib.django.run_task`` with the Django task's module path and its arguments; a
worker looks the path up among the Django tasks *its own code defined* and calls the function.
Results and status come back through the celeriac result backend
(``backend.get_result(id)`` / ``result.refresh()``: ``status``, ``return_value``, ``errors``).

Safety: the worker never imports a module or calls a function because a message named it. A
path runs only if a ``@task`` with this backend was defined in the worker's process (every
such task registers itself when its module is imported: ``tasks.py`` of an installed app via
``app.autodiscover_tasks()``, or the modules in celeriac's ``imports`` setting); any other
path fails with :class:`UnknownDjangoTask` and nothing is called.

The result id is ``"<uuid>:<module path of the task>"`` so that ``get_result`` knows the task
of a result that has not run yet; it imports that module only if it belongs to an installed app.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac._state import get_current_app
from celeriac._utils.imports import symbol_by_name
from celeriac.app.shared import shared_task
from celeriac.result import AsyncResult

if TYPE_CHECKING:
    from celeriac.app.base import Celery

def _tasks_modules() -> tuple[Any, Any, Any, Any] | None:
    """Django 6's ``django.tasks`` or the ``django_tasks`` backport (base, backends.base,
    exceptions, signals); None without either (importing this module must still work: the
    worker's autodiscovery imports it)."""
    for package in ("django.tasks", "django_tasks"):
        try:
            return tuple(  # type: ignore[return-value]
                importlib.import_module(f"{package}.{name}")
                for name in ("base", "backends.base", "exceptions", "signals")
            )
        except ImportError:
            continue
    return None


_api = _tasks_modules()
HAVE_TASKS = _api is not None
if _api is not None:
    _base, _backends, _exceptions, _signals = _api
    BaseTaskBackend: Any = _backends.BaseTaskBackend
    Task: Any = _base.Task
    TaskContext: Any = _base.TaskContext
    TaskError: Any = _base.TaskError
    TaskResult: Any = _base.TaskResult
    TaskResultStatus: Any = _base.TaskResultStatus
    DEFAULT_TASK_PRIORITY: int = _base.DEFAULT_TASK_PRIORITY
    TASK_MIN_PRIORITY: int = _base.TASK_MIN_PRIORITY
    TASK_MAX_PRIORITY: int = _base.TASK_MAX_PRIORITY
    TaskResultDoesNotExist: Any = _exceptions.TaskResultDoesNotExist
    task_enqueued: Any = _signals.task_enqueued
else:
    BaseTaskBackend = Task = object

__all__ = ["RUNNER_NAME", "CeleriacBackend", "CeleriacTask", "UnknownDjangoTask", "run_task"]

logger = logging.getLogger("celeriac.contrib.django")

#: the celeriac task that runs Django tasks on a worker
RUNNER_NAME = "celeriac.contrib.django.run_task"
#: module path -> the Django task defined with this backend in this process
_REGISTRY: dict[str, Any] = {}
#: Django's priorities, mapped onto celeriac's 0-9 (9 first)
_CELERIAC_MAX_PRIORITY = 9

_STATUS = {
    states.PENDING: "READY",
    states.RECEIVED: "READY",
    states.RETRY: "READY",
    states.STARTED: "RUNNING",
    states.SUCCESS: "SUCCESSFUL",
    states.FAILURE: "FAILED",
    states.REVOKED: "FAILED",
    states.REJECTED: "FAILED",
}


class UnknownDjangoTask(LookupError):
    """A message named something that is no Django task defined with this backend here."""


class CeleriacTask(Task):  # type: ignore[misc]
    """Django's ``Task``, registering itself so that workers may run it by module path."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _REGISTRY.setdefault(self.module_path, self)


def registered_task(module_path: str) -> Any:
    """The Django task defined (imported) in this process under ``module_path``; never imports."""
    task = _REGISTRY.get(module_path)
    if task is None:
        raise UnknownDjangoTask(
            f"{module_path!r} is not a Django task defined with CeleriacBackend in this worker: "
            "only @task functions whose module the worker imported (an installed app's tasks.py "
            "with app.autodiscover_tasks(), or celeriac's `imports` setting) are run"
        )
    return task


@shared_task(name=RUNNER_NAME, bind=True)
def run_task(self: Any, module_path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Run the Django task ``module_path`` (a registered one only) and return its JSON value."""
    task = registered_task(module_path)
    if task.takes_context:
        now = _now()
        context_result = TaskResult(
            task=task, id=str(self.request.id), status=TaskResultStatus.RUNNING,
            enqueued_at=None, started_at=now, finished_at=None, last_attempted_at=now,
            args=args, kwargs=kwargs, backend=task.backend, errors=[],
            worker_ids=[str(self.request.hostname or "")] * (self.request.retries + 1),
        )
        value = task.call(TaskContext(task_result=context_result), *args, **kwargs)
    else:
        value = task.call(*args, **kwargs)
    return _normalize(value)


class CeleriacBackend(BaseTaskBackend):  # type: ignore[misc]
    """``TASKS = {"default": {"BACKEND": "celeriac.contrib.django.tasks.CeleriacBackend",
    "OPTIONS": {"APP": "proj.celery:app"}}}``; without ``APP``, the current celeriac app (the
    one the project's ``celery.py`` created). Django's ``queue_name`` is the celeriac queue
    (``"default"``: the task's usual routing); ``run_after`` becomes the message's eta."""

    task_class = CeleriacTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        if not HAVE_TASKS:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                "CeleriacBackend needs Django 6 (django.tasks) or, on Django 5.2, the "
                "django-tasks package: pip install 'celeriac[django]'"
            )
        super().__init__(alias, params)
        self._app_path: str | None = self.options.get("APP")

    @property
    def app(self) -> Celery:
        if self._app_path:
            app: Celery = symbol_by_name(self._app_path)
            return app
        return get_current_app()

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        _REGISTRY.setdefault(task.module_path, task)
        result_id = f"{uuid.uuid4()}:{task.module_path}"
        options: dict[str, Any] = {}
        if task.queue_name != "default":
            options["queue"] = task.queue_name
        if task.priority != DEFAULT_TASK_PRIORITY:
            span = TASK_MAX_PRIORITY - TASK_MIN_PRIORITY
            options["priority"] = round(
                (task.priority - TASK_MIN_PRIORITY) * _CELERIAC_MAX_PRIORITY / span)
        if task.run_after is not None:
            options["eta"] = task.run_after
        arguments = [task.module_path, _normalize(list(args)), _normalize(dict(kwargs))]
        self.app.send_task(RUNNER_NAME, arguments, task_id=result_id, **options)
        result = TaskResult(
            task=task, id=result_id, status=TaskResultStatus.READY, enqueued_at=_now(),
            started_at=None, finished_at=None, last_attempted_at=None, args=list(args),
            kwargs=dict(kwargs), backend=self.alias, errors=[], worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        """The result as the celeriac result backend has it. A result it does not know is
        ``READY`` (celeriac cannot tell "not run yet" from "no such id")."""
        _, sep, module_path = result_id.partition(":")
        if not sep:
            raise TaskResultDoesNotExist(result_id)
        try:
            task = self._task_for(module_path)
        except UnknownDjangoTask as exc:
            raise TaskResultDoesNotExist(result_id) from exc
        async_result = AsyncResult(result_id, app=self.app)
        state = async_result.state
        status = TaskResultStatus[_STATUS.get(state, "READY")]
        finished_at = async_result.date_done if status in (
            TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED) else None
        errors = []
        if status == TaskResultStatus.FAILED:
            exc_value = async_result.result
            exc_type = type(exc_value) if isinstance(exc_value, BaseException) else Exception
            errors.append(TaskError(
                exception_class_path=f"{exc_type.__module__}.{exc_type.__qualname__}",
                traceback=async_result.traceback or "",
            ))
        worker = _extended(async_result, "worker")
        call_args = _extended(async_result, "args")
        call_args = call_args if isinstance(call_args, list | tuple) and len(call_args) == 3 else (
            None, [], {})
        result = TaskResult(
            task=task, id=result_id, status=status, enqueued_at=None,
            started_at=None, finished_at=finished_at, last_attempted_at=finished_at,
            args=list(call_args[1] or []), kwargs=dict(call_args[2] or {}), backend=self.alias,
            errors=errors, worker_ids=[worker] if worker else [],
        )
        if status == TaskResultStatus.SUCCESSFUL:
            object.__setattr__(result, "_return_value", async_result.result)
        return result

    def _task_for(self, module_path: str) -> Any:
        """The task of a result id: registered here, or (only for an installed app's module)
        imported; a path outside the installed apps is never imported."""
        if module_path in _REGISTRY:
            return _REGISTRY[module_path]
        from django.apps import apps
        from django.utils.module_loading import import_string

        if not any(module_path.startswith(config.name + ".") for config in apps.get_app_configs()):
            raise UnknownDjangoTask(module_path)
        try:
            import_string(module_path)
        except ImportError as exc:
            raise UnknownDjangoTask(module_path) from exc
        return registered_task(module_path)


def _extended(result: AsyncResult, name: str) -> Any:
    try:
        return getattr(result, name)
    except Exception:  # no result_extended, or a backend without the field
        return None


def _now() -> datetime:
    from django.utils import timezone

    now: datetime = timezone.now()
    return now


def _normalize(value: Any) -> Any:
    """JSON types only, as Django's backends store them (tuples become lists...)."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"a Django task's arguments and return value must be JSON, not {value!r}")
