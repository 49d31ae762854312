"""Task history in Redis (``redis://host:port/db``; the URL's ``global_keyprefix`` applies).

Key layout, under ``<global_keyprefix>celeriac.dashboard:``:

- ``task:<uuid>``: a hash whose ``data`` field is the task's JSON
  (:data:`~celeriac.dashboard.history.TaskDict` without ``children``);
- ``idx:<field>`` for each field of :data:`NUMERIC_INDEXES`: a sorted set of every task's
  uuid scored by that field (-1 when the task has none), which serves ``sort_by`` on that
  field and the received range, the age bound and the charts;
- ``state:<STATE>``, ``name:<name>``, ``worker:<hostname>``: sorted sets of the uuids with that
  value (the filters); ``names``: a set of the task names seen (:meth:`task_types`);
- ``children:<uuid>``: a sorted set of the ids whose ``parent_id`` is that task.

A filtered list is a ``ZINTERSTORE`` of the filter sets with the sort field's index into a
temporary key, then one ``ZRANGE`` page, all in the server. ``search`` and sorts on a field
without an index read the tasks passing the other filters and sort them here.

Several dashboards may write one database: :meth:`RedisHistory.record` WATCHes the batch's
task keys, merges, and writes in MULTI/EXEC, merging again when another writer got there first.
"""

from __future__ import annotations

import dataclasses
import time
import uuid as uuid_module
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from celeriac._redis.client import RedisConnection
from celeriac.dashboard.history import HistoryStore
from celeriac.dashboard.task_query import Query, empty_series, fill_series
from celeriac.dashboard.task_rows import TaskDict, dumps, event_task_ids, loads, merge_events
from celeriac.exceptions import TransportError

__all__ = ["NUMERIC_INDEXES", "RedisHistory"]

