"""Task history in a SQLite file (``sqlite:///path``): one table, ``dashboard_tasks``, which may
live in the result backend's file beside its tables.

One row per task: the fields queries filter and sort on as columns, the whole
:data:`~celeriac.dashboard.history.TaskDict` as JSON in ``data``. Indexes serve the dashboard's
queries without scanning the table: ``(state, received)``, ``(name, received)``,
``(worker, received)`` for a filter with the newest received first, ``received`` and
``timestamp`` for the unfiltered lists and the age bound, ``parent_id`` for a task's children,
``(succeeded, runtime)`` and ``failed`` for the charts. ``search`` and sorts on other fields
read every row that passes the other filters.

Several dashboards may write one file: :meth:`SQLiteHistory.record` reads, merges and writes a
batch in one ``BEGIN IMMEDIATE`` transaction, and merges are idempotent.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from celeriac._utils.sqlite import Connections, parse_url, placeholders
from celeriac.dashboard.history import HistoryStore
from celeriac.dashboard.task_query import Query, empty_series
from celeriac.dashboard.task_rows import TaskDict, dumps, event_task_ids, loads, merge_events
from celeriac.exceptions import TransportError

__all__ = ["SCHEMA", "SQLiteHistory"]

TABLE = "dashboard_tasks"
#: the TaskDict fields kept as columns as well (all others are read from ``data``)
COLUMNS = ("uuid", "name", "state", "worker", "parent_id", "root_id", "received", "sent",
           "started", "succeeded", "failed", "retried", "revoked", "rejected", "timestamp",
           "runtime", "retries", "clock")
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    uuid TEXT PRIMARY KEY, name TEXT, state TEXT, worker TEXT, parent_id TEXT, root_id TEXT,
    received REAL, sent REAL, started REAL, succeeded REAL, failed REAL, retried REAL,
    revoked REAL, rejected REAL, timestamp REAL, runtime REAL, retries INTEGER, clock INTEGER,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_received ON {TABLE} (received);
CREATE INDEX IF NOT EXISTS {TABLE}_timestamp ON {TABLE} (timestamp);
CREATE INDEX IF NOT EXISTS {TABLE}_state ON {TABLE} (state, received);
CREATE INDEX IF NOT EXISTS {TABLE}_name ON {TABLE} (name, received);
CREATE INDEX IF NOT EXISTS {TABLE}_worker ON {TABLE} (worker, received);
CREATE INDEX IF NOT EXISTS {TABLE}_parent ON {TABLE} (parent_id);
CREATE INDEX IF NOT EXISTS {TABLE}_succeeded ON {TABLE} (succeeded, runtime);
CREATE INDEX IF NOT EXISTS {TABLE}_failed ON {TABLE} (failed);
"""
_UPSERT = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}, data) VALUES ({placeholders(len(COLUMNS) + 1)})"
    f" ON CONFLICT(uuid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*COLUMNS[1:], "data"))
)
#: rows per ``IN (...)`` list (SQLite's default limit on parameters is far above it)
CHUNK = 500
_LIKE_ESCAPE = "\\"


def _like(text: str) -> str:
    escaped = (text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", _LIKE_ESCAPE + "%")
               .replace("_", _LIKE_ESCAPE + "_"))
    return f"%{escaped}%"


def _field_sql(field: str) -> str:
    """SQL for a TaskDict field; ``field`` is one of SORT_FIELDS (checked by Query.make), so
    no text from a request is ever spliced in."""
    if field in COLUMNS:
        return field
    return f"json_extract(data, '$.{field}')"


