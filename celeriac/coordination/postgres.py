"""``postgresql://`` (``postgres://``, and a SQLAlchemy result backend's ``db+postgresql://``):
coordination state in PostgreSQL, by default in the broker's (or the result backend's) database
and schema.

Tables (``celeriac/_postgres/migrations``): ``celeriac_revoked``, ``celeriac_workers``,
``celeriac_dedupe`` (shared with the broker's ``publish_once``), ``celeriac_rejected``,
``celeriac_rate_buckets``. Every operation is one statement (one round trip, one transaction),
timed by the database's clock, so every worker agrees on expiries and bucket refills.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from celeriac._postgres.conn import (
    BACKEND_SCHEMES,
    NOW,
    SCHEMES,
    TAKE_KEY,
    Pool,
    parse_url,
    scalar,
)
from celeriac._utils.stored import dump_json, envelope_parts
from celeriac.coordination.base import MAX_REJECTED, CoordinationStore, WorkerRecord
from celeriac.exceptions import TransportError
from celeriac.message import Envelope
from celeriac.protocol import dead_letter, open_stored

_REVOKE = f"""
WITH gone AS (DELETE FROM celeriac_revoked WHERE expires_at <= {NOW})
INSERT INTO celeriac_revoked (task_id, expires_at)
SELECT t, {NOW} + %(expires_s)s::float8 FROM unnest(%(ids)s::text[]) AS t
ON CONFLICT (task_id) DO UPDATE
    SET expires_at = greatest(celeriac_revoked.expires_at, excluded.expires_at)
"""
_REVOKED = (
    f"SELECT task_id FROM celeriac_revoked WHERE task_id = ANY(%s) AND expires_at > {NOW}"
)
_ANNOUNCE = f"""
INSERT INTO celeriac_workers (hostname, info, last_seen, expires_at)
VALUES (%(host)s, %(info)s, {NOW}, {NOW} + %(ttl_s)s::float8)
ON CONFLICT (hostname) DO UPDATE SET info = excluded.info, last_seen = excluded.last_seen,
    expires_at = excluded.expires_at
"""
_WORKERS = (
    f"SELECT hostname, info, last_seen FROM celeriac_workers WHERE expires_at > {NOW}"
    " ORDER BY hostname"
)
_IS_ANNOUNCED = f"SELECT 1 FROM celeriac_workers WHERE hostname = %s AND expires_at > {NOW}"
_ADD_ONCE = f"WITH k AS ({TAKE_KEY}) SELECT count(*) FROM k"
# Expired keys are dropped every this many add_once calls of a store object.
_DEDUPE_PRUNE_EVERY = 64
_PRUNE_DEDUPE = f"DELETE FROM celeriac_dedupe WHERE expires_at <= {NOW}"
# The bucket row is made first (a separate statement, so two first callers cannot both start
# from a full bucket), then refilled and taken from under its row lock; both in one pipeline.
_ENSURE_BUCKET = (
    "INSERT INTO celeriac_rate_buckets (key, tokens, updated_at)"
    f" VALUES (%(key)s, %(capacity)s::float8, {NOW}) ON CONFLICT (key) DO NOTHING"
)
_TAKE_TOKENS = f"""
WITH old AS (
    SELECT tokens, updated_at FROM celeriac_rate_buckets WHERE key = %(key)s FOR UPDATE
), cur AS (
    SELECT least(%(capacity)s::float8, o.tokens
                 + greatest(0, c.now - o.updated_at) * %(rate)s::float8) AS refilled, c.now
    FROM old AS o, (SELECT {NOW} AS now) AS c
), g AS (
    SELECT greatest(0, least(%(wanted)s::int, floor(refilled)::int)) AS granted, refilled, now
    FROM cur
), up AS (
    UPDATE celeriac_rate_buckets SET tokens = g.refilled - g.granted, updated_at = g.now
    FROM g WHERE key = %(key)s
)
SELECT granted, refilled - granted FROM g
"""
_RECORD_REJECTED = f"""
INSERT INTO celeriac_rejected (queue, task_id, headers, properties, body, content_type,
    content_encoding, reason, at)
SELECT q, t, h, p, b, ct, ce, r, {NOW} FROM unnest(%(queue)s::text[], %(task_id)s::text[],
    %(headers)s::bytea[], %(properties)s::bytea[], %(body)s::bytea[], %(ctype)s::text[],
    %(cenc)s::text[], %(reason)s::text[]) WITH ORDINALITY AS x(q, t, h, p, b, ct, ce, r, n)