#: the fields with a sorted-set index (sortable in the server)
NUMERIC_INDEXES = ("received", "sent", "started", "succeeded", "failed", "timestamp", "runtime")
#: the filter sets: TaskDict field -> key part
FILTERS = {"state": "state", "name": "name", "worker": "worker"}
#: the score of a task without the field (time fields and runtimes are never negative)
NONE_SCORE = -1.0
#: events merged per MULTI/EXEC; tasks read or deleted per round trip
CHUNK = 500
#: attempts at a batch before giving up (each one lost to a concurrent writer)
MAX_ATTEMPTS = 50
#: a temporary key of a query lives at most this long if the client dies before deleting it
TMP_TTL_S = 60


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _score(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else NONE_SCORE


class RedisHistory(HistoryStore):
    """History in a Redis database (see the module docstring)."""

    def __init__(self, url: str, **bounds: Any) -> None:
        super().__init__(**bounds)
        self.url = url
        self._conn = RedisConnection(url, {}, connection_error=TransportError,
                                     ssl_option_keys=("ssl",))
        self.prefix = self._conn.key("celeriac.dashboard:")

    # -- keys ------------------------------------------------------------------------------------
    def _task_key(self, uuid: str) -> str:
        return f"{self.prefix}task:{uuid}"

    def _idx(self, field: str) -> str:
        return f"{self.prefix}idx:{field}"

    def _filter_key(self, field: str, value: str) -> str:
        return f"{self.prefix}{FILTERS[field]}:{value}"

    def _children_key(self, uuid: str) -> str:
        return f"{self.prefix}children:{uuid}"

    # -- writing ---------------------------------------------------------------------------------
    def _load(self, uuids: list[str]) -> dict[str, TaskDict]:
        found: dict[str, TaskDict] = {}
        with self._conn.errors:
            for start in range(0, len(uuids), CHUNK):
                chunk = uuids[start:start + CHUNK]
                pipe = self._conn.client.pipeline(transaction=False)
                for uuid in chunk:
                    pipe.hget(self._task_key(uuid), "data")
                for data in pipe.execute():
                    if data is not None:
                        task = loads(data)
                        found[task["uuid"]] = task
        return found

    def _record(self, events: Sequence[dict[str, Any]]) -> int:
        created = 0
        items = list(events)
        for start in range(0, len(items), CHUNK):
            created += self._record_chunk(items[start:start + CHUNK])
        return created

    def _record_chunk(self, events: list[dict[str, Any]]) -> int:
        uuids = event_task_ids(events)
        if not uuids:
            return 0
        keys = [self._task_key(u) for u in uuids]
        with self._conn.errors, self._conn.base.pipeline(transaction=True) as pipe:
            for _ in range(MAX_ATTEMPTS):
                try:
                    pipe.watch(*keys)
                    # Read after WATCH: a write by anyone from now on fails the EXEC.
                    stored = self._load(uuids)
                    changed = merge_events(events, stored)
                    if not changed:
                        pipe.unwatch()
                        return 0
                    pipe.multi()
                    for uuid, task in changed.items():
                        self._write(pipe, task, stored.get(uuid))
                    pipe.execute()
                    return sum(1 for uuid in changed if uuid not in stored)
                except redis.WatchError:
                    continue
        raise TransportError(f"history: {MAX_ATTEMPTS} concurrent writes in a row on {self.url}")

    def _write(self, pipe: Any, task: TaskDict, old: TaskDict | None) -> None:
        uuid = task["uuid"]
        pipe.hset(self._task_key(uuid), "data", dumps(task))
        for field in NUMERIC_INDEXES:
            pipe.zadd(self._idx(field), {uuid: _score(task[field])})
        received = _score(task["received"])
        for field in FILTERS:
            value = task[field]
            if old is not None and old[field] is not None and old[field] != value:
                pipe.zrem(self._filter_key(field, old[field]), uuid)
            if value is not None:
                pipe.zadd(self._filter_key(field, value), {uuid: received})
        if task["name"] is not None:
            pipe.sadd(f"{self.prefix}names", task["name"])
        if task["parent_id"] is not None:
            pipe.zadd(self._children_key(task["parent_id"]),
                      {uuid: _score(task["received"] or task["timestamp"])}, nx=True)

    # -- reading ---------------------------------------------------------------------------------
    def _with_children(self, tasks: list[TaskDict]) -> list[TaskDict]:
        if not tasks:
            return tasks
        with self._conn.errors:
            pipe = self._conn.client.pipeline(transaction=False)
            for task in tasks:
                pipe.zrange(self._children_key(task["uuid"]), 0, -1)
            for task, children in zip(tasks, pipe.execute(), strict=True):
                task["children"] = [_str(c) for c in children]
        return tasks

    def task(self, task_id: str) -> TaskDict | None:
        found = self._load([task_id]).get(task_id)
        return None if found is None else self._with_children([found])[0]

    def _ids(self, query: Query, limit: int | None, offset: int) -> tuple[list[str], bool, int]:
        """The ids of ``query`` in order, paged in the server when it can; returns (ids, paged
        already, count when the server counted it else -1)."""
        field, desc = query.sort_field, query.descending
        in_server = field in NUMERIC_INDEXES and query.search is None
        end = -1 if limit is None else offset + max(0, limit) - 1
        filters = [self._filter_key(f, v) for f, v in (
            ("state", query.state), ("name", query.taskname), ("worker", query.workername))
            if v is not None]
        ranged = query.received_start is not None or query.received_end is not None
        client = self._conn.client
        with self._conn.errors:
            if not filters and not ranged and in_server:
                index = self._idx(field)
                pipe = client.pipeline(transaction=False)
                if limit is None or limit > 0:
                    pipe.zrange(index, offset, end, desc=desc)
                pipe.zcard(index)
                replies = pipe.execute()
                ids = replies[0] if len(replies) == 2 else []
                return [_str(i) for i in ids], True, int(replies[-1])
            if in_server and field == "received" and len(filters) <= 1:
                # A filter set is scored by received: page it directly.
                base = filters[0] if filters else self._idx("received")
                low: Any = max(query.received_start or 0.0, 0.0) if ranged else "-inf"
                high: Any = "+inf" if query.received_end is None else query.received_end
                count = -1 if limit is None else max(0, limit)
                pipe = client.pipeline(transaction=False)
                if desc:
                    pipe.zrevrangebyscore(base, high, low, start=offset, num=count)
                else:
                    pipe.zrangebyscore(base, low, high, start=offset, num=count)
                pipe.zcount(base, low, high)
                ids, total = pipe.execute()
                return [_str(i) for i in ids] if count else [], True, int(total)
            tmp = f"{self.prefix}tmp:{uuid_module.uuid4().hex}"
            pipe = client.pipeline(transaction=True)
            weights = {self._idx("received"): 1, **dict.fromkeys(filters, 0)}
            pipe.zinterstore(tmp, weights)
            pipe.expire(tmp, TMP_TTL_S)
            if ranged:
                low = max(query.received_start or 0.0, 0.0)
                pipe.zremrangebyscore(tmp, "-inf", f"({low!r}")
                if query.received_end is not None:
                    pipe.zremrangebyscore(tmp, f"({query.received_end!r}", "+inf")
            if in_server and field != "received":
                pipe.zinterstore(tmp, {tmp: 0, self._idx(field): 1})
            if in_server:
                pipe.zrange(tmp, offset, end, desc=desc)
                pipe.zcard(tmp)
            else:
                pipe.zrange(tmp, 0, -1)
            pipe.delete(tmp)
            replies = pipe.execute()
        if in_server:
            return [_str(i) for i in replies[-3]], True, int(replies[-2])
        return [_str(i) for i in replies[-2]], False, -1

    def _matching(self, query: Query, ids: list[str]) -> list[TaskDict]:
        loaded = self._load(ids)
        return [t for t in loaded.values() if query.matches(t)]

    def _tasks(self, query: Query, limit: int | None, offset: int) -> list[TaskDict]:
        if limit is not None and limit <= 0:
            return []
        ids, paged, _ = self._ids(query, limit, offset)
        if paged:
            loaded = self._load(ids)
            return self._with_children([loaded[i] for i in ids if i in loaded])
        found = query.sort(self._matching(query, ids))
        start = offset
        return self._with_children(found[start:] if limit is None else found[start:start + limit])

    def _count(self, query: Query) -> int:
        # The order does not matter: the received order is the one filter sets serve directly.
        ids, paged, count = self._ids(dataclasses.replace(query, sort_field="received"), 0, 0)
        return count if paged else len(self._matching(query, ids))

    def task_types(self) -> list[str]:
        with self._conn.errors:
            client = self._conn.client
            names = sorted(_str(n) for n in client.smembers(f"{self.prefix}names"))
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.exists(self._filter_key("name", name))
            return [n for n, there in zip(names, pipe.execute(), strict=True) if there]

    def _scores(self, field: str, since_s: float) -> list[tuple[str, float]]:
        with self._conn.errors:
            found = self._conn.client.zrangebyscore(self._idx(field), max(since_s, 0.0), "+inf",
                                                    withscores=True)
        return [(_str(pair[0]), float(pair[1])) for pair in found]

    def series(self, since_s: float, bucket_s: float) -> list[dict[str, Any]]:
        buckets = empty_series(since_s, bucket_s, time.time())
        done = self._scores("succeeded", since_s)
        runtimes: list[float | None] = []
        with self._conn.errors:
            for start in range(0, len(done), CHUNK):
                members = [m for m, _ in done[start:start + CHUNK]]
                for score in self._conn.client.zmscore(self._idx("runtime"), members):
                    runtimes.append(None if score is None or score < 0 else float(score))
        fill_series(buckets, since_s, bucket_s, "succeeded", [s for _, s in done], runtimes)
        for field in ("failed", "received"):
            fill_series(buckets, since_s, bucket_s, field,
                        [s for _, s in self._scores(field, since_s)])
        return buckets

    # -- bounds ----------------------------------------------------------------------------------
    def _prune(self, older_than_s: float) -> int:
        index = self._idx("timestamp")
        with self._conn.errors:
            client = self._conn.client
            old = int(client.zcount(index, "-inf", f"({older_than_s!r}"))
            extra = int(client.zcard(index)) - self.max_tasks
            n = max(old, extra)
            if n <= 0:
                return 0
            ids = [_str(i) for i in client.zrange(index, 0, n - 1)]
        for start in range(0, len(ids), CHUNK):
            self._delete(ids[start:start + CHUNK])
        return len(ids)

    def _delete(self, ids: Iterable[str]) -> None:
        wanted = list(ids)
        loaded = self._load(wanted)
        with self._conn.errors:
            pipe = self._conn.client.pipeline(transaction=True)
            for uuid in wanted:
                pipe.delete(self._task_key(uuid), self._children_key(uuid))
                for field in NUMERIC_INDEXES:
                    pipe.zrem(self._idx(field), uuid)
                task = loaded.get(uuid)
                if task is None:
                    continue
                for field in FILTERS:
                    if task[field] is not None:
                        pipe.zrem(self._filter_key(field, task[field]), uuid)
                if task["parent_id"] is not None:
                    pipe.zrem(self._children_key(task["parent_id"]), uuid)
            pipe.execute()

    def close(self) -> None:
        self._conn.close()
