"""The dashboard: Flower's HTTP API and pages on Starlette, history kept in a store.

``create_app(app)`` (a mountable ASGI app), ``DashboardConfig``, ``Dashboard``; run it with
``celeriac -A proj dashboard`` (alias ``flower``). Needs the ``dashboard`` extra (Starlette,
uvicorn): the names below are imported on first use, so ``celeriac.dashboard.history`` and
``.collector`` load without the web stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.dashboard.app import Dashboard, DashboardConfig, create_app

__all__ = ["Dashboard", "DashboardConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from celeriac.dashboard import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
