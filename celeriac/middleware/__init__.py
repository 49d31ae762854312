"""Middleware: hooks around publishing and running tasks (see :mod:`.base` for the rules).

Every app's stack starts with the built-ins, in this order: :class:`SignalsMiddleware`
(Celery's signals), :class:`StartedMiddleware` (the STARTED state),
:class:`ContinuationMiddleware` (chains, chords, link/link_error), :class:`EventsMiddleware`
(task events; made with the app, so only an app's own stack sends them); then the
``worker_middleware`` setting's entries, each a :class:`Middleware` instance, a class (made with
no arguments) or a ``"module:Class"`` / ``"module.Class"`` path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celeriac._utils.imports import symbol_by_name
from celeriac.exceptions import ImproperlyConfigured
from celeriac.middleware.base import HOOKS, Middleware, MiddlewareStack
from celeriac.middleware.continuation import ContinuationMiddleware
from celeriac.middleware.events import EventsMiddleware
from celeriac.middleware.signals import SignalsMiddleware
from celeriac.middleware.started import StartedMiddleware

__all__ = [
    "HOOKS",
    "ContinuationMiddleware",
    "EventsMiddleware",
    "Middleware",
    "MiddlewareStack",
    "SignalsMiddleware",
    "StartedMiddleware",
    "build_stack",
    "load_middleware",
]


def _load(spec: Any) -> Middleware:
    if isinstance(spec, str):
        try:
            spec = symbol_by_name(spec)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ImproperlyConfigured(f"worker_middleware: cannot load {spec!r}: {exc}") from exc
    if isinstance(spec, type):
        spec = spec()
    if not isinstance(spec, Middleware):
        raise ImproperlyConfigured(
            f"worker_middleware: {spec!r} is not a celeriac.middleware.Middleware"
        )
    return spec


def load_middleware(user: Iterable[Any] | None, app: Any = None) -> list[Middleware]:
    """The built-ins followed by the user's middleware ``user`` (see the module doc), made;
    ``app`` is the app whose stack they form (without it, no events are sent)."""
    items: list[Middleware] = [
        SignalsMiddleware(), StartedMiddleware(), ContinuationMiddleware(), EventsMiddleware(app),
    ]
    items.extend(_load(spec) for spec in user or ())
    return items


def build_stack(user: Iterable[Any] | None) -> MiddlewareStack:
    """A stack of :func:`load_middleware`'s middleware."""
    return MiddlewareStack(load_middleware(user))
