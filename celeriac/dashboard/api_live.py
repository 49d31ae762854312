"""What the dashboard watches live: queue depths, health, Prometheus metrics, the event
stream, and the pages' worker state and chart series.

``/api/queues/length`` items carry ``oldest_age_s`` beside Flower's ``name`` and
``messages``; depths come only through the broker's public ``queue_size`` / ``oldest_age_s``.
``GET /api/events/stream`` sends Server-Sent Events, one Celery event dict per ``data:`` line;
``/api/dashboard/series`` answers per-bucket counts, at most :data:`MAX_BUCKETS` of them.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from celeriac.dashboard.api_http import JSON, HTTPError, number

if TYPE_CHECKING:
    from celeriac.dashboard.app import Dashboard

__all__ = [
    "dashboard_series", "dashboard_workers", "event_stream", "healthcheck", "metrics",
    "queue_lengths", "queues_length",
]

#: bounds of /api/dashboard/series
MIN_BUCKET_S = 0.01
MAX_BUCKET_S = 86400.0
MAX_WINDOW_S = 31 * 86400.0
MAX_BUCKETS = 10_000
#: a comment line on the event stream this often, so proxies keep it open
STREAM_KEEPALIVE_S = 15.0


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
    bucket = number(params, "bucket_s")
    window = number(params, "window_s")
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
