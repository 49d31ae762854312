"""``postgresql://`` (``postgres://``): a broker in one PostgreSQL database.

A message is a row of ``celeriac_messages`` (schema: ``celeriac/_postgres/migrations``). Its
state is told by two nullable columns: ``eta`` (scheduled), ``lease_until`` (claimed by
``owner``), both NULL (ready, in a partial index ordered as claims take rows). Rules:

* **Claims** are one round trip: one statement taking the best ``max_messages`` ready rows of
  the queues (``priority DESC, id``) with ``FOR UPDATE SKIP LOCKED``, so concurrent consumers
  never wait for each other and never get the same row. The claim leases them to this consumer
  until the database's clock passes ``lease_until``; :meth:`renew` extends that, and a row whose
  lease ran out is delivered again with its delivery count raised. A promotion step (due rows
  become ready, lapsed leases claimable) joins the claim's round trip after a claim that came up
  short, and at least every ``PROMOTE_EVERY_S`` under a backlog.
* **Commits**: claims, acks, requeues and renewals commit with ``synchronous_commit = off``
  (unless the transport option ``durable_acks`` is true): a database crash may forget the last
  fraction of a second of them, which only brings those messages back (at least once).
  Publishes always wait for the WAL flush.
* **Wake-ups** are LISTEN/NOTIFY, no polling: every statement that makes a row claimable
  (publish, requeue, reclaim) notifies the queue's channel in the same transaction, and an idle
  consumer sleeps on its listening connection until a notification, the next ``eta`` or lease
  expiry, or its timeout.
* **Settling** (ack, reject) deletes only rows this consumer still owns, in one statement per
  batch; requeue and renew likewise touch only owned rows. An ack is write-behind
  (:mod:`celeriac._postgres.acks`): sent before :meth:`ack` returns, its reply read before this
  broker's next operation.
* **Broadcasts** are NOTIFY payloads (text as it is, other bytes base64); a payload too large for
  a notification (PostgreSQL's limit is 8000 bytes) is stored in ``celeriac_broadcasts`` and
  the notification carries its id; such rows are trimmed after ``BROADCAST_KEEP_S``.
* **publish_once** takes the dedup key (``celeriac_dedupe``, the coordination store's
  ``add_once`` table) and inserts the message in one statement.

The database's clock times leases, etas and ages, so workers on machines with skewed clocks
still agree. Errors become TransportError (BrokerConnectionError when the server cannot be
reached) naming the URL with its password masked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import psycopg

from celeriac._postgres import statements as q
from celeriac._postgres.acks import WriteBehind
from celeriac._postgres.conn import (
    Pool,
    channel,
    describe,
    parse_url,
    qualified,
    same_database,
    scalar,
)
from celeriac._postgres.listen import Listener
from celeriac._postgres.rows import columns, decode_broadcast, delivery, encode_broadcast
from celeriac.brokers.base import (
    Broker,
    Capabilities,
    Settler,
    Subscription,
    dead_holders,
    node_prefix,
)
from celeriac.exceptions import BrokerConnectionError, TransportError
from celeriac.message import Delivery, Envelope

#: seconds a large broadcast's row is kept for subscribers that have not read it yet
BROADCAST_KEEP_S = 60.0
#: the largest NOTIFY payload sent as it is (PostgreSQL refuses 8000 bytes and more)
NOTIFY_MAX_BYTES = 7900
#: messages per publish statement (a larger bulk send is several, in one transaction)
PUBLISH_CHUNK = 5000
#: seconds between reads of a busy consumer's pending notifications
DRAIN_EVERY_S = 1.0
#: seconds between promotion steps while every claim comes back full (a backlog)
PROMOTE_EVERY_S = 0.5


class PostgresBroker(Broker):
    schemes = ("postgresql", "postgres")
    capabilities = Capabilities(
        native_delays=True, leases=True, priorities=True, broadcast=True, atomic_publish_once=True
    )

    def __init__(self, url: str, *, transport_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, transport_options=transport_options)
        self.params = parse_url(url, self.transport_options)
        self._pool = Pool(self.params, error=TransportError,
                          connection_error=BrokerConnectionError,
                          max_idle=int(self.transport_options.get("max_idle_connections", 8)))
        #: whether claims, acks, requeues and renewals wait for the WAL flush (see q.ASYNC_COMMIT)
        self.durable_acks = bool(self.transport_options.get("durable_acks", False))
        # acks are sent at once and their replies read later (celeriac._postgres.acks)
        self._acks = WriteBehind(self._pool, synchronous_commit=self.durable_acks)
        # one listening connection per consuming thread, all closed by close()
        self._local = threading.local()
        self._listeners: list[Listener] = []
        self._channel_cache: dict[tuple[str, ...], list[str]] = {}
        self._promote_at = 0.0
        self._came_up_short = True
        self._drain_at = 0.0

    def _listener(self) -> Listener:
        listener: Listener | None = getattr(self._local, "listener", None)
        if listener is None:
            listener = self._local.listener = Listener(self._pool)
            self._listeners.append(listener)
        return listener

    def _channels(self, queues: tuple[str, ...]) -> list[str]:
        found = self._channel_cache.get(queues)
        if found is None:
            if len(self._channel_cache) > 64:
                self._channel_cache.clear()
            found = self._channel_cache[queues] = [
                channel(self.params.namespace, q) for q in queues]
        return found

    # -- producing -----------------------------------------------------------------------------
    def publish(self, queue: str, envelope: Envelope) -> None:
        self.publish_many([(queue, envelope)])

    def publish_many(self, items: Iterable[tuple[str, Envelope]]) -> None:
        cols = columns(items, time.time())
        if not cols["queue"]:
            return
        total = len(cols["queue"])
        if total <= PUBLISH_CHUNK:
            params = {**cols, "ns": self.params.namespace}
            self._pool.run(lambda c: c.execute(q.PUBLISH, params))
            return
        chunks = [
            {**{k: v[start : start + PUBLISH_CHUNK] for k, v in cols.items()},
             "ns": self.params.namespace}
            for start in range(0, total, PUBLISH_CHUNK)
        ]

        def publish(c: psycopg.Connection[Any]) -> None:
            # One round trip; the explicit transaction rolls back even a chunk already sent
            # when a later one fails on the client (a value that cannot be encoded).
            with c.pipeline(), c.transaction():
                for params in chunks:
                    c.execute(q.PUBLISH, params)

        self._pool.run(publish)

    def publish_once(self, queue: str, envelope: Envelope, key: str, ttl_s: float) -> bool:
        cols = columns([(queue, envelope)], time.time())
        params = {k: v[0] for k, v in cols.items()}
        params.update(key=key, ttl_s=float(ttl_s), ns=self.params.namespace)
        rows = self._pool.run(lambda c: c.execute(q.PUBLISH_ONCE, params).fetchall())
        return bool(rows)

    # -- consuming -----------------------------------------------------------------------------
    def consume(self, queues: Sequence[str], max_messages: int, timeout_s: float) -> list[Delivery]:
        if not queues or max_messages <= 0:
            return []
        queues = list(dict.fromkeys(queues))
        self._acks.flush()
        deadline = time.monotonic() + timeout_s
        listener = self._listener() if timeout_s > 0 else None
        while True:
            if listener is not None:
                # Before the claim, so a publish between claim and wait still wakes us.
                listener.listen(self._channels(tuple(queues)))
            deliveries = self._claim(queues, max_messages)
            if deliveries and listener is not None and time.monotonic() >= self._drain_at:
                # A consumer that never waits (a backlog) still reads its notifications now and
                # then: the server's notification queue cannot move past an unread listener.
                listener.wait(0.0)
                self._drain_at = time.monotonic() + DRAIN_EVERY_S
            remaining = deadline - time.monotonic()
            if deliveries or listener is None or remaining <= 0:
                return deliveries
            next_due_s = self._pool.run(lambda c: scalar(c, q.NEXT_DUE))
            if next_due_s is not None:
                # a little past due, so the next claim sees it due on the database's clock
                remaining = min(remaining, max(float(next_due_s), 0.0) + 0.002)
            woken_by = listener.wait(remaining)
            if woken_by == [] and time.monotonic() >= deadline:
                return []  # timed out: nothing was published, nothing fell due in time

    def _claim(self, queues: list[str], max_messages: int) -> list[Delivery]:
        # The promotion step (due etas, lapsed leases) joins a claim after one that came up
        # short, and one at least every PROMOTE_EVERY_S under a backlog; a claim is one round
        # trip either way (consume() claims again when it finds something due).
        promote = self._came_up_short or time.monotonic() >= self._promote_at
        rows = self._pool.run(lambda c: self._claim_rows(c, queues, max_messages, promote))
        self._came_up_short = len(rows) < max_messages
        if promote:
            self._promote_at = time.monotonic() + PROMOTE_EVERY_S
        # RETURNING gives no order guarantee: restore priority-then-FIFO here.
        rows.sort(key=lambda r: (-r[2], r[0]))
        return [delivery(row) for row in rows]

    def _claim_rows(self, c: psycopg.Connection[Any], queues: list[str], limit: int,
                    promote: bool) -> list[tuple[Any, ...]]:
        params = {"queues": queues, "limit": limit, "lease_s": self.lease_s,
                  "owner": self.consumer_name()}
        with c.pipeline():  # one round trip, one transaction
            if not self.durable_acks:
                c.execute(q.ASYNC_COMMIT)
            if promote:
                c.execute(q.PROMOTE)
            cur = c.execute(q.CLAIM, params)
        return cur.fetchall()

    def _owned(self, sql: str, deliveries: Sequence[Delivery], **extra: Any) -> None:
        if not deliveries:
            return
        self._acks.flush()
        params = {"ids": [d.tag for d in deliveries], "owner": self.consumer_name(),
                  "ns": self.params.namespace, **extra}

        def run(c: psycopg.Connection[Any]) -> None:
            with c.pipeline():  # one round trip, one transaction
                if not self.durable_acks:
                    c.execute(q.ASYNC_COMMIT)
                c.execute(sql, params)

        self._pool.run(run)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        # Only rows this consumer still owns: a row it requeued (owner NULL) or that another
        # consumer claimed after our lease ran out (owner changed) is not ours to delete.
        # Write-behind: sent now, its reply read before this broker's next operation.
        if deliveries:
            ids = "{" + ",".join(str(d.tag) for d in deliveries) + "}"
            self._acks.send(q.ACK, [ids, self.consumer_name()])

    def requeue(self, deliveries: Sequence[Delivery]) -> None:
        self._owned(q.RELEASE, deliveries)

    def renew(self, deliveries: Sequence[Delivery]) -> None:
        # A lapsed but not yet re-claimed row is taken back: its consumer is alive after all.
        self._owned(q.RENEW, deliveries, lease_s=self.lease_s)

    def settle_with(self, backend: object) -> Settler | None:
        # Duck-typed (brokers never import backends): the SQLAlchemy result backend lends its
        # engine and ``write_rows``; when the engine is on this very database (same host, port,
        # database and user), results and acks commit in one transaction on its connection.
        engine = getattr(backend, "engine", None) if hasattr(backend, "write_rows") else None
        if engine is None or not same_database(self.params, engine):
            return None
        write_rows: Callable[..., None] = getattr(backend, "write_rows")  # noqa: B009
        notify: Callable[[], None] = getattr(backend, "notify", lambda: None)
        delete = q.DELETE_OWNED.replace(q.TABLE, qualified(self.params, q.TABLE), 1)
        ready: list[bool] = []

        def settle(
            items: Sequence[tuple[str, str, bytes]],
            expires_s: float | None,
            deliveries: Sequence[Delivery],
        ) -> None:
            if not ready:
                # The backend makes its tables on its first use; our table exists once we ran.
                backend.get_state("")  # type: ignore[attr-defined]
                self._pool.run(lambda c: None)
                ready.append(True)
            params = {"ids": [d.tag for d in deliveries], "owner": self.consumer_name()}
            try:
                with engine.begin() as conn:
                    if items:
                        write_rows(conn, items, expires_s)
                    if deliveries:
                        conn.exec_driver_sql(delete, params)
            except Exception as exc:  # the engine's driver errors, whatever the driver
                raise TransportError(describe(exc, self.params.display)) from exc
            if items:
                notify()

        return settle

    def reject(self, deliveries: Sequence[Delivery], reason: str) -> None:
        if not deliveries:
            return
        # Logged first: should we die before the delete, the message comes back, never vanishes.
        self.log_rejected(deliveries, reason)
        self._owned(q.DELETE_OWNED, deliveries)

    # -- queues --------------------------------------------------------------------------------
    def purge(self, queues: Sequence[str]) -> int:
        if not queues:
            return 0
        self._acks.flush()
        return int(self._pool.run(lambda c: c.execute(q.PURGE, (list(queues),)).rowcount))

    def queue_size(self, queue: str) -> int:
        self._acks.flush()
        return int(self._pool.run(lambda c: scalar(c, q.QUEUE_SIZE, {"queue": queue})))

    def oldest_age_s(self, queue: str) -> float | None:
        self._acks.flush()
        age = self._pool.run(lambda c: scalar(c, q.OLDEST_READY, {"queue": queue}))
        return None if age is None else max(float(age), 0.0)

    # -- broadcast -----------------------------------------------------------------------------
    def broadcast(self, channel_name: str, payload: bytes) -> None:
        notify = channel(self.params.namespace, "broadcast:" + channel_name)
        encoded = encode_broadcast(bytes(payload))
        if len(encoded.encode()) <= NOTIFY_MAX_BYTES:
            self._pool.run(lambda c: c.execute("SELECT pg_notify(%s, %s)", (notify, encoded)))
            return
        params = {"keep_s": BROADCAST_KEEP_S, "channel": channel_name,
                  "payload": bytes(payload), "notify": notify}
        self._pool.run(lambda c: c.execute(q.BROADCAST_LARGE, params))

    def subscribe(self, channel_name: str) -> Subscription:
        return _PostgresSubscription(self, channel_name)

    # -- crash recovery ------------------------------------------------------------------------
    def reclaim_node(
        self,
        hostname: str,
        queues: Sequence[str],
        node_announced: Callable[[], bool] | None = None,
    ) -> int:
        # Every queue: the owner column tells the node's rows wherever they are. Who is dead is
        # decided first; releasing then names those owners only, so a live holder's rows stay.
        prefix = node_prefix(hostname)
        self._acks.flush()
        owners = [
            owner for (owner,) in self._pool.run(
                lambda c: c.execute(q.RECLAIM_OWNERS, (len(prefix), prefix)).fetchall())
        ]
        dead = dead_holders(owners, hostname, node_announced)
        if not dead:
            return 0
        params = {"owners": dead, "ns": self.params.namespace}
        return int(self._pool.run(lambda c: scalar(c, q.RECLAIM, params)))

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        self._acks.close()
        for listener in list(self._listeners):
            listener.close()
        self._pool.close()


class _PostgresSubscription(Subscription):
    """LISTENs on its channel over a connection of its own; large payloads are read from
    ``celeriac_broadcasts`` by the id their notification carries."""

    def __init__(self, broker: PostgresBroker, channel_name: str) -> None:
        self._pool = broker._pool
        self._channel = channel(broker.params.namespace, "broadcast:" + channel_name)
        self._listener = Listener(broker._pool)
        self._listener.listen([self._channel])
        self._closed = False

    def _decode(self, payload: str) -> bytes | None:
        def stored(row_id: int) -> bytes | None:
            row = self._pool.run(lambda c: c.execute(
                "SELECT payload FROM celeriac_broadcasts WHERE id = %s", (row_id,)).fetchone())
            return None if row is None else bytes(row[0])  # trimmed: missed, as documented

        return decode_broadcast(payload, stored)

    def get(self, timeout_s: float) -> list[bytes]:
        if self._closed:
            return []
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            self._listener.listen([self._channel])
            payloads = self._listener.wait(max(deadline - time.monotonic(), 0.0))
            found = [p for p in map(self._decode, payloads or []) if p is not None]
            if found or time.monotonic() >= deadline:
                return found

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._listener.close()
