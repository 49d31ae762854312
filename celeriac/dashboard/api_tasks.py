"""Flower's task endpoints: the history (list, info, types), results, sending, revoke, abort.

``/api/tasks`` answers the total matching count in the ``X-Total-Count`` header. A call's body
is a JSON object with ``args``, ``kwargs`` and only the ``apply_async`` options in
:data:`APPLY_OPTIONS`, each of its JSON type (anything else is a 400). Endpoints that read
results answer 503 without a result backend; ``apply`` and ``result`` wait at most
``?timeout=`` seconds (``apply`` without one waits as long as the task takes, as Flower does).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from celeriac import states
from celeriac.control import signal_name
from celeriac.dashboard.api_http import (
    DATE_FORMAT,
    JSON,
    HTTPError,
    call_body,
    flag,
    integer,
    read_params,
    timeout,
    unless_all,
    when,
)
from celeriac.exceptions import TimeoutError as ResultTimeout

if TYPE_CHECKING:
    from celeriac.dashboard.app import Dashboard

__all__ = [
    "APPLY_OPTIONS", "list_tasks", "task_abort", "task_apply", "task_async_apply", "task_info",
    "task_result", "task_revoke", "task_send", "task_types",
]

#: the apply_async options the task endpoints pass on; anything else is a 400
APPLY_OPTIONS = frozenset({"countdown", "eta", "expires", "queue", "priority", "task_id",
                           "routing_key", "exchange", "time_limit", "soft_time_limit",
                           "ignore_result", "headers", "shadow"})
#: the JSON types each option may have (eta/expires strings are parsed below)
_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "countdown": (int, float, str), "eta": (str,), "expires": (int, float, str),
    "queue": (str,), "priority": (int,), "task_id": (str,), "routing_key": (str,),
    "exchange": (str,), "time_limit": (int, float), "soft_time_limit": (int, float),
    "ignore_result": (bool,), "headers": (dict,), "shadow": (str,),
}


# -- history -------------------------------------------------------------------------------------
def _filters(params: Any) -> dict[str, Any]:
    return {
        "workername": unless_all(params.get("workername")),
        "taskname": unless_all(params.get("taskname")),
        "state": unless_all(params.get("state")),
        "received_start": when(params.get("received_start"), "received_start"),
        "received_end": when(params.get("received_end"), "received_end"),
        "search": params.get("search") or None,
    }


async def list_tasks(dashboard: Dashboard, request: Request) -> Response:
    params = dict(request.query_params)
    limit = integer(params, "limit", minimum=0)
    offset = integer(params, "offset", 0) or 0
    filters = _filters(params)
    sort_by = params.get("sort_by") or None

    def query() -> tuple[list[dict[str, Any]], int]:
        rows = dashboard.history.tasks(limit=limit, offset=max(offset, 0), sort_by=sort_by,
                                       **filters)
        return rows, dashboard.history.count(**filters)

    try:
        rows, total = await run_in_threadpool(query)
    except ValueError as exc:
        raise HTTPError(400, str(exc))
    return JSON({row["uuid"]: row for row in rows}, headers={"X-Total-Count": str(total)})


async def task_types(dashboard: Dashboard, request: Request) -> Response:
    names = await run_in_threadpool(dashboard.history.task_types)
    return JSON({"task-types": names})


async def task_info(dashboard: Dashboard, request: Request) -> Response:
    task_id = request.path_params["task_id"]
    task = await run_in_threadpool(dashboard.history.task, task_id)
    if task is None:
        raise HTTPError(404, f"Unknown task '{task_id}'")
    return JSON({**task, "task-id": task_id})


# -- results -------------------------------------------------------------------------------------
def _safe(value: Any) -> Any:
    try:
        orjson.dumps(value)
    except TypeError:
        return repr(value)
    return value


def _backend_configured(dashboard: Dashboard) -> bool:
    return dashboard.app.result_backend_url is not None


def _outcome(result: Any, response: dict[str, Any]) -> dict[str, Any]:
    response["state"] = result.state
    if result.ready():
        response["result"] = _safe(result.result)
        if result.state == states.FAILURE:
            response["traceback"] = result.traceback
    return response


def _wait_outcome(result: Any, task_id: str, timeout_s: float | None) -> dict[str, Any]:
    """The outcome once ready or after ``timeout_s`` (None: as long as it takes). Blocks."""
    try:
        result.get(timeout=timeout_s, propagate=False, disable_sync_subtasks=False)
    except ResultTimeout:
        pass
    return _outcome(result, {"task-id": task_id})


async def task_result(dashboard: Dashboard, request: Request) -> Response:
    task_id = request.path_params["task_id"]
    timeout_s = timeout(dict(request.query_params))
    if not _backend_configured(dashboard):
        raise HTTPError(503, "no result backend is configured")
    result = dashboard.app.AsyncResult(task_id)

    def wait() -> dict[str, Any]:
        if timeout_s:
            return _wait_outcome(result, task_id, timeout_s)
        return _outcome(result, {"task-id": task_id})

    return JSON(await run_in_threadpool(wait))


# -- sending -------------------------------------------------------------------------------------
def _task_call(params: dict[str, Any]) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    args = params.pop("args", [])
    kwargs = params.pop("kwargs", {})
    if not isinstance(args, list):
        raise HTTPError(400, "args must be an array")
    if not isinstance(kwargs, dict):
        raise HTTPError(400, "kwargs must be an object")
    unknown = sorted(set(params) - APPLY_OPTIONS)
    if unknown:
        raise HTTPError(400, f"unknown option(s): {', '.join(map(str, unknown))[:200]}")
    for key, kinds in _OPTION_TYPES.items():
        value = params.get(key)
        if value is not None and ((isinstance(value, bool) and bool not in kinds)
                                  or not isinstance(value, kinds)):
            raise HTTPError(400, f"Invalid option {key}")
    options = dict(params)
    try:
        if "countdown" in options:
            options["countdown"] = float(options["countdown"])
        if "eta" in options:
            options["eta"] = datetime.strptime(str(options["eta"]), DATE_FORMAT)
        if "expires" in options:
            try:
                options["expires"] = float(options["expires"])
            except (TypeError, ValueError):
                options["expires"] = datetime.strptime(str(options["expires"]), DATE_FORMAT)
    except (TypeError, ValueError, OverflowError):
        raise HTTPError(400, "Invalid option")
    return args, kwargs, options


def _send(dashboard: Dashboard, name: str, args: list[Any], kwargs: dict[str, Any],
          options: dict[str, Any]) -> Any:
    """A registered task through ``apply_async`` (arguments checked against its signature),
    any other name through ``send_task``."""
    try:
        if name in dashboard.app.tasks:
            return dashboard.app.tasks[name].apply_async(args=args, kwargs=kwargs, **options)
        return dashboard.app.send_task(name, args=args, kwargs=kwargs, **options)
    except HTTPError:
        raise
    except Exception as exc:  # bad arguments for the task's signature, a bad option value
        raise HTTPError(400, f"{type(exc).__name__}: {exc}")


async def _send_without_waiting(dashboard: Dashboard, request: Request, *,
                                registered_only: bool) -> Response:
    """``{"task-id"}``, with the task's ``state`` when a result backend is configured."""
    name = request.path_params["name"]
    args, kwargs, options = _task_call(await call_body(request))
    if registered_only and name not in dashboard.app.tasks:
        raise HTTPError(404, f"Unknown task '{name}'")
    result = await run_in_threadpool(_send, dashboard, name, args, kwargs, options)
    response: dict[str, Any] = {"task-id": result.id}
    if _backend_configured(dashboard):
        response["state"] = await run_in_threadpool(lambda: result.state)
    return JSON(response)


