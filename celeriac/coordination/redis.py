"""``redis://`` (``rediss://``, ``redis+socket://``, ``unix://``, ``sentinel://``): coordination
state in Redis, by default the broker's own database and key prefix.

Key layout (``<p>`` = ``global_keyprefix``), unchanged from when the Redis broker kept it:

* ``<p>celeriac:revoked``: zset, member = task id (or terminate mark), score = expiry (epoch s);
* ``<p>celeriac:workers``: hash hostname -> JSON ``{"info": ..., "last_seen": ...}``, with
  ``<p>celeriac:workers:exp``, a zset hostname -> expiry (see ``workers.lua``);
* ``<p>celeriac:once:<key>``: a dedup key, a string with a PX expiry (``SET NX``); the Redis
  broker's atomic ``publish_once`` takes the same key;
* ``<p>celeriac:bucket:<key>``: a token bucket of a global rate limit, a hash (see
  ``take_tokens.lua``) that expires once the bucket would be full again;
* ``<p>celeriac:rejected``: list of rejected-message records, newest first, each the framed
  parts queue, reason, time, h, p, b, t, e (the broker's ``consume.lua`` adds records of
  malformed scheduled messages to the same list).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from celeriac._redis.client import RedisConnection
from celeriac._utils.redis_wire import SCHEMES, frame, unframe
from celeriac._utils.stored import envelope_bytes
from celeriac.coordination.base import MAX_REJECTED, CoordinationStore, WorkerRecord
from celeriac.exceptions import TransportError
from celeriac.message import Envelope
from celeriac.protocol import dead_letter, open_stored


class RedisCoordination(CoordinationStore):
    schemes = SCHEMES

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        self._conn = RedisConnection(
            url,
            self.options,
            connection_error=TransportError,
            ssl_option_keys=("broker_use_ssl", "ssl"),
        )
        self._errors = self._conn.errors
        self._revoked_key = self._conn.key("celeriac:revoked")
        self._workers_key = self._conn.key("celeriac:workers")
        self._expiry_key = self._conn.key("celeriac:workers:exp")
        self._rejected_key = self._conn.key("celeriac:rejected")

    # -- revokes -------------------------------------------------------------------------------
    def revoke(self, task_ids: Sequence[str], expires_s: float) -> None:
        ids = [t for t in task_ids if t]
        if not ids:
            return
        now = time.time()
        until = repr(now + expires_s)
        with self._errors:
            pipe = self._conn.base.pipeline(transaction=False)
            # GT: a shorter revoke never cuts a longer one short.
            pipe.execute_command("ZADD", self._revoked_key, "GT",
                                 *(x for t in ids for x in (until, t)))
            pipe.execute_command("ZREMRANGEBYSCORE", self._revoked_key, "-inf", repr(now))
            pipe.execute()

    def revoked(self, task_ids: Sequence[str]) -> set[str]:
        ids = [t for t in task_ids if t]
        if not ids:
            return set()
        with self._errors:
            scores = self._conn.client.execute_command("ZMSCORE", self._revoked_key, *ids)
        now = time.time()
        return {t for t, score in zip(ids, scores, strict=True) if score and float(score) > now}

    # -- presence ------------------------------------------------------------------------------
    def announce(self, hostname: str, info: Mapping[str, Any], ttl_s: float) -> None:
        now = time.time()
        record = orjson.dumps({"info": dict(info), "last_seen": now})
        with self._errors:
            pipe = self._conn.base.pipeline(transaction=False)
            pipe.execute_command("HSET", self._workers_key, hostname, record)
            pipe.execute_command("ZADD", self._expiry_key, repr(now + ttl_s), hostname)
            pipe.execute()

    def workers(self) -> list[WorkerRecord]:
        keys = [self._workers_key, self._expiry_key]
        with self._errors:
            flat = self._conn.run("workers", keys, [repr(time.time())])
        records = []
        for host, raw in zip(flat[::2], flat[1::2], strict=True):
            data = orjson.loads(raw)
            records.append(WorkerRecord(host.decode(), data["info"], float(data["last_seen"])))
        records.sort(key=lambda r: r.hostname)
        return records

    def withdraw(self, hostname: str) -> None:
        with self._errors:
            pipe = self._conn.base.pipeline(transaction=False)
            pipe.execute_command("HDEL", self._workers_key, hostname)
            pipe.execute_command("ZREM", self._expiry_key, hostname)
            pipe.execute()

    def is_announced(self, hostname: str) -> bool:
        with self._errors:
            score = self._conn.client.execute_command("ZSCORE", self._expiry_key, hostname)
        return score is not None and float(score) > time.time()

    # -- dedup keys ----------------------------------------------------------------------------
    def once_key(self, key: str) -> str:
        """The Redis key that dedup ``key`` is taken under."""
        return self._conn.key(f"celeriac:once:{key}")

    def add_once(self, key: str, ttl_s: float) -> bool:
        with self._errors:
            taken = self._conn.client.execute_command(
                "SET", self.once_key(key), "1", "NX", "PX", max(1, int(ttl_s * 1000))
            )
        return bool(taken)

    # -- token buckets -------------------------------------------------------------------------
    def take_tokens(
        self, key: str, rate_per_s: float, capacity: float, wanted: int
    ) -> tuple[int, float]:
        args = [repr(float(rate_per_s)), repr(float(capacity)), int(wanted)]
        with self._errors:
            granted, wait_s = self._conn.run(
                "take_tokens", [self._conn.key(f"celeriac:bucket:{key}")], args)
        return int(granted), float(wait_s)

    # -- rejected-message log ------------------------------------------------------------------
    def record_rejected(self, items: Sequence[tuple[str, Envelope, str]]) -> None:
        if not items:
            return
        at = repr(time.time()).encode()
        records = []
        for queue, envelope, reason in items:
            kept, why = dead_letter(envelope, reason)
            head = (queue.encode(), why.encode("utf-8", "replace"), at)
            records.append(frame((*head, *envelope_bytes(kept))))
        with self._errors:
            pipe = self._conn.base.pipeline(transaction=False)
            pipe.execute_command("LPUSH", self._rejected_key, *records)
            pipe.execute_command("LTRIM", self._rejected_key, 0, MAX_REJECTED - 1)
            pipe.execute()

    def rejected(self, limit: int = 100) -> list[tuple[Envelope, str]]:
        if limit <= 0:
            return []
        with self._errors:
            raw: list[bytes] = self._conn.client.execute_command(
                "LRANGE", self._rejected_key, 0, limit - 1
            )
        out = []
        for record in reversed(raw):
            parts = _unframe_record(record)
            if parts is None:  # not written by us: shown as it is, bounded
                out.append(dead_letter(Envelope(record, {}), "unreadable rejected record"))
                continue
            _queue, reason, _at, h, p, b, t, e = parts
            envelope, _ = open_stored(h, p, b, t, e)
            out.append((envelope, reason.decode("utf-8", "replace")))
        return out

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()


def _unframe_record(record: bytes) -> list[bytes] | None:
    """The 8 parts of a rejected-message record, or None when it is not one."""
    try:
        parts = unframe(record)
    except struct.error:
        return None
    return parts if len(parts) == 8 and sum(map(len, parts)) + 32 == len(record) else None
