"""Flower's worker endpoints and remote-control actions.

``GET /api/workers`` answers from ``dashboard.worker_cache`` (the replies to Flower's inspect
questions), asking the workers again on ``?refresh=1`` or when an online worker is missing from
it. Every control action (shutdown, pool restart/grow/shrink/autoscale, add/cancel consumer, a
task's rate limit and time limits) is a broadcast through ``app.control``: an unknown worker is
a 404 before anything is sent, and a worker that answers with an error, or not in time, a 403.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from celeriac.dashboard.api_http import (
    JSON,
    Handler,
    HTTPError,
    flag,
    integer,
    number,
    read_params,
    required,
)

if TYPE_CHECKING:
    from celeriac.dashboard.app import Dashboard

__all__ = [
    "INSPECT_METHODS", "add_consumer", "cancel_consumer", "list_workers", "pool_autoscale",
    "pool_grow", "pool_restart", "pool_shrink", "task_rate_limit", "task_timeout",
    "update_workers", "worker_shutdown",
]

#: Flower's inspect methods, whose replies make up a worker's entry in /api/workers
INSPECT_METHODS = ("stats", "active_queues", "registered", "scheduled", "active", "reserved",
                   "revoked", "conf")


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
    refresh = flag(params, "refresh")
    workername = params.get("workername") or None
    if flag(params, "status"):
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
        n = integer(await read_params(request), "n", 1, minimum=1)
        return await _control(dashboard, name, method, {"n": n},
                              lambda _: f"{verb.capitalize()}ing '{name}' worker's pool by {n}",
                              f"Failed to {verb} '{name}' worker's pool")

    return resize


pool_grow = _pool_resize("pool_grow", "grow")
pool_shrink = _pool_resize("pool_shrink", "shrink")


async def pool_autoscale(dashboard: Dashboard, request: Request) -> Response:
    name = request.path_params["name"]
    params = await read_params(request)
    low = integer(params, "min", minimum=0)
    high = integer(params, "max", minimum=1)
    if low is None or high is None:
        raise HTTPError(400, "missing argument min or max")
    return await _control(dashboard, name, "autoscale", {"min": low, "max": high},
                          lambda _: f"Autoscaling '{name}' worker (min={low}, max={high})",
                          f"Failed to autoscale '{name}' worker")


def _consumer(method: str, failure: str) -> Handler:
    """``add_consumer`` / ``cancel_consumer``: ``failure`` is formatted with ``queue`` and
    ``name``; the worker's own ``ok`` text is the message."""
    async def change(dashboard: Dashboard, request: Request) -> Response:
        name = request.path_params["name"]
        queue_name = required(await read_params(request), "queue")
        return await _control(dashboard, name, method, {"queue": queue_name},
                              lambda reply: str(reply["ok"]),
                              failure.format(queue=queue_name, name=name))

    return change


add_consumer = _consumer("add_consumer", "Failed to add '{queue}' consumer to '{name}' worker")
cancel_consumer = _consumer("cancel_consumer",
                            "Failed to cancel '{queue}' consumer from '{name}' worker")


# -- a task's limits, on every worker or one -----------------------------------------------------
def _task_known(dashboard: Dashboard, name: str) -> bool:
    """Registered here, reported registered by a worker, or seen in the history."""
    if name in dashboard.app.tasks:
        return True
    for info in list(dashboard.worker_cache.values()):
        if any(str(item).split(" ")[0] == name for item in info.get("registered") or ()):
            return True
    return name in dashboard.history.task_types()


async def _task_control(dashboard: Dashboard, request: Request, method: str,
                        arguments: dict[str, Any], params: dict[str, Any]) -> Response:
    """Succeeds only when every worker that answered says ``ok`` (with ``?workername=``, when
    that one does)."""
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
    params = await read_params(request)
    ratelimit = required(params, "ratelimit")
    return await _task_control(dashboard, request, "rate_limit", {"rate_limit": ratelimit},
                               params)


async def task_timeout(dashboard: Dashboard, request: Request) -> Response:
    params = await read_params(request)
    soft = number(params, "soft")
    hard = number(params, "hard")
    return await _task_control(dashboard, request, "time_limit", {"soft": soft, "hard": hard},
                               params)