async def task_async_apply(dashboard: Dashboard, request: Request) -> Response:
    """A task registered with this app (else 404)."""
    return await _send_without_waiting(dashboard, request, registered_only=True)


async def task_send(dashboard: Dashboard, request: Request) -> Response:
    """Any task name, registered here or not (``send_task``)."""
    return await _send_without_waiting(dashboard, request, registered_only=False)


async def task_apply(dashboard: Dashboard, request: Request) -> Response:
    """Send and wait for the result (Flower waits without limit; ``?timeout=`` bounds it)."""
    name = request.path_params["name"]
    timeout_s = timeout(dict(request.query_params))
    args, kwargs, options = _task_call(await call_body(request))
    if name not in dashboard.app.tasks:
        raise HTTPError(404, f"Unknown task '{name}'")
    if not _backend_configured(dashboard):
        raise HTTPError(503, "no result backend is configured")
    result = await run_in_threadpool(_send, dashboard, name, args, kwargs, options)
    return JSON(await run_in_threadpool(_wait_outcome, result, result.id, timeout_s))


# -- stopping ------------------------------------------------------------------------------------
async def task_revoke(dashboard: Dashboard, request: Request) -> Response:
    task_id = request.path_params["task_id"]
    params = await read_params(request)
    terminate = flag(params, "terminate")
    signal = params.get("signal") or None
    if terminate:
        try:
            signal = signal_name(signal)
        except (ValueError, TypeError):
            raise HTTPError(400, f"cannot terminate with signal {str(signal)[:40]!r}")
    await run_in_threadpool(dashboard.app.control.revoke, task_id, terminate=terminate,
                            signal=signal)
    return JSON({"message": f"Revoked '{task_id}'"})


async def task_abort(dashboard: Dashboard, request: Request) -> Response:
    """Celery's ``AbortableAsyncResult.abort()``: the result store says ``ABORTED`` (an
    unfinished task only: a stored outcome is never overwritten); the task reads it."""
    task_id = request.path_params["task_id"]
    if not _backend_configured(dashboard):
        raise HTTPError(503, "no result backend is configured")

    def abort() -> None:
        if dashboard.app.AsyncResult(task_id).state not in states.READY_STATES:
            dashboard.app.store_result(task_id, None, "ABORTED")

    await run_in_threadpool(abort)
    return JSON({"message": f"Aborted '{task_id}'"})
