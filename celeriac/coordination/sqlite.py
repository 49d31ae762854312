"""``sqlite://``: coordination state in one SQLite file, by default the broker's own file.

The tables are the ones the SQLite broker kept before the coordination store existed
(``revoked``, ``workers``, ``dedupe``, ``rejected``), so a file written by an older release
reads the same; ``rate_buckets`` holds the token buckets of global rate limits. Every step is
one statement or one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from celeriac._utils.sqlite import DEDUPE_SCHEMA, Connections, parse_url, placeholders, take_key
from celeriac._utils.stored import dump_json, envelope_parts
from celeriac.coordination.base import (
    MAX_REJECTED,
    CoordinationStore,
    WorkerRecord,
    take_from_bucket,
)
from celeriac.exceptions import ImproperlyConfigured, TransportError
from celeriac.message import Envelope
from celeriac.protocol import dead_letter, open_stored

SCHEMA = """
CREATE TABLE IF NOT EXISTS revoked (task_id TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY, message_id INTEGER, queue TEXT NOT NULL,
    task_id TEXT, headers BLOB NOT NULL, properties BLOB NOT NULL, body BLOB NOT NULL,
    content_type TEXT NOT NULL, content_encoding TEXT NOT NULL,
    reason TEXT NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_buckets (
    key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
    hostname TEXT PRIMARY KEY, info BLOB NOT NULL, last_seen REAL NOT NULL, expires_at REAL NOT NULL
);
"""

# The most ids bound in one statement.
_CHUNK = 500


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


class SQLiteCoordination(CoordinationStore):
    schemes = ("sqlite", "sqla+sqlite")

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        try:
            self.path = parse_url(url)
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        self._conns = Connections(self.path, SCHEMA + DEDUPE_SCHEMA, TransportError)

    # -- revokes -------------------------------------------------------------------------------
    def revoke(self, task_ids: Sequence[str], expires_s: float) -> None:
        now = time.time()
        rows = [(task_id, now + expires_s) for task_id in task_ids]

        def upsert(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM revoked WHERE expires_at <= ?", (now,))
            c.executemany(
                "INSERT INTO revoked (task_id, expires_at) VALUES (?, ?) ON CONFLICT (task_id)"
                " DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
                rows,
            )

        self._conns.transaction(upsert)

    def revoked(self, task_ids: Sequence[str]) -> set[str]:
        ids = [t for t in task_ids if t]
        if not ids:
            return set()
        now = time.time()

        def lookup(c: sqlite3.Connection) -> set[str]:
            # Revokes are rare: a one-row peek skips binding the whole id list when none exist.
            if c.execute("SELECT 1 FROM revoked LIMIT 1").fetchone() is None:
                return set()
            found: set[str] = set()
            for chunk in _chunks(ids):
                found.update(
                    row[0]
                    for row in c.execute(
                        f"SELECT task_id FROM revoked WHERE task_id IN ({placeholders(len(chunk))})"
                        " AND expires_at > ?",
                        [*chunk, now],
                    )
                )
            return found

        return self._conns.run(lookup)

    # -- presence ------------------------------------------------------------------------------
    def announce(self, hostname: str, info: Mapping[str, Any], ttl_s: float) -> None:
        now = time.time()
        params = (hostname, dump_json(info), now, now + ttl_s)
        self._conns.run(
            lambda c: c.execute(
                "INSERT INTO workers (hostname, info, last_seen, expires_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (hostname) DO UPDATE SET info = excluded.info,"
                " last_seen = excluded.last_seen, expires_at = excluded.expires_at",
                params,
            )
        )

    def workers(self) -> list[WorkerRecord]:
        rows = self._conns.run(
            lambda c: c.execute(
                "SELECT hostname, info, last_seen FROM workers WHERE expires_at > ?"
                " ORDER BY hostname",
                (time.time(),),
            ).fetchall()
        )
        return [WorkerRecord(host, orjson.loads(info), seen) for host, info, seen in rows]

    def withdraw(self, hostname: str) -> None:
        self._conns.run(lambda c: c.execute("DELETE FROM workers WHERE hostname = ?", (hostname,)))

    def is_announced(self, hostname: str) -> bool:
        params = (hostname, time.time())
        row = self._conns.run(
            lambda c: c.execute(
                "SELECT 1 FROM workers WHERE hostname = ? AND expires_at > ?", params
            ).fetchone()
        )
        return row is not None

    # -- dedup keys ----------------------------------------------------------------------------
    def add_once(self, key: str, ttl_s: float) -> bool:
        now = time.time()
        return self._conns.transaction(lambda c: take_key(c, key, ttl_s, now))

    # -- token buckets -------------------------------------------------------------------------
    def take_tokens(
        self, key: str, rate_per_s: float, capacity: float, wanted: int
    ) -> tuple[int, float]:
        def take(c: sqlite3.Connection) -> tuple[int, float]:
            # Read inside the write lock: every process's clock is this host's wall clock.
            now = time.time()
            row = c.execute(
                "SELECT tokens, updated_at FROM rate_buckets WHERE key = ?", (key,)
            ).fetchone()
            tokens, updated = row if row is not None else (capacity, now)
            granted, left, wait_s = take_from_bucket(
                tokens, updated, now, rate_per_s, capacity, wanted)
            c.execute(
                "INSERT INTO rate_buckets (key, tokens, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens,"
                " updated_at = excluded.updated_at",
                (key, left, now),
            )
            return granted, wait_s

        return self._conns.transaction(take)

    # -- rejected-message log ------------------------------------------------------------------
    def record_rejected(self, items: Sequence[tuple[str, Envelope, str]]) -> None:
        if not items:
            return
        now = time.time()
        rows = []
        for queue, envelope, reason in items:
            kept, why = dead_letter(envelope, reason)
            rows.append((queue, kept.task_id or None, *envelope_parts(kept), why, now))

        def insert(c: sqlite3.Connection) -> None:
            c.executemany(
                "INSERT INTO rejected (queue, task_id, headers, properties, body, content_type,"
                " content_encoding, reason, at) VALUES (?,?,?,?,?,?,?,?,?)",
                rows,
            )
            c.execute(
                "DELETE FROM rejected WHERE id <= (SELECT max(id) FROM rejected) - ?",
                (MAX_REJECTED,),
            )

        self._conns.transaction(insert)

    def rejected(self, limit: int = 100) -> list[tuple[Envelope, str]]:
        if limit <= 0:
            return []
        rows = self._conns.run(
            lambda c: c.execute(
                "SELECT headers, properties, body, content_type, content_encoding, reason"
                " FROM rejected ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        )
        rows.reverse()
        return [(open_stored(h, p, b, ct, ce)[0], reason) for h, p, b, ct, ce, reason in rows]

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        self._conns.close()
