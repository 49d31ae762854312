"""``sqlite://``: a broker in one SQLite file, shared safely by the worker processes of one machine.

A message is a row of ``messages``. Its place in the row's life is told by two nullable columns,
so each step is an index range and never a scan:

* ``eta`` not NULL: scheduled for later. Claiming first clears ``eta`` of rows now due.
* ``lease_until`` not NULL: claimed by ``owner`` until then. Claiming first clears leases that
  ran out (the consumer died or hung), which makes those rows claimable again.
* both NULL: ready. A partial index over exactly these rows, ordered by (queue, priority DESC, id),
  makes a claim read the head of the queue without stepping over claimed or scheduled rows.

A claim is one ``BEGIN IMMEDIATE`` transaction (SQLite's single write lock) ending in
``UPDATE ... RETURNING``, so two consumers never get the same row. SQLite has no notification, so
an idle consumer polls with a cheap read and backs off from 1 ms to ``polling_interval``; a
publish in the same process wakes it at once.

Broadcasts are rows of ``broadcasts`` (ids never reused, AUTOINCREMENT): a subscription
remembers the highest id when it was made and polls for newer rows of its channel; rows older
than ``BROADCAST_KEEP_S`` are trimmed by the next broadcast, so a subscriber that does not
read for that long misses what was trimmed.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from celeriac._utils.sqlite import (
    DEDUPE_SCHEMA,
    Connections,
    parse_url,
    placeholders,
    signal_for,
    take_key,
)
from celeriac._utils.stored import StoredParts, envelope_parts
from celeriac.brokers.base import (
    Broker,
    Capabilities,
    Settler,
    Subscription,
    dead_holders,
    node_prefix,
)
from celeriac.exceptions import ImproperlyConfigured, TransportError
from celeriac.message import Delivery, Envelope
from celeriac.protocol import open_stored

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, queue TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0,
    eta REAL, lease_until REAL, owner TEXT, delivery_count INTEGER NOT NULL DEFAULT 0,
    task_id TEXT, headers BLOB NOT NULL, properties BLOB NOT NULL, body BLOB NOT NULL,
    content_type TEXT NOT NULL, content_encoding TEXT NOT NULL, ready_at REAL
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, priority DESC, id)
    WHERE eta IS NULL AND lease_until IS NULL;
CREATE INDEX IF NOT EXISTS messages_eta ON messages (eta) WHERE eta IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_lease ON messages (lease_until) WHERE lease_until IS NOT NULL;
CREATE TABLE IF NOT EXISTS broadcasts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, payload BLOB NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS broadcasts_channel ON broadcasts (channel, id);
"""

#: seconds a broadcast row is kept for subscribers that have not read it yet
BROADCAST_KEEP_S = 60.0

# The columns _fields() fills.
_FIELDS = "task_id, headers, properties, body, content_type, content_encoding"
# ready_at: when the message was published or falls due (oldest_age_s); NULL in rows written
# before the column existed.
_INSERT = (
    f"INSERT INTO messages (queue, priority, eta, ready_at, {_FIELDS}) "
    "VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_OLDEST_READY = (
    "SELECT MIN(ready_at) FROM messages WHERE queue = ? AND lease_until IS NULL "
    "AND (eta IS NULL OR eta <= ?)"
)
_PROMOTE_DUE = "UPDATE messages SET eta = NULL WHERE eta IS NOT NULL AND eta <= ?"
_EXPIRE_LEASES = (
    "UPDATE messages SET lease_until = NULL WHERE lease_until IS NOT NULL AND lease_until < ?"
)
_READY = "eta IS NULL AND lease_until IS NULL"
# Settling (ack, reject) deletes only rows the caller still owns; ``{ids}`` marks the id list,
# the owner is bound last.
_DELETE_OWNED = "DELETE FROM messages WHERE id IN ({ids}) AND owner = ?"
# Unclaimed rows in their three states (ready, scheduled, lease run out), one index each; only
# the last takes a parameter (now).
_UNCLAIMED = (_READY, "eta IS NOT NULL", "lease_until IS NOT NULL AND lease_until < ?")
_QUEUE_SIZE = "SELECT " + " + ".join(
    f"(SELECT count(*) FROM messages WHERE {cond} AND queue = ?)" for cond in _UNCLAIMED
)
_CLAIMED_COLUMNS = (
    "id, queue, priority, headers, properties, body, content_type, content_encoding, delivery_count"
)
# The most ids bound in one statement (SQLite's limit is far higher; this keeps statements small).
_CHUNK = 500
_MIN_POLL_S = 0.001


