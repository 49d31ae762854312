"""The dashboard's pages: HTML shells that the scripts under ``static/`` fill from the JSON API.

Rules:

- a page is a static template (``templates/*.html``) with ``$name`` placeholders; every value
  put into one is HTML-escaped here (:func:`render`), and none of them is task data: args,
  kwargs, results, tracebacks and names reach the browser only as JSON from ``/api/...`` and
  are inserted with ``textContent`` by the scripts, never parsed as HTML;
- no inline script or style: each page loads ``static/dashboard.css`` and one ES module, so
  the Content-Security-Policy (``script-src 'self'; style-src 'self'``) holds;
- the pages call only the HTTP API and the event stream (``/api/events/stream``) of the same
  dashboard, under the base path the page states in ``<body data-base>`` (the mount point
  plus ``--url-prefix``); state-changing calls echo the ``celeriac_csrf`` cookie in
  ``X-CSRF-Token`` (see :mod:`celeriac.dashboard.security`);
- with ``--read-only`` a page says so in ``data-read-only`` and shows no action buttons.

Paths (Flower's where Flower has the page): ``/`` and ``/workers``, ``/worker/<name>``,
``/tasks``, ``/task/<id>``, ``/queues`` (alias ``/broker``), ``/charts`` (alias ``/monitor``),
and ``/static/...``.
"""

from __future__ import annotations

import html
import string
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

if TYPE_CHECKING:
    from celeriac.dashboard.app import Dashboard

__all__ = ["PAGES", "STATIC_DIR", "TEMPLATES_DIR", "pages_routes", "render"]

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")
#: page name -> (title, the navigation entry it highlights)
PAGES = {
    "workers": ("Workers", "workers"),
    "worker": ("Worker", "workers"),
    "tasks": ("Tasks", "tasks"),
    "task": ("Task", "tasks"),
    "queues": ("Queues", "queues"),
    "charts": ("Charts", "charts"),
}
_NAV = (("workers", "Workers", "/workers"), ("tasks", "Tasks", "/tasks"),
        ("queues", "Queues", "/queues"), ("charts", "Charts", "/charts"))


@cache
def _template(name: str) -> string.Template:
    return string.Template((TEMPLATES_DIR / f"{name}.html").read_text(encoding="utf-8"))


def render(page: str, *, base: str, read_only: bool = False, subject: str = "") -> str:
    """The HTML of ``page`` under the base path ``base``; ``subject`` is the worker name or
    task id the page shows (escaped like every other value)."""
    title, current = PAGES[page]
    esc = {"base": html.escape(base, quote=True), "subject": html.escape(subject, quote=True)}
    nav = "".join(
        f'<a href="{esc["base"]}{path}"'
        + (' class="current" aria-current="page"' if key == current else "")
        + f">{label}</a>"
        for key, label, path in _NAV
    )
    content = _template(page).substitute(esc)
    return _template("base").substitute(
        esc,
        title=html.escape(f"{title} {subject}".strip() + " · celeriac", quote=True),
        page=page,
        nav=nav,
        read_only="1" if read_only else "0",
        content=content,
    )


def _base(request: Request) -> str:
    """Where this dashboard is mounted: the outer mount's path plus ``--url-prefix``."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def pages_routes(dashboard: Dashboard) -> list[BaseRoute]:
    """The page routes and the static files, for :func:`~celeriac.dashboard.app.create_app`
    to mount under the URL prefix."""
    read_only = dashboard.config.read_only

    def page(name: str, subject_param: str | None) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            subject = str(request.path_params.get(subject_param, "")) if subject_param else ""
            text = render(name, base=_base(request), read_only=read_only, subject=subject)
            return HTMLResponse(text, headers={"Cache-Control": "no-store"})

        return endpoint

    routes: list[BaseRoute] = []
    for path, name, subject in (
        ("/", "workers", None),
        ("/workers", "workers", None),
        ("/worker/{name:path}", "worker", "name"),
        ("/tasks", "tasks", None),
        ("/task/{task_id:path}", "task", "task_id"),
        ("/queues", "queues", None),
        ("/broker", "queues", None),
        ("/charts", "charts", None),
        ("/monitor", "charts", None),
    ):
        routes.append(Route(path, page(name, subject), methods=["GET"]))
    routes.append(Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"))
    return routes
