"""Which queue a task goes to: explicit option, then ``task_routes``, then the default queue."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from celeriac._utils.imports import symbol_by_name

Route = Mapping[str, Any] | Callable[..., Any] | Sequence[Any]


def _match_mapping(routes: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    found = routes.get(name)
    if found is not None:
        return found if isinstance(found, Mapping) else {"queue": found}
    for pattern, route in routes.items():
        matched = (
            pattern.match(name)
            if isinstance(pattern, re.Pattern)
            else "*" in pattern and fnmatch.fnmatchcase(name, pattern)
        )
        if matched:
            return route if isinstance(route, Mapping) else {"queue": route}
    return None


def lookup(
    routes: Any,
    name: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Mapping[str, Any] | None:
    """The first route options for task ``name`` in ``task_routes`` (dict, function or list)."""
    if not routes:
        return None
    items = routes if isinstance(routes, (list, tuple)) else [routes]
    for item in items:
        if isinstance(item, str):
            # a dotted path to a router function (Celery allows these in task_routes)
            item = symbol_by_name(item)
        if isinstance(item, (list, tuple)) and all(
            isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in item
        ):
            # an ordered list of (pattern, route) pairs
            found = None
            for pattern, route in item:
                found = _match_mapping({pattern: route}, name)
                if found:
                    break
        elif isinstance(item, Mapping):
            found = _match_mapping(item, name)
        elif callable(item):
            found = _call_router(item, name, args, kwargs or {}, options or {})
        else:
            found = None
        if found:
            return found
    return None


def _call_router(
    router: Callable[..., Any],
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
) -> Mapping[str, Any] | None:
    import inspect

    try:
        accepts_task = "task" in inspect.signature(router).parameters
    except (TypeError, ValueError):
        accepts_task = False
    found = (
        router(name, args, kwargs, options, task=None)
        if accepts_task
        else router(name, args, kwargs, options)
    )
    if isinstance(found, str):
        return {"queue": found}
    return found if isinstance(found, Mapping) else None


def queue_name(queue: Any) -> str:
    """Accept a queue name or an object with a ``name`` (kombu-style Queue)."""
    if isinstance(queue, str):
        return queue
    return str(getattr(queue, "name", queue))
