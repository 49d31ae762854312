"""The dashboard as a mountable ASGI app: :func:`create_app` (Starlette).

``create_app(celery_app)`` returns an app serving Flower's HTTP API (:mod:`.api`), the
Prometheus metrics (:mod:`.metrics`), the OpenAPI document (:mod:`.openapi`), the live event
stream and the pages (:mod:`.pages`, when present), all under ``config.url_prefix``, behind
:class:`~celeriac.dashboard.security.SecurityMiddleware`. Its lifespan opens the history store,
starts the collector (events into history, live worker state) and stops both on shutdown.

Mount it in another ASGI app (``Mount("/flower", create_app(app))``), or run it with
``celeriac -A proj dashboard``. The dashboard reads only through public interfaces: events,
``app.control``/``inspect()``, the result backend and the broker's ``queue_size`` /
``oldest_age_s``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from celeriac.dashboard.api import routes as api_routes
from celeriac.dashboard.collector import Collector
from celeriac.dashboard.history import HistoryStore, default_history_url, open_history
from celeriac.dashboard.metrics import Metrics
from celeriac.dashboard.openapi import routes as openapi_routes
from celeriac.dashboard.security import SecurityMiddleware, unauthenticated_api_allowed

if TYPE_CHECKING:
    from celeriac.app.base import Celery

__all__ = ["Dashboard", "DashboardConfig", "create_app"]


@dataclass
class DashboardConfig:
    """What ``celeriac dashboard`` options set (Flower's names where Flower has one)."""

    address: str = "127.0.0.1"
    port: int = 5555
    basic_auth: list[tuple[str, str]] = field(default_factory=list)
    url_prefix: str = ""
    read_only: bool = False
    #: Flower 2.x: the API needs auth unless FLOWER_UNAUTHENTICATED_API is set
    unauthenticated_api: bool = field(default_factory=unauthenticated_api_allowed)
    #: the history store's URL (None: :func:`~celeriac.dashboard.history.default_history_url`)
    history_url: str | None = None
    max_tasks: int = 100_000
    max_age_s: float = 7 * 86400
    #: how long ``/api/workers?refresh=1`` and the control endpoints wait for replies
    inspect_timeout_s: float = 1.0
    #: signs session cookies and CSRF tokens; set the same one on several instances behind
    #: one address (env CELERIAC_DASHBOARD_SECRET); None: a random one per process
    secret: str | None = field(
        default_factory=lambda: os.environ.get("CELERIAC_DASHBOARD_SECRET") or None)

    def __post_init__(self) -> None:
        prefix = self.url_prefix.strip("/")
        self.url_prefix = f"/{prefix}" if prefix else ""


class Dashboard:
    """What routes receive: the Celery app, the config, the history store, the collector, and
    the per-instance worker cache that ``inspect`` replies fill (Flower's ``workers``)."""

    def __init__(self, app: Celery, config: DashboardConfig, history: HistoryStore,
                 collector: Collector) -> None:
        self.app = app
        self.config = config
        self.history = history
        self.collector = collector
        self.metrics = Metrics()
        #: hostname -> {"stats", "active_queues", "registered", ... , "timestamp"}
        self.worker_cache: dict[str, dict[str, Any]] = {}
        self.cache_lock = threading.Lock()


def _page_routes(dashboard: Dashboard) -> list[BaseRoute]:
    try:
        pages = importlib.import_module("celeriac.dashboard.pages")
    except ModuleNotFoundError as exc:  # the pages are optional: the API works without them
        if exc.name != "celeriac.dashboard.pages":
            raise
        return []
    routes: Callable[[Dashboard], list[BaseRoute]] = pages.pages_routes
    return routes(dashboard)


def create_app(
    celery_app: Celery,
    config: DashboardConfig | None = None,
    *,
    history: HistoryStore | None = None,
    collector: Collector | None = None,
) -> Starlette:
    """The dashboard for ``celery_app``. ``history``/``collector`` default to the store at
    ``config.history_url`` and a :class:`~celeriac.dashboard.collector.Collector` on it; the
    app closes only what it opened itself."""
    config = config or DashboardConfig()
    owns_history = history is None
    if history is None:
        history = open_history(config.history_url or default_history_url(celery_app),
                               max_tasks=config.max_tasks, max_age_s=config.max_age_s)
    owns_collector = collector is None
    if collector is None:
        collector = Collector(celery_app, history)
    dashboard = Dashboard(celery_app, config, history, collector)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if owns_collector:
            dashboard.collector.start()
        dashboard.metrics.start(dashboard.collector)
        try:
            yield
        finally:
            dashboard.metrics.stop()
            if owns_collector:
                dashboard.collector.stop()
            if owns_history:
                dashboard.history.close()

    routes: list[BaseRoute] = [*api_routes(dashboard), *openapi_routes(dashboard),
                               *_page_routes(dashboard)]
    if config.url_prefix:
        routes = [Mount(config.url_prefix, routes=routes)]
    secret = config.secret.encode() if config.secret else None
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(
            SecurityMiddleware,
            basic_auth=config.basic_auth,
            url_prefix=config.url_prefix,
            read_only=config.read_only,
            unauthenticated_api=config.unauthenticated_api,
            secret=secret,
        )],
    )
    app.state.dashboard = dashboard
    return app
