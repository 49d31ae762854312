"""Flower's HTTP API: the same paths, parameters, status codes and JSON shapes (Flower 2.x).

Parameters are read from the query string, then from a form or JSON-object body (Flower
accepts both); booleans are ``1/true/True/yes/on`` or ``0/false/False/no/off`` (anything
else is a 400; Flower took ``terminate=false`` as true). Blocking work (inspect, control,
history queries, waiting on results) runs in the thread pool, never on the event loop.

Besides Flower's endpoints: ``GET /api/events/stream`` (Server-Sent Events, one Celery event
dict per ``data:`` line), ``GET /api/dashboard/workers`` (live worker state from events) and
``GET /api/dashboard/series`` (per-bucket counts for charts). ``/api/queues/length`` items
carry ``oldest_age_s`` beside Flower's ``name`` and ``messages``. ``/api/tasks`` answers the
total matching count in the ``X-Total-Count`` header.
"""

from __future__ import annotations

import asyncio
import json
import math
import queue
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from celeriac import states
from celeriac.control import signal_name
from celeriac.exceptions import TimeoutError as ResultTimeout

if TYPE_CHECKING:
    from celeriac.dashboard.app import Dashboard

__all__ = ["HTTPError", "JSON", "routes"]

#: Flower's inspect methods, whose replies make up a worker's entry in /api/workers
INSPECT_METHODS = ("stats", "active_queues", "registered", "scheduled", "active", "reserved",
                   "revoked", "conf")
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
#: Flower's date format for eta / expires / received_start / received_end
DATE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
RECEIVED_FORMAT = "%Y-%m-%d %H:%M"
#: at most this many bytes of request body are read
MAX_BODY_BYTES = 1 << 20
#: the longest ``?timeout=`` a request may wait for a result
MAX_WAIT_S = 3600.0
#: bounds of /api/dashboard/series
MIN_BUCKET_S = 0.01
MAX_BUCKET_S = 86400.0
MAX_WINDOW_S = 31 * 86400.0
MAX_BUCKETS = 10_000
#: a comment line on the event stream this often, so proxies keep it open
STREAM_KEEPALIVE_S = 15.0
#: the spellings a boolean parameter accepts (anything else is a 400)
TRUE_VALUES = ("1", "true", "True", "yes", "on")
FALSE_VALUES = ("0", "false", "False", "no", "off", "")


class JSON(Response):
    """JSON via orjson: non-finite floats become null, unknown objects their ``repr``."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=repr, option=orjson.OPT_NON_STR_KEYS)


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[["Dashboard", Request], Awaitable[Response]]


def _endpoint(dashboard: Dashboard, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(dashboard, request)
        except HTTPError as exc:
            return JSON({"error": exc.message}, status_code=exc.status)

    return endpoint


# -- parameters ---------------------------------------------------------------------------------
async def _params(request: Request) -> dict[str, Any]:
    """Query parameters, overlaid by a form or JSON-object body's fields."""
    found: dict[str, Any] = dict(request.query_params)
    if request.method in ("GET", "HEAD"):
        return found
    body = await _body(request)
    if not body:
        return found
    http_headers = request.headers  # HTTP headers (not a task message's)
    kind = http_headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        data = _json_object(body)
        found.update(data)
    elif kind == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl

        found.update(parse_qsl(body.decode("utf-8", "replace")))
    return found