@functools.cache
def _claim_sql(queue_count: int) -> str:
    """Claim the best ``limit`` ready rows over ``queue_count`` queues.

    With several queues, ``queue IN (...)`` would sort every ready row of them; instead each
    queue contributes its own best ``limit`` rows from the index and only those are merged.
    """
    if queue_count == 1:
        pick = (
            f"SELECT id FROM messages WHERE queue = ? AND {_READY}"
            " ORDER BY priority DESC, id LIMIT ?"
        )
    else:
        part = (
            "SELECT * FROM (SELECT id, priority FROM messages WHERE queue = ? AND "
            f"{_READY} ORDER BY priority DESC, id LIMIT ?)"
        )
        union = " UNION ALL ".join([part] * queue_count)
        pick = f"SELECT id FROM ({union}) ORDER BY priority DESC, id LIMIT ?"
    return (
        "UPDATE messages SET lease_until = ?, owner = ?, delivery_count = delivery_count + 1"
        f" WHERE id IN ({pick}) RETURNING {_CLAIMED_COLUMNS}"
    )


@functools.cache
def _probe_sql(queue_count: int) -> str:
    return (
        f"SELECT EXISTS (SELECT 1 FROM messages WHERE queue IN ({placeholders(queue_count)})"
        f" AND {_READY}),"
        " (SELECT min(eta) FROM messages WHERE eta IS NOT NULL),"
        " (SELECT min(lease_until) FROM messages WHERE lease_until IS NOT NULL)"
    )


def _fields(env: Envelope) -> tuple[Any, ...]:
    return (env.task_id or None, *envelope_parts(env))


