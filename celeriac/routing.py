"""Which queue a task goes to: explicit option, then ``task_routes``, then the default queue."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Route = Mapping[str, Any] | Callable[..., Any] | Sequence[Any]


def _match_mapping(routes: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    found = routes.get(name)
    if found is not None:
        return found if isinstance(found, Mapping) else {"queue": found}
    for pattern, route in routes.items():
        matched = (
            pattern.match(name)
            if isinstance(pattern, re.Pattern)
            else ("*" in pattern or "?" in pattern) and fnmatch.fnmatchcase(name, pattern)
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
        if isinstance(item, Mapping):
            found = _match_mapping(item, name)
        elif callable(item):
            try:
                found = item(name, args, kwargs or {}, options or {}, task=None)
            except TypeError:
                found = item(name, args, kwargs or {}, options or {})
            if isinstance(found, str):
                found = {"queue": found}
        else:
            found = None
        if found:
            return found
    return None


def queue_name(queue: Any) -> str:
    """Accept a queue name or an object with a ``name`` (kombu-style Queue)."""
    if isinstance(queue, str):
        return queue
    return str(getattr(queue, "name", queue))