async def _body(request: Request) -> bytes:
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPError(413, f"request body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise HTTPError(400, f"invalid JSON: {exc}")
    if not isinstance(data, dict):
        raise HTTPError(400, "the body must be a JSON object")
    return data


def _flag(params: Any, name: str) -> bool:
    value = params.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    if str(value) in TRUE_VALUES:
        return True
    if str(value) in FALSE_VALUES:
        return False
    raise HTTPError(400, f"{name} must be one of {', '.join(TRUE_VALUES + FALSE_VALUES[:-1])}")


def _int(params: dict[str, Any], name: str, default: int | None = None, *,
         minimum: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise HTTPError(400, f"{name} must be an integer")
    if minimum is not None and number < minimum:
        raise HTTPError(400, f"{name} must be at least {minimum}")
    return number


def _timeout(params: dict[str, Any]) -> float | None:
    timeout_s = _float(params, "timeout")
    if timeout_s is not None and not 0 <= timeout_s <= MAX_WAIT_S:
        raise HTTPError(400, f"timeout must be between 0 and {MAX_WAIT_S:.0f} seconds")
    return timeout_s


def _float(params: dict[str, Any], name: str) -> float | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise HTTPError(400, f"{name} must be a number")
    if not math.isfinite(number):
        raise HTTPError(400, f"{name} must be a finite number")
    return number


def _required(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or str(value) == "":
        raise HTTPError(400, f"missing argument {name}")
    return str(value)


def _when(value: Any, name: str) -> float | None:
    """An epoch-seconds number, or Flower's ``%Y-%m-%d %H:%M`` (local time)."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
        if math.isfinite(number):
            return number
    except (TypeError, ValueError):
        pass
    for fmt in (RECEIVED_FORMAT, DATE_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(str(value), fmt).timestamp()
        except (ValueError, OverflowError, OSError):
            continue
    raise HTTPError(400, f"{name} must be epoch seconds or {RECEIVED_FORMAT!r}")


def _all(value: Any) -> str | None:
    """Flower's filters treat ``All`` (and an empty value) as no filter."""
    return None if value in (None, "", "All") else str(value)


# -- workers ------------------------------------------------------------------------------------
def update_workers(dashboard: Dashboard, workername: str | None = None) -> None:
    """Ask the workers (one, or every one) Flower's inspect questions, in parallel threads,
    and keep the replies in ``dashboard.worker_cache``. Waits at most the inspect timeout."""
    import concurrent.futures

    online = [name for name, info in dashboard.collector.workers().items() if info.get("status")]
    limit = 1 if workername else (len(online) or None)
    inspect = dashboard.app.control.inspect(
        destination=[workername] if workername else None,
        timeout=dashboard.config.inspect_timeout_s, limit=limit)
    with concurrent.futures.ThreadPoolExecutor(len(INSPECT_METHODS)) as pool:
        futures = {method: pool.submit(getattr(inspect, method)) for method in INSPECT_METHODS}
    now = time.time()
    with dashboard.cache_lock:
        for method, future in futures.items():
            replies = future.result() or {}
            for worker, reply in replies.items():
                if reply is not None:
                    info = dashboard.worker_cache.setdefault(worker, {})
                    info[method] = reply
                    info["timestamp"] = now


def _is_worker(dashboard: Dashboard, name: str) -> bool:
    return name in dashboard.worker_cache or name in dashboard.collector.workers()


async def list_workers(dashboard: Dashboard, request: Request) -> Response:
    params = request.query_params
    refresh = _flag(params, "refresh")
    workername = params.get("workername") or None
    if _flag(params, "status"):
        live = dashboard.collector.workers()
        return JSON({name: bool(info.get("status")) for name, info in live.items()})
    known = dashboard.worker_cache
    missing = [name for name, info in dashboard.collector.workers().items()
               if info.get("status") and name not in known]
    if refresh or missing or (workername and workername not in known):
        await run_in_threadpool(update_workers, dashboard, workername)
    if workername:
        if workername not in dashboard.worker_cache:
            raise HTTPError(404, f"Unknown worker '{workername}'")
        return JSON({workername: dashboard.worker_cache[workername]})
    return JSON(dashboard.worker_cache)


def _reply_of(workername: str, replies: list[dict[str, Any]] | None) -> dict[str, Any]:
    for item in replies or ():
        if workername in item and isinstance(item[workername], dict):
            reply: dict[str, Any] = item[workername]
            return reply
    return {"error": "no reply from the worker in time"}


async def _control(dashboard: Dashboard, workername: str, method: str, arguments: dict[str, Any],
                   message: Callable[[dict[str, Any]], str], failure: str) -> Response:
    if not _is_worker(dashboard, workername):
        raise HTTPError(404, f"Unknown worker '{workername}'")
    replies = await run_in_threadpool(
        dashboard.app.control.broadcast, method, arguments=arguments, destination=[workername],
        reply=True, timeout=dashboard.config.inspect_timeout_s)
    reply = _reply_of(workername, replies)
    if "ok" in reply:
        return JSON({"message": message(reply)})
    raise HTTPError(403, f"{failure}: {reply.get('error', 'Unknown reason')}")


async def worker_shutdown(dashboard: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    if not _is_worker(dashboard, name):
        raise HTTPError(404, f"Unknown worker '{name}'")
    await run_in_threadpool(dashboard.app.control.broadcast, "shutdown", destination=[name])
    return JSON({"message": "Shutting down!"})


async def pool_restart(dashboard: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    return await _control(dashboard, name, "pool_restart", {"reload": False},
                          lambda _: f"Restarting '{name}' worker's pool",
                          f"Failed to restart the '{name}' pool")


def _pool_resize(method: str, verb: str) -> Handler:
    async def resize(dashboard: Dashboard, request: Request) -> Response:
        name = request.path_params["name"]
        n = _int(await _params(request), "n", 1, minimum=1)
        return await _control(dashboard, name, method, {"n": n},
                              lambda _: f"{verb.capitalize()}ing '{name}' worker's pool by {n}",
                              f"Failed to {verb} '{name}' worker's pool")

    return resize


pool_grow = _pool_resize("pool_grow", "grow")
pool_shrink = _pool_resize("pool_shrink", "shrink")


async def pool_autoscale(dashboard: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    params = await _params(request)
    low = _int(params, "min", minimum=0)
    high = _int(params, "max", minimum=1)
    if low is None or high is None:
        raise HTTPError(400, "missing argument min or max")
    return await _control(dashboard, name, "autoscale", {"min": low, "max": high},
                          lambda _: f"Autoscaling '{name}' worker (min={low}, max={high})",
                          f"Failed to autoscale '{name}' worker")


async def add_consumer(dashboard: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    queue_name = _required(await _params(request), "queue")
    return await _control(dashboard, name, "add_consumer", {"queue": queue_name},
                          lambda reply: str(reply["ok"]),
                          f"Failed to add '{queue_name}' consumer to '{name}' worker")


async def cancel_consumer(dashboard: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    queue_name = _required(await _params(request), "queue")
    return await _control(dashboard, name, "cancel_consumer", {"queue": queue_name},
                          lambda reply: str(reply["ok"]),
                          f"Failed to cancel '{queue_name}' consumer from '{name}' worker")


# -- tasks ---------------------------------------------------------------------------------------
def _task_known(dashboard: Dashboard, name: str) -> bool:
    if name in dashboard.app.tasks:
        return True
    for info in list(dashboard.worker_cache.values()):
        if any(str(item).split(" ")[0] == name for item in info.get("registered") or ()):
            return True
    return name in dashboard.history.task_types()


def _filters(params: Any) -> dict[str, Any]:
    return {
        "workername": _all(params.get("workername")),
        "taskname": _all(params.get("taskname")),
        "state": _all(params.get("state")),
        "received_start": _when(params.get("received_start"), "received_start"),
        "received_end": _when(params.get("received_end"), "received_end"),
        "search": params.get("search") or None,
    }


async def list_tasks(dashboard: Dashboard, request: Request) -> Response:
    params = dict(request.query_params)
    limit = _int(params, "limit", minimum=0)
    offset = _int(params, "offset", 0) or 0
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


async def task_result(dashboard: Dashboard, request: Request) -> Response:
    task_id = request.path_params["task_id"]
    timeout_s = _timeout(dict(request.query_params))
    if not _backend_configured(dashboard):
        raise HTTPError(503, "no result backend is configured")
    result = dashboard.app.AsyncResult(task_id)

    def wait() -> dict[str, Any]:
        if timeout_s:
            try:
                result.get(timeout=timeout_s, propagate=False, disable_sync_subtasks=False)
            except ResultTimeout:
                pass
        return _outcome(result, {"task-id": task_id})

    return JSON(await run_in_threadpool(wait))


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


async def _call_body(request: Request) -> dict[str, Any]:
    body = await _body(request)
    return _json_object(body) if body.strip() else {}


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


async def task_async_apply(dashboard: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    args, kwargs, options = _task_call(await _call_body(request))
    if name not in dashboard.app.tasks:
        raise HTTPError(404, f"Unknown task '{name}'")
    result = await run_in_threadpool(_send, dashboard, name, args, kwargs, options)
    response: dict[str, Any] = {"task-id": result.id}
    if _backend_configured(dashboard):
        response["state"] = await run_in_threadpool(lambda: result.state)
    return JSON(response)


async def task_send(dashboard: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    args, kwargs, options = _task_call(await _call_body(request))
    result = await run_in_threadpool(_send, dashboard, name, args, kwargs, options)
    response: dict[str, Any] = {"task-id": result.id}
    if _backend_configured(dashboard):
        response["state"] = await run_in_threadpool(lambda: result.state)
    return JSON(response)


async def task_apply(dashboard: Dashboard, request: Request) -> Response:
    """Send and wait for the result (Flower waits without limit; ``?timeout=`` bounds it)."""
    name = request.path_params["name"]
    timeout_s = _timeout(dict(request.query_params))
    args, kwargs, options = _task_call(await _call_body(request))
    if name not in dashboard.app.tasks:
        raise HTTPError(404, f"Unknown task '{name}'")
    if not _backend_configured(dashboard):
        raise HTTPError(503, "no result backend is configured")
    result = await run_in_threadpool(_send, dashboard, name, args, kwargs, options)

    def wait() -> dict[str, Any]:
        try:
            result.get(timeout=timeout_s, propagate=False, disable_sync_subtasks=False)
        except ResultTimeout:
            pass
        return _outcome(result, {"task-id": result.id})

    return JSON(await run_in_threadpool(wait))


async def task_revoke(dashboard: Dashboard, request: Request) -> Response:
    task_id = request.path_params["task_id"]
    params = await _params(request)
    terminate = _flag(params, "terminate")
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


async def _task_control(dashboard: Dashboard, request: Request, method: str,
                        arguments: dict[str, Any], params: dict[str, Any]) -> Response:
    name = request.path_params["name"]
    workername = params.get("workername") or None
    if not await run_in_threadpool(_task_known, dashboard, name):
        raise HTTPError(404, f"Unknown task '{name}'")
    if workername is not None and not _is_worker(dashboard, workername):
        raise HTTPError(404, f"Unknown worker '{workername}'")
    replies = await run_in_threadpool(
        dashboard.app.control.broadcast, method, arguments={"task_name": name, **arguments},
        destination=[workername] if workername else None, reply=True,
        timeout=dashboard.config.inspect_timeout_s)
    answers = [reply for item in replies or () for reply in item.values()
               if isinstance(reply, dict)]
    if workername:
        answers = [_reply_of(workername, replies)]
    ok = [a for a in answers if "ok" in a]
    if ok and len(ok) == len(answers):
        return JSON({"message": str(ok[0]["ok"])})
    reason = next((a.get("error") for a in answers if "error" in a), "no worker replied in time")
    raise HTTPError(403, f"Failed to set {method.replace('_', ' ')}: {reason}")


async def task_rate_limit(dashboard: Dashboard, request: Request) -> Response:
    params = await _params(request)
    ratelimit = _required(params, "ratelimit")
    return await _task_control(dashboard, request, "rate_limit", {"rate_limit": ratelimit},
                               params)


async def task_timeout(dashboard: Dashboard, request: Request) -> Response:
    params = await _params(request)
    soft = _float(params, "soft")
    hard = _float(params, "hard")
    return await _task_control(dashboard, request, "time_limit", {"soft": soft, "hard": hard},
                               params)


# -- queues, health, metrics, live events ---------------------------------------------------------
def queue_lengths(dashboard: Dashboard) -> list[dict[str, Any]]:
    """``{"name", "messages", "oldest_age_s"}`` per queue: the app's known queues and those
    workers reported consuming, through the broker's public ``queue_size``/``oldest_age_s``."""
    names = set(dashboard.app.control.known_queues())
    for info in list(dashboard.worker_cache.values()):
        for item in info.get("active_queues") or ():
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                names.add(item["name"])
    broker = dashboard.app.broker
    return [{"name": name, "messages": broker.queue_size(name),
             "oldest_age_s": broker.oldest_age_s(name)} for name in sorted(names)]


async def queues_length(dashboard: Dashboard, request: Request) -> Response:
    return JSON({"active_queues": await run_in_threadpool(queue_lengths, dashboard)})


async def healthcheck(dashboard: Dashboard, request: Request) -> Response:
    return PlainTextResponse("OK")


async def metrics(dashboard: Dashboard, request: Request) -> Response:
    workers = dashboard.collector.workers()
    queues = await run_in_threadpool(queue_lengths, dashboard)
    text = dashboard.metrics.render(workers, queues)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


async def dashboard_workers(dashboard: Dashboard, request: Request) -> Response:
    return JSON(dashboard.collector.workers())


async def dashboard_series(dashboard: Dashboard, request: Request) -> Response:
    params = dict(request.query_params)
    bucket = _float(params, "bucket_s")
    window = _float(params, "window_s")
    bucket_s = 60.0 if bucket is None else bucket
    window_s = 3600.0 if window is None else window
    if not MIN_BUCKET_S <= bucket_s <= MAX_BUCKET_S or not 1 <= window_s <= MAX_WINDOW_S:
        raise HTTPError(400, f"bucket_s must be in [{MIN_BUCKET_S}, {MAX_BUCKET_S:.0f}], "
                             f"window_s in [1, {MAX_WINDOW_S:.0f}]")
    # fewer than MAX_BUCKETS buckets (the window's edges may add one): a finer one is widened
    bucket_s = max(bucket_s, window_s / (MAX_BUCKETS - 2))
    since_s = time.time() - window_s
    rows = await run_in_threadpool(dashboard.history.series, since_s, bucket_s)
    return JSON({"bucket_s": bucket_s, "since": since_s, "series": rows})


async def event_stream(dashboard: Dashboard, request: Request) -> Response:
    """Every event as it arrives, as Server-Sent Events (``types=task-succeeded,worker-*``
    keeps only those types; ``*`` ends a prefix)."""
    wanted = [t.strip() for t in request.query_params.get("types", "").split(",") if t.strip()]

    def keep(event: dict[str, Any]) -> bool:
        if not wanted:
            return True
        type_ = str(event.get("type", ""))
        return any(type_ == w or (w.endswith("*") and type_.startswith(w[:-1]))
                   for w in wanted)

    async def stream() -> AsyncIterator[bytes]:
        subscription = dashboard.collector.subscribe()
        try:
            yield b": connected\n\n"
            quiet_since = time.monotonic()
            while not await request.is_disconnected():
                sent = False
                for _ in range(500):
                    try:
                        event = subscription.get_nowait()
                    except queue.Empty:
                        break
                    if keep(event):
                        data = orjson.dumps(event, default=repr, option=orjson.OPT_NON_STR_KEYS)
                        yield b"data: " + data + b"\n\n"
                        sent = True
                if sent:
                    quiet_since = time.monotonic()
                    continue
                if time.monotonic() - quiet_since > STREAM_KEEPALIVE_S:
                    yield b": keepalive\n\n"
                    quiet_since = time.monotonic()
                await asyncio.sleep(0.1)
        finally:
            dashboard.collector.unsubscribe(subscription)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


#: (path, handler, methods); openapi.py describes each one
ENDPOINTS: list[tuple[str, Handler, list[str]]] = [
    ("/api/workers", list_workers, ["GET"]),
    ("/api/worker/shutdown/{name}", worker_shutdown, ["POST"]),
    ("/api/worker/pool/restart/{name}", pool_restart, ["POST"]),
    ("/api/worker/pool/grow/{name}", pool_grow, ["POST"]),
    ("/api/worker/pool/shrink/{name}", pool_shrink, ["POST"]),
    ("/api/worker/pool/autoscale/{name}", pool_autoscale, ["POST"]),
    ("/api/worker/queue/add-consumer/{name}", add_consumer, ["POST"]),
    ("/api/worker/queue/cancel-consumer/{name}", cancel_consumer, ["POST"]),
    ("/api/tasks", list_tasks, ["GET"]),
    ("/api/task/types", task_types, ["GET"]),
    ("/api/task/info/{task_id}", task_info, ["GET"]),
    ("/api/task/result/{task_id}", task_result, ["GET"]),
    ("/api/task/async-apply/{name}", task_async_apply, ["POST"]),
    ("/api/task/apply/{name}", task_apply, ["POST"]),
    ("/api/task/send-task/{name}", task_send, ["POST"]),
    ("/api/task/revoke/{task_id}", task_revoke, ["POST"]),
    ("/api/task/abort/{task_id}", task_abort, ["POST"]),
    ("/api/task/rate-limit/{name}", task_rate_limit, ["POST"]),
    ("/api/task/timeout/{name}", task_timeout, ["POST"]),
    ("/api/queues/length", queues_length, ["GET"]),
    ("/api/events/stream", event_stream, ["GET"]),
    ("/api/dashboard/workers", dashboard_workers, ["GET"]),
    ("/api/dashboard/series", dashboard_series, ["GET"]),
    ("/healthcheck", healthcheck, ["GET"]),
    ("/metrics", metrics, ["GET"]),
]


def routes(dashboard: Dashboard) -> list[BaseRoute]:
    return [Route(path, _endpoint(dashboard, handler), methods=methods)
            for path, handler, methods in ENDPOINTS]
