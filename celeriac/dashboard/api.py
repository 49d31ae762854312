"""Flower's HTTP API: the same paths, parameters, status codes and JSON shapes (Flower 2.x).

This module assembles the routes (:data:`ENDPOINTS`, :func:`routes`); the handlers live by
what they serve: :mod:`.api_workers` (workers and remote control, including a task's rate and
time limits), :mod:`.api_tasks` (history, results, sending, revoke, abort) and
:mod:`.api_live` (queue depths, health, metrics, the event stream, the pages' live data);
:mod:`.api_http` reads parameters and holds :class:`JSON` and :class:`HTTPError`.

Blocking work (inspect, control, history queries, waiting on results) runs in the thread
pool, never on the event loop. A handler's :class:`HTTPError` is answered as
``{"error": message}`` with its status.

Besides Flower's endpoints: ``GET /api/events/stream`` (Server-Sent Events, one Celery event
dict per ``data:`` line), ``GET /api/dashboard/workers`` (live worker state from events) and
``GET /api/dashboard/series`` (per-bucket counts for charts). ``/api/queues/length`` items
carry ``oldest_age_s`` beside Flower's ``name`` and ``messages``. ``/api/tasks`` answers the
total matching count in the ``X-Total-Count`` header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from celeriac.dashboard import api_live, api_tasks, api_workers
from celeriac.dashboard.api_http import JSON, Handler, HTTPError

if TYPE_CHECKING:
    from celeriac.dashboard.app import Dashboard

__all__ = ["ENDPOINTS", "HTTPError", "JSON", "routes"]

#: (path, handler, methods); openapi.py describes each one
ENDPOINTS: list[tuple[str, Handler, list[str]]] = [
    ("/api/workers", api_workers.list_workers, ["GET"]),
    ("/api/worker/shutdown/{name}", api_workers.worker_shutdown, ["POST"]),
    ("/api/worker/pool/restart/{name}", api_workers.pool_restart, ["POST"]),
    ("/api/worker/pool/grow/{name}", api_workers.pool_grow, ["POST"]),
    ("/api/worker/pool/shrink/{name}", api_workers.pool_shrink, ["POST"]),
    ("/api/worker/pool/autoscale/{name}", api_workers.pool_autoscale, ["POST"]),
    ("/api/worker/queue/add-consumer/{name}", api_workers.add_consumer, ["POST"]),
    ("/api/worker/queue/cancel-consumer/{name}", api_workers.cancel_consumer, ["POST"]),
    ("/api/tasks", api_tasks.list_tasks, ["GET"]),
    ("/api/task/types", api_tasks.task_types, ["GET"]),
    ("/api/task/info/{task_id}", api_tasks.task_info, ["GET"]),
    ("/api/task/result/{task_id}", api_tasks.task_result, ["GET"]),
    ("/api/task/async-apply/{name}", api_tasks.task_async_apply, ["POST"]),
    ("/api/task/apply/{name}", api_tasks.task_apply, ["POST"]),
    ("/api/task/send-task/{name}", api_tasks.task_send, ["POST"]),
    ("/api/task/revoke/{task_id}", api_tasks.task_revoke, ["POST"]),
    ("/api/task/abort/{task_id}", api_tasks.task_abort, ["POST"]),
    ("/api/task/rate-limit/{name}", api_workers.task_rate_limit, ["POST"]),
    ("/api/task/timeout/{name}", api_workers.task_timeout, ["POST"]),
    ("/api/queues/length", api_live.queues_length, ["GET"]),
    ("/api/events/stream", api_live.event_stream, ["GET"]),
    ("/api/dashboard/workers", api_live.dashboard_workers, ["GET"]),
    ("/api/dashboard/series", api_live.dashboard_series, ["GET"]),
    ("/healthcheck", api_live.healthcheck, ["GET"]),
    ("/metrics", api_live.metrics, ["GET"]),
]


def _endpoint(dashboard: Dashboard, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(dashboard, request)
        except HTTPError as exc:
            return JSON({"error": exc.message}, status_code=exc.status)

    return endpoint


def routes(dashboard: Dashboard) -> list[BaseRoute]:
    return [Route(path, _endpoint(dashboard, handler), methods=methods)
            for path, handler, methods in ENDPOINTS]
