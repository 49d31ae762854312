"""``sqlite://`` result backend: records in one SQLite file shared by the processes of one
machine (``db+sqlite://`` is the SQLAlchemy backend in Celery's layout, docs/decisions/0022).

Expiry is a column checked on every read, so an expired record is invisible at once; the rows
themselves go in :meth:`SQLiteBackend.cleanup`, which ``store_many`` also runs at most once a
minute. Waiting polls (SQLite has no notification) with a back-off from 1 ms; a store in the same
process wakes waiters at once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from celeriac import states
from celeriac._utils.sqlite import Connections, parse_url, placeholders, signal_for
from celeriac._utils.waiting import poll_until
from celeriac.backends.base import ResultBackend
from celeriac.exceptions import ImproperlyConfigured, TransportError

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    task_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    payload BLOB NOT NULL,
    expires_at REAL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_expiry ON results (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    expires_at REAL
);
"""

_UPSERT = (
    "INSERT INTO results (task_id, state, payload, expires_at, updated) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (task_id) DO UPDATE SET state = excluded.state, payload = excluded.payload,"
    " expires_at = excluded.expires_at, updated = excluded.updated"
)
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_READY_LIST = ", ".join(f"'{s}'" for s in sorted(states.READY_STATES))
# The payload only once the task is ready, so polling an unfinished task reads no result bytes.
_POLL = (
    f"SELECT state, CASE WHEN state IN ({_READY_LIST}) THEN payload END FROM results"
    f" WHERE task_id = ? AND {_LIVE}"
)
_INCR = (
    "INSERT INTO counters (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
    # An expired counter restarts from zero, as if it had been deleted on time.
    " SET value = CASE WHEN counters.expires_at IS NOT NULL AND counters.expires_at <= ?"
    " THEN excluded.value ELSE counters.value + excluded.value END,"
    " expires_at = excluded.expires_at RETURNING value"
)
_CHUNK = 500
_CLEANUP_EVERY_S = 60.0


class SQLiteBackend(ResultBackend):
    schemes = ("sqlite",)
    #: the results table, for a broker on the same file that stores and acks in one
    #: transaction (it reads this, :attr:`sqlite_path`, :meth:`write_rows` and :meth:`notify`)
    results_schema = SCHEMA

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        try:
            self.path = parse_url(url)
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        self._conns = Connections(self.path, SCHEMA, TransportError)
        # Not at once: a fresh process need not pay for a cleanup before its first result.
        self._next_cleanup = time.monotonic() + _CLEANUP_EVERY_S

    @property
    def sqlite_path(self) -> str:
        """The database file the results live in."""
        return self.path

    def _notify(self) -> None:
        signal_for(self.path, "results").notify()

    def store(self, task_id: str, state: str, payload: bytes, expires_s: float | None) -> None:
        self.store_many([(task_id, state, payload)], expires_s)

    def write_rows(
        self, c: sqlite3.Connection, items: Sequence[tuple[str, str, bytes]],
        expires_s: float | None,
    ) -> None:
        """Upsert records through ``c`` (used by the broker to store and ack in one transaction
        when both share this file); the caller commits and then calls :meth:`notify`."""
        now = time.time()
        until = now + expires_s if expires_s else None
        c.executemany(_UPSERT, [(t, st, p, until, now) for t, st, p in items])

    def notify(self) -> None:
        self._notify()

    def store_many(self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None) -> None:
        if not items:
            return
        now = time.time()
        until = now + expires_s if expires_s else None
        rows = [(task_id, state, payload, until, now) for task_id, state, payload in items]
        if len(rows) == 1:
            self._conns.run(lambda c: c.execute(_UPSERT, rows[0]))
        else:
            self._conns.transaction(lambda c: c.executemany(_UPSERT, rows))
        self._notify()
        if time.monotonic() >= self._next_cleanup:
            self._next_cleanup = time.monotonic() + _CLEANUP_EVERY_S
            self.cleanup()

    def get(self, task_id: str) -> bytes | None:
        row = self._conns.run(
            lambda c: c.execute(
                f"SELECT payload FROM results WHERE task_id = ? AND {_LIVE}", (task_id, time.time())
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    def get_many(self, task_ids: Sequence[str]) -> list[bytes | None]:
        ids = list(task_ids)
        now = time.time()

        def fetch(c: sqlite3.Connection) -> dict[str, bytes]:
            found: dict[str, bytes] = {}
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                found.update(
                    c.execute(
                        f"SELECT task_id, payload FROM results"
                        f" WHERE task_id IN ({placeholders(len(chunk))}) AND {_LIVE}",
                        [*chunk, now],
                    ).fetchall()
                )
            return found

        found = self._conns.run(fetch) if ids else {}
        return [found.get(task_id) for task_id in ids]

    def get_state(self, task_id: str) -> str | None:
        row = self._conns.run(
            lambda c: c.execute(
                f"SELECT state FROM results WHERE task_id = ? AND {_LIVE}", (task_id, time.time())
            ).fetchone()
        )
        return None if row is None else str(row[0])

    def _poll(self, task_id: str) -> bytes | None:
        row = self._conns.run(lambda c: c.execute(_POLL, (task_id, time.time())).fetchone())
        return None if row is None or row[1] is None else bytes(row[1])

    def wait(self, task_id: str, timeout_s: float | None, interval_s: float = 0.05) -> bytes | None:
        return poll_until(
            lambda: self._poll(task_id), signal_for(self.path, "results"), timeout_s, interval_s
        )

    def forget(self, task_id: str) -> None:
        self._conns.run(lambda c: c.execute("DELETE FROM results WHERE task_id = ?", (task_id,)))

    def incr(self, key: str, amount: int, expires_s: float | None) -> int:
        now = time.time()
        params = (key, amount, now + expires_s if expires_s else None, now)
        # RETURNING rows must be read before COMMIT, hence a transaction even for one statement.
        rows = self._conns.transaction(lambda c: c.execute(_INCR, params).fetchall())
        return int(rows[0][0])

    def delete_counter(self, key: str) -> None:
        self._conns.run(lambda c: c.execute("DELETE FROM counters WHERE key = ?", (key,)))

    def cleanup(self) -> int:
        now = time.time()

        def delete(c: sqlite3.Connection) -> int:
            c.execute(
                "DELETE FROM counters WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )
            # Counters are chord bookkeeping, not records: only results are counted.
            return c.execute(
                "DELETE FROM results WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            ).rowcount

        return self._conns.transaction(delete)

    def close(self) -> None:
        self._conns.close()