def _chunks(ids: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _add_ready_at(conn: sqlite3.Connection) -> None:
    """Files made before ``ready_at`` existed get the column (NULL in their old rows, which
    ``oldest_age_s`` then leaves out). Two processes may race to add it: the loser's error
    says the column exists, which is what it wanted."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
    if "ready_at" in columns:
        return
    try:
        conn.execute("ALTER TABLE messages ADD COLUMN ready_at REAL")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):
            raise


class SQLiteBroker(Broker):
    schemes = ("sqlite", "sqla+sqlite")
    capabilities = Capabilities(
        native_delays=True, leases=True, priorities=True, broadcast=True, atomic_publish_once=True,
        stored_publish=True,
    )

    def __init__(self, url: str, *, transport_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, transport_options=transport_options)
        try:
            self.path = parse_url(url)
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        self.max_poll_s = max(
            float(self.transport_options.get("polling_interval", 0.05)), _MIN_POLL_S
        )
        self._conns = Connections(self.path, SCHEMA + DEDUPE_SCHEMA, TransportError,
                                  migrate=_add_ready_at)
        self._poll_s = _MIN_POLL_S

    def _owner(self) -> str:
        # node|machine|pid|token (brokers.base.consumer_name): the pid keeps a forked child from
        # sharing its parent's leases; the node lets a restarted worker reclaim them.
        return self.consumer_name()

    def _notify(self) -> None:
        signal_for(self.path, "messages").notify()

    # -- producing -----------------------------------------------------------------------------
    def publish(self, queue: str, envelope: Envelope) -> None:
        self.publish_many([(queue, envelope)])

    def publish_many(self, items: Iterable[tuple[str, Envelope]]) -> None:
        now = time.time()
        rows = []
        for queue, env in items:
            eta = env.eta_timestamp() if env.has_eta else None
            due = eta if eta is not None and eta > now else None
            rows.append((queue, env.priority, due, due or now, *_fields(env)))
        self._insert(rows)

    def publish_stored(
        self, queue: str, priority: int, task_ids: Sequence[str], entries: Sequence[StoredParts],
        *, wait: bool = True,
    ) -> None:
        # Committed before returning whatever ``wait`` says: nothing is left to confirm.
        now = time.time()
        self._insert([(queue, priority, None, now, task_id, *parts)
                      for task_id, parts in zip(task_ids, entries, strict=True)])

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        """Store message ``rows`` (``_INSERT``'s values) in one transaction and wake consumers."""
        if not rows:
            return

        def insert(c: sqlite3.Connection) -> None:
            c.executemany(_INSERT, rows)

        self._conns.transaction(insert)
        self._notify()

    def publish_once(self, queue: str, envelope: Envelope, key: str, ttl_s: float) -> bool:
        now = time.time()
        eta = envelope.eta_timestamp() if envelope.has_eta else None
        due = eta if eta is not None and eta > now else None
        row = (queue, envelope.priority, due, due or now, *_fields(envelope))

        def insert(c: sqlite3.Connection) -> bool:
            # The key and the message commit together, or neither does.
            claimed = take_key(c, key, ttl_s, now)
            if claimed:
                c.execute(_INSERT, row)
            return claimed

        published = self._conns.transaction(insert)
        if published:
            self._notify()
        return published

    # -- consuming -----------------------------------------------------------------------------
    def consume(self, queues: Sequence[str], max_messages: int, timeout_s: float) -> list[Delivery]:
        if not queues or max_messages <= 0:
            return []
        queues = list(dict.fromkeys(queues))
        deadline = time.monotonic() + timeout_s
        signal = signal_for(self.path, "messages")
        try_claim = True
        while True:
            seen = signal.generation
            now = time.time()
            if try_claim:
                deliveries = self._claim(queues, max_messages, now)
                if deliveries:
                    self._poll_s = _MIN_POLL_S
                    return deliveries
            ready, next_due = self._probe(queues)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            due = next_due is not None and next_due <= time.time()
            try_claim = ready or due
            if try_claim:
                continue
            sleep_s = min(self._poll_s, remaining)
            if next_due is not None:
                sleep_s = min(sleep_s, max(next_due - time.time(), 0.0) + 0.0005)
            # Even when woken by a same-process publish, probe before claiming: the publish may
            # have been to another queue, and a read costs less than taking the write lock.
            signal.wait(seen, sleep_s)
            self._poll_s = min(self._poll_s * 2, self.max_poll_s)

    def _claim(self, queues: list[str], max_messages: int, now: float) -> list[Delivery]:
        sql = _claim_sql(len(queues))
        params: list[Any] = [now + self.lease_s, self._owner()]
        for queue in queues:
            params += (queue, max_messages)
        if len(queues) > 1:
            params.append(max_messages)

        def claim(c: sqlite3.Connection) -> list[Any]:
            c.execute(_PROMOTE_DUE, (now,))
            c.execute(_EXPIRE_LEASES, (now,))
            return c.execute(sql, params).fetchall()

        rows = self._conns.transaction(claim)
        # RETURNING gives no order guarantee: restore priority-then-FIFO here (a priority that
        # is not a number, written by hand, sorts as 0).
        rows.sort(key=lambda r: (-r[2] if type(r[2]) is int else 0, r[0]))
        deliveries = []
        for tag, queue, _, headers, props, body, ctype, cenc, count in rows:
            # Each row is read on its own: a bad one becomes a malformed delivery (the executor
            # dead-letters it) and the rest of the batch is delivered as usual.
            envelope, problem = open_stored(headers, props, body, ctype, cenc)
            count = count if type(count) is int else 1
            deliveries.append(Delivery(envelope, queue, tag, count > 1, count, problem))
        return deliveries

    def _probe(self, queues: list[str]) -> tuple[bool, float | None]:
        """Whether a claim could succeed now, and when the next scheduled or leased row falls
        due. A read, so idle consumers never queue up for the write lock."""
        sql = _probe_sql(len(queues))
        ready, min_eta, min_lease = self._conns.run(lambda c: c.execute(sql, queues).fetchone())
        # A time that is not a number (written by hand) never falls due: ignored here.
        dues = [t for t in (min_eta, min_lease) if type(t) in (int, float)]
        return bool(ready), (min(dues) if dues else None)

    def _by_ids(
        self, sql: str, ids: list[Any], before: Sequence[Any] = (), after: Sequence[Any] = ()
    ) -> int:
        """Run ``sql`` (``{ids}`` marks the id list, bound between ``before`` and ``after``) over
        ``ids`` in as few statements as the chunk size allows; returns the rows changed."""
        if not ids:
            return 0

        def run(c: sqlite3.Connection) -> int:
            changed = 0
            for chunk in _chunks(ids):
                stmt = sql.format(ids=placeholders(len(chunk)))
                changed += c.execute(stmt, [*before, *chunk, *after]).rowcount
            return changed

        if len(ids) <= _CHUNK:
            return self._conns.run(run)
        return self._conns.transaction(run)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        # Only rows this consumer still owns: a row it requeued (owner NULL) or that another
        # consumer claimed after our lease ran out (owner changed) is not ours to delete.
        self._by_ids(_DELETE_OWNED, [d.tag for d in deliveries], after=[self._owner()])

    def settle_with(self, backend: object) -> Settler | None:
        # Duck-typed (brokers never import backends): a backend keeping its results in this
        # very file says so with ``sqlite_path`` and lends ``write_rows``/``notify``.
        if getattr(backend, "sqlite_path", None) != self.path:
            return None
        results_schema = getattr(backend, "results_schema", None)
        write_rows = getattr(backend, "write_rows", None)
        notify = getattr(backend, "notify", None)
        if not isinstance(results_schema, str) or write_rows is None or notify is None:
            return None
        # The results table lives in this same file; make sure it exists on our connection.
        self._conns.run(lambda c: c.executescript(results_schema))

        def settle(
            items: Sequence[tuple[str, str, bytes]],
            expires_s: float | None,
            deliveries: Sequence[Delivery],
        ) -> None:
            ids = [d.tag for d in deliveries]
            owner = self._owner()

            def run(c: sqlite3.Connection) -> None:
                if items:
                    write_rows(c, items, expires_s)
                for chunk in _chunks(ids):
                    c.execute(_DELETE_OWNED.format(ids=placeholders(len(chunk))), [*chunk, owner])

            self._conns.transaction(run)
            if items:
                notify()

        return settle

    def requeue(self, deliveries: Sequence[Delivery]) -> None:
        # Only rows this consumer still owns: one whose lease ran out may already be another's.
        changed = self._by_ids(
            "UPDATE messages SET lease_until = NULL, owner = NULL"
            " WHERE id IN ({ids}) AND owner = ?",
            [d.tag for d in deliveries],
            after=[self._owner()],
        )
        if changed:
            self._notify()

    def renew(self, deliveries: Sequence[Delivery]) -> None:
        # An expired but not yet re-claimed row is taken back: its consumer is alive after all.
        self._by_ids(
            "UPDATE messages SET lease_until = ? WHERE id IN ({ids}) AND owner = ?",
            [d.tag for d in deliveries],
            before=[time.time() + self.lease_s],
            after=[self._owner()],
        )

    def reject(self, deliveries: Sequence[Delivery], reason: str) -> None:
        if not deliveries:
            return
        # Logged first: should we die before the delete, the message comes back, never vanishes.
        self.log_rejected(deliveries, reason)
        self._by_ids(_DELETE_OWNED, [d.tag for d in deliveries], after=[self._owner()])

    # -- queues --------------------------------------------------------------------------------
    def purge(self, queues: Sequence[str]) -> int:
        if not queues:
            return 0
        qs = list(queues)
        marks = placeholders(len(qs))

        def purge(c: sqlite3.Connection) -> int:
            now = time.time()
            return sum(
                c.execute(
                    f"DELETE FROM messages WHERE {cond} AND queue IN ({marks})",
                    [now, *qs] if "?" in cond else qs,
                ).rowcount
                for cond in _UNCLAIMED
            )

        return self._conns.transaction(purge)

    def queue_size(self, queue: str) -> int:
        params = (queue, queue, time.time(), queue)
        return int(self._conns.run(lambda c: c.execute(_QUEUE_SIZE, params).fetchone()[0]))

    def oldest_age_s(self, queue: str) -> float | None:
        now = time.time()
        params = (queue, now)
        oldest = self._conns.run(lambda c: c.execute(_OLDEST_READY, params).fetchone()[0])
        return None if oldest is None else max(now - float(oldest), 0.0)

    # -- broadcast -----------------------------------------------------------------------------
    def broadcast(self, channel: str, payload: bytes) -> None:
        now = time.time()

        def insert(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO broadcasts (channel, payload, at) VALUES (?, ?, ?)",
                (channel, bytes(payload), now),
            )
            c.execute("DELETE FROM broadcasts WHERE at < ?", (now - BROADCAST_KEEP_S,))

        self._conns.transaction(insert)
        signal_for(self.path, "broadcasts").notify()

    def subscribe(self, channel: str) -> Subscription:
        return _SQLiteSubscription(self, channel)

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        self._conns.close()

    # -- crash recovery ------------------------------------------------------------------------
    def reclaim_node(
        self,
        hostname: str,
        queues: Sequence[str],
        node_announced: Callable[[], bool] | None = None,
    ) -> int:
        # Every queue: the owner column tells the node's rows wherever they are. Deciding who is
        # dead and releasing their rows is one transaction, so nobody claims in between.
        prefix = node_prefix(hostname)

        def release(c: sqlite3.Connection) -> int:
            owners = [
                owner
                for (owner,) in c.execute(
                    "SELECT DISTINCT owner FROM messages WHERE lease_until IS NOT NULL"
                    " AND substr(owner, 1, ?) = ?",
                    (len(prefix), prefix),
                )
            ]
            if not owners:
                return 0

            changed = 0
            for chunk in _chunks(dead_holders(owners, hostname, node_announced)):
                changed += c.execute(
                    "UPDATE messages SET lease_until = NULL, owner = NULL"
                    f" WHERE lease_until IS NOT NULL AND owner IN ({placeholders(len(chunk))})",
                    chunk,
                ).rowcount
            return changed

        changed = self._conns.transaction(release)
        if changed:
            self._notify()
        return changed


class _SQLiteSubscription(Subscription):
    """Polls ``broadcasts`` for rows of its channel newer than the last one it saw; woken at
    once by a broadcast from this process."""

    def __init__(self, broker: SQLiteBroker, channel: str) -> None:
        self._conns = broker._conns
        self._channel = channel
        self._max_poll_s = broker.max_poll_s
        self._signal = signal_for(broker.path, "broadcasts")
        row = self._conns.run(lambda c: c.execute("SELECT max(id) FROM broadcasts").fetchone())
        self._last_id = int(row[0] or 0)
        self._closed = False

    def _read(self) -> list[bytes]:
        rows = self._conns.run(
            lambda c: c.execute(
                "SELECT id, payload FROM broadcasts WHERE channel = ? AND id > ? ORDER BY id",
                (self._channel, self._last_id),
            ).fetchall()
        )
        if rows:
            self._last_id = int(rows[-1][0])
        return [bytes(payload) for _, payload in rows]

    def get(self, timeout_s: float) -> list[bytes]:
        if self._closed:
            return []
        deadline = time.monotonic() + max(timeout_s, 0.0)
        poll_s = _MIN_POLL_S
        while True:
            seen = self._signal.generation
            found = self._read()
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            self._signal.wait(seen, min(poll_s, remaining))
            poll_s = min(poll_s * 2, self._max_poll_s)

    def close(self) -> None:
        self._closed = True