ORDER BY n
"""
_CUT_REJECTED = (
    "DELETE FROM celeriac_rejected WHERE id <= (SELECT max(id) FROM celeriac_rejected) - %s"
)
_REJECTED = (
    "SELECT headers, properties, body, content_type, content_encoding, reason"
    " FROM celeriac_rejected ORDER BY id DESC LIMIT %s"
)


def _info(raw: bytes) -> dict[str, Any]:
    """A presence record's info; a row not written by us (not a JSON object) reads as empty,
    so one bad row never hides the other workers."""
    try:
        info = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


class PostgresCoordination(CoordinationStore):
    schemes = (*SCHEMES, *BACKEND_SCHEMES)

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        self.params = parse_url(url, self.options)
        self._pool = Pool(self.params, error=TransportError,
                          max_idle=int(self.options.get("max_idle_connections", 8)))
        self._add_once_calls = 0

    # -- revokes -------------------------------------------------------------------------------
    def revoke(self, task_ids: Sequence[str], expires_s: float) -> None:
        # one row per id: ON CONFLICT cannot touch the same row twice in one statement
        ids = list(dict.fromkeys(t for t in task_ids if t))
        if not ids:
            return
        params = {"ids": ids, "expires_s": float(expires_s)}
        self._pool.run(lambda c: c.execute(_REVOKE, params))

    def revoked(self, task_ids: Sequence[str]) -> set[str]:
        ids = [t for t in task_ids if t]
        if not ids:
            return set()
        rows = self._pool.run(lambda c: c.execute(_REVOKED, (ids,)).fetchall())
        return {row[0] for row in rows}

    # -- presence ------------------------------------------------------------------------------
    def announce(self, hostname: str, info: Mapping[str, Any], ttl_s: float) -> None:
        params = {"host": hostname, "info": dump_json(info), "ttl_s": float(ttl_s)}
        self._pool.run(lambda c: c.execute(_ANNOUNCE, params))

    def workers(self) -> list[WorkerRecord]:
        rows = self._pool.run(lambda c: c.execute(_WORKERS).fetchall())
        return [WorkerRecord(host, _info(info), seen) for host, info, seen in rows]

    def withdraw(self, hostname: str) -> None:
        self._pool.run(
            lambda c: c.execute("DELETE FROM celeriac_workers WHERE hostname = %s", (hostname,)))

    def is_announced(self, hostname: str) -> bool:
        row = self._pool.run(lambda c: c.execute(_IS_ANNOUNCED, (hostname,)).fetchone())
        return row is not None

    # -- dedup keys ----------------------------------------------------------------------------
    def add_once(self, key: str, ttl_s: float) -> bool:
        self._add_once_calls += 1
        if self._add_once_calls % _DEDUPE_PRUNE_EVERY == 0:
            self._pool.run(lambda c: c.execute(_PRUNE_DEDUPE))
        params = {"key": key, "ttl_s": float(ttl_s)}
        taken = self._pool.run(lambda c: scalar(c, _ADD_ONCE, params))
        return bool(taken)

    # -- token buckets -------------------------------------------------------------------------
    def take_tokens(
        self, key: str, rate_per_s: float, capacity: float, wanted: int
    ) -> tuple[int, float]:
        params = {"key": key, "rate": float(rate_per_s), "capacity": float(capacity),
                  "wanted": int(wanted)}

        def take(c: Any) -> tuple[int, float]:
            with c.pipeline():  # one round trip
                c.execute(_ENSURE_BUCKET, params)
                cur = c.execute(_TAKE_TOKENS, params)
            row = cur.fetchone()
            return int(row[0]), float(row[1])

        granted, left = self._pool.run(take)
        return granted, max(0.0, (1.0 - left) / rate_per_s)

    # -- rejected-message log ------------------------------------------------------------------
    def record_rejected(self, items: Sequence[tuple[str, Envelope, str]]) -> None:
        if not items:
            return
        cols: dict[str, list[Any]] = {k: [] for k in (
            "queue", "task_id", "headers", "properties", "body", "ctype", "cenc", "reason")}
        for queue, envelope, reason in items:
            kept, why = dead_letter(envelope, reason)
            headers, props, body, ctype, cenc = envelope_parts(kept)
            for name, value in (("queue", queue), ("task_id", kept.task_id or None),
                                ("headers", headers), ("properties", props), ("body", body),
                                ("ctype", ctype), ("cenc", cenc), ("reason", why)):
                cols[name].append(value)
        keep = MAX_REJECTED

        def record(c: Any) -> None:
            with c.pipeline():  # one round trip
                c.execute(_RECORD_REJECTED, cols)
                c.execute(_CUT_REJECTED, (keep,))

        self._pool.run(record)

    def rejected(self, limit: int = 100) -> list[tuple[Envelope, str]]:
        if limit <= 0:
            return []
        rows = self._pool.run(lambda c: c.execute(_REJECTED, (limit,)).fetchall())
        rows.reverse()
        return [(open_stored(h, p, b, ct, ce)[0], reason) for h, p, b, ct, ce, reason in rows]

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        self._pool.close()