class SQLiteHistory(HistoryStore):
    """History in a SQLite file (see the module docstring)."""

    def __init__(self, url: str, **bounds: Any) -> None:
        super().__init__(**bounds)
        self.url = url
        try:
            self.path = parse_url(url)
        except ValueError as exc:
            raise ValueError(f"history store: {exc}") from exc
        self._conns = Connections(self.path, SCHEMA, TransportError)

    # -- writing ---------------------------------------------------------------------------------
    def _record(self, events: Sequence[dict[str, Any]]) -> int:
        def write(c: sqlite3.Connection) -> int:
            changed = merge_events(events, self._load(c, event_task_ids(events)))
            if not changed:
                return 0
            existing = self._existing(c, list(changed))
            c.executemany(_UPSERT, [(*(t[col] for col in COLUMNS), dumps(t).decode())
                                    for t in changed.values()])
            return len(changed) - len(existing)

        return self._conns.transaction(write)

    @staticmethod
    def _load(c: sqlite3.Connection, uuids: list[str]) -> dict[str, TaskDict]:
        found: dict[str, TaskDict] = {}
        for start in range(0, len(uuids), CHUNK):
            chunk = uuids[start:start + CHUNK]
            rows = c.execute(f"SELECT data FROM {TABLE} WHERE uuid IN ({placeholders(len(chunk))})",
                             chunk)
            for (data,) in rows:
                task = loads(data)
                found[task["uuid"]] = task
        return found

    @staticmethod
    def _existing(c: sqlite3.Connection, uuids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(uuids), CHUNK):
            chunk = uuids[start:start + CHUNK]
            found.update(row[0] for row in c.execute(
                f"SELECT uuid FROM {TABLE} WHERE uuid IN ({placeholders(len(chunk))})", chunk))
        return found

    # -- reading ---------------------------------------------------------------------------------
    def _with_children(self, c: sqlite3.Connection, tasks: list[TaskDict]) -> list[TaskDict]:
        by_id = {t["uuid"]: t for t in tasks}
        ids = list(by_id)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            rows = c.execute(
                f"SELECT parent_id, uuid FROM {TABLE} WHERE parent_id IN "
                f"({placeholders(len(chunk))}) ORDER BY rowid", chunk)
            for parent_id, uuid in rows:
                by_id[parent_id]["children"].append(uuid)
        return tasks

    def task(self, task_id: str) -> TaskDict | None:
        def read(c: sqlite3.Connection) -> TaskDict | None:
            row = c.execute(f"SELECT data FROM {TABLE} WHERE uuid = ?", (task_id,)).fetchone()
            return None if row is None else self._with_children(c, [loads(row[0])])[0]

        return self._conns.run(read)

    @staticmethod
    def where(query: Query) -> tuple[str, list[Any]]:
        """The WHERE clause (with its parameters) of ``query``'s filters."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("worker", query.workername), ("name", query.taskname),
                              ("state", query.state)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if query.received_start is not None:
            clauses.append("received >= ?")
            params.append(query.received_start)
        if query.received_end is not None:
            clauses.append("received <= ?")
            params.append(query.received_end)
        for field, text in query.terms():
            if field == "state":
                clauses.append("state = ? COLLATE NOCASE")
                params.append(text)
                continue
            fields = [field] if field is not None else ["name", "uuid", "state", "worker", "args",
                                                         "kwargs", "result", "exception"]
            clauses.append("(" + " OR ".join(
                f"{_field_sql(f)} LIKE ? ESCAPE '{_LIKE_ESCAPE}'" for f in fields) + ")")
            params.extend([_like(text)] * len(fields))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    @classmethod
    def select_sql(cls, query: Query, limit: int | None, offset: int) -> tuple[str, list[Any]]:
        """The SELECT of ``tasks()`` (public for the EXPLAIN QUERY PLAN test)."""
        where, params = cls.where(query)
        direction = "DESC" if query.descending else "ASC"
        sql = (f"SELECT data FROM {TABLE}{where} ORDER BY {_field_sql(query.sort_field)} "
               f"{direction}, rowid {direction}")
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            params = [*params, -1 if limit is None else max(0, limit), offset]
        return sql, params

    def _tasks(self, query: Query, limit: int | None, offset: int) -> list[TaskDict]:
        sql, params = self.select_sql(query, limit, offset)

        def read(c: sqlite3.Connection) -> list[TaskDict]:
            return self._with_children(c, [loads(row[0]) for row in c.execute(sql, params)])

        return self._conns.run(read)

    def _count(self, query: Query) -> int:
        where, params = self.where(query)

        def read(c: sqlite3.Connection) -> int:
            return int(c.execute(f"SELECT COUNT(*) FROM {TABLE}{where}", params).fetchone()[0])

        return self._conns.run(read)

    def task_types(self) -> list[str]:
        def read(c: sqlite3.Connection) -> list[str]:
            return [row[0] for row in c.execute(
                f"SELECT DISTINCT name FROM {TABLE} WHERE name IS NOT NULL ORDER BY name")]

        return self._conns.run(read)

    def series(self, since_s: float, bucket_s: float) -> list[dict[str, Any]]:
        buckets = empty_series(since_s, bucket_s, time.time())
        start_s = buckets[0]["t"]

        def read(c: sqlite3.Connection) -> None:
            for field in ("succeeded", "failed", "received"):
                rows = c.execute(
                    f"SELECT CAST(({field} - ?) / ? AS INTEGER), COUNT(*), AVG(runtime) "
                    f"FROM {TABLE} WHERE {field} >= ? GROUP BY 1", (start_s, bucket_s, since_s))
                for index, count, runtime_avg_s in rows:
                    if 0 <= index < len(buckets):
                        buckets[index][field] = count
                        if field == "succeeded":
                            buckets[index]["runtime_avg_s"] = runtime_avg_s

        self._conns.run(read)
        return buckets

    # -- bounds ----------------------------------------------------------------------------------
    def _prune(self, older_than_s: float) -> int:
        def delete(c: sqlite3.Connection) -> int:
            gone = c.execute(f"DELETE FROM {TABLE} WHERE timestamp < ?", (older_than_s,)).rowcount
            count = int(c.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])
            if count > self.max_tasks:
                gone += c.execute(
                    f"DELETE FROM {TABLE} WHERE rowid IN (SELECT rowid FROM {TABLE} "
                    f"ORDER BY timestamp ASC LIMIT ?)", (count - self.max_tasks,)).rowcount
            return int(gone)

        return self._conns.transaction(delete)

    def close(self) -> None:
        self._conns.close()
