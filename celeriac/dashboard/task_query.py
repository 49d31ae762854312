"""Filters, order and charts over task rows (:mod:`celeriac.dashboard.task_rows`), shared by
every history store.

Rules:

- ``received_start``/``received_end`` are epoch seconds (inclusive); ``sort_by`` is a field of
  :data:`SORT_FIELDS`, ``-field`` for descending; tasks without the field come first in
  ascending order and last in descending order; the default order is newest event first
  (``-timestamp``, as Flower lists tasks);
- ``search`` is Flower's: words separated by spaces, all of which must match; ``args:x``,
  ``kwargs:x``, ``result:x``, ``name:x``, ``worker:x``, ``uuid:x`` match a substring of that
  field, ``state:X`` the state; a bare word a substring of any of name, uuid, state, worker,
  args, kwargs, result or exception. Matching ignores case;
- a chart's buckets (``empty_series``) are at most 10,000, each ``bucket_s`` wide.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from celeriac.dashboard.task_rows import TASK_FIELDS, TaskDict, finite_number

__all__ = ["SORT_FIELDS", "Query", "empty_series", "fill_series", "page"]

#: the fields ``sort_by`` accepts
SORT_FIELDS = frozenset(TASK_FIELDS) - {"children"}
_SEARCH_FIELDS = ("name", "uuid", "state", "worker", "args", "kwargs", "result", "exception")
_SEARCH_QUALIFIERS = frozenset({"args", "kwargs", "result", "name", "worker", "uuid", "state"})


# -- queries -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    """The filters and order of ``tasks()`` / ``count()``, checked (see the module rules)."""

    workername: str | None = None
    taskname: str | None = None
    state: str | None = None
    received_start: float | None = None
    received_end: float | None = None
    search: str | None = None
    sort_field: str = "timestamp"
    descending: bool = True

    @classmethod
    def make(cls, sort_by: str | None = None, **filters: Any) -> Query:
        """A query from ``tasks()``'s keyword arguments; ValueError for an unknown sort field
        or filter, or a time that is not a number."""
        field, descending = "timestamp", True
        if sort_by:
            descending = sort_by.startswith("-")
            field = sort_by.lstrip("-")
            if field not in SORT_FIELDS:
                raise ValueError(f"sort_by: unknown task field {field!r}")
        unknown = set(filters) - {"workername", "taskname", "state", "received_start",
                                  "received_end", "search"}
        if unknown:
            raise ValueError(f"unknown task filter(s): {', '.join(sorted(unknown))}")
        for key in ("received_start", "received_end"):
            value = filters.get(key)
            if value is not None and finite_number(value) is None:
                raise ValueError(f"{key}: expected epoch seconds, got {value!r}")
            if value is not None:
                filters[key] = float(value)
        search = filters.get("search")
        filters["search"] = (search.strip() or None) if isinstance(search, str) else None
        return cls(sort_field=field, descending=descending, **filters)

    @property
    def filtered(self) -> bool:
        return any(v is not None for v in (self.workername, self.taskname, self.state,
                                           self.received_start, self.received_end, self.search))

    def terms(self) -> list[tuple[str | None, str]]:
        """The search words as (field or None for any field, lower-cased text)."""
        out: list[tuple[str | None, str]] = []
        for word in (self.search or "").split():
            key, sep, value = word.partition(":")
            if sep and key.lower() in _SEARCH_QUALIFIERS and value:
                out.append((key.lower(), value.lower()))
            else:
                out.append((None, word.lower()))
        return out

    def matches(self, task: TaskDict) -> bool:
        """Whether ``task`` passes every filter."""
        if self.workername is not None and task["worker"] != self.workername:
            return False
        if self.taskname is not None and task["name"] != self.taskname:
            return False
        if self.state is not None and task["state"] != self.state:
            return False
        received = task["received"]
        if self.received_start is not None and (received is None
                                                or received < self.received_start):
            return False
        if self.received_end is not None and (received is None or received > self.received_end):
            return False
        for field, text in self.terms():
            if field == "state":
                if str(task["state"]).lower() != text:
                    return False
            elif field is not None:
                if text not in str(task[field] or "").lower():
                    return False
            elif not any(text in str(task[f] or "").lower() for f in _SEARCH_FIELDS):
                return False
        return True

    def sort(self, tasks: list[TaskDict]) -> list[TaskDict]:
        """``tasks`` in this query's order (None first ascending, last descending)."""
        field = self.sort_field

        def key(task: TaskDict) -> tuple[bool, Any, str]:
            value = task[field]
            return (value is not None, value if value is not None else 0, task["uuid"])

        return sorted(tasks, key=key, reverse=self.descending)


def page(items: list[TaskDict], limit: int | None, offset: int) -> list[TaskDict]:
    start = max(0, offset)
    return items[start:] if limit is None else items[start:start + max(0, limit)]


def empty_series(since_s: float, bucket_s: float, now_s: float) -> list[dict[str, Any]]:
    """The buckets of :meth:`HistoryStore.series` with zero counts."""
    if not bucket_s > 0 or not math.isfinite(bucket_s) or not math.isfinite(since_s):
        raise ValueError("series: since_s and bucket_s must be finite, bucket_s > 0")
    start_s = math.floor(since_s / bucket_s) * bucket_s
    n = max(1, math.floor((now_s - start_s) / bucket_s) + 1)
    if n > 10_000:
        raise ValueError(f"series: {n} buckets; at most 10000 (use a larger bucket_s)")
    return [{"t": start_s + i * bucket_s, "succeeded": 0, "failed": 0, "received": 0,
             "runtime_avg_s": None} for i in range(n)]


def fill_series(buckets: list[dict[str, Any]], since_s: float, bucket_s: float,
                field: str, times: Iterable[float], runtimes: Iterable[float | None] = ()
                ) -> None:
    """Count ``times`` (epoch seconds) into ``buckets[...][field]``; with ``runtimes`` (one per
    time, for ``succeeded``), also set each bucket's runtime_avg_s."""
    sums: dict[int, list[float]] = {}
    runtime_list = list(runtimes)
    start_s = buckets[0]["t"]
    for i, at in enumerate(times):
        if at < since_s:
            continue
        index = int((at - start_s) // bucket_s)
        if 0 <= index < len(buckets):
            buckets[index][field] += 1
            runtime = runtime_list[i] if i < len(runtime_list) else None
            if runtime is not None:
                sums.setdefault(index, []).append(runtime)
    for index, values in sums.items():
        buckets[index]["runtime_avg_s"] = sum(values) / len(values)

