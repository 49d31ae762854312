"""``redis://`` (and ``rediss://``, ``redis+socket://``, ``unix://``, ``sentinel://``): a broker on
Redis Streams. The design and the full key layout are in docs/decisions/0005-redis-design.md.

In short: each queue has one stream per priority step (ten by default, 9 first) read through one
consumer group, plus a sorted set of scheduled (eta) messages. A claim is one Lua script
(consume.lua) that promotes due scheduled messages, reclaims entries whose lease lapsed and
reads new entries highest priority first; only when it finds nothing does the consumer block in
XREADGROUP, for at most ``polling_interval`` so scheduled messages published elsewhere are not
missed. A lease is the idle time of a pending entry: ``renew`` resets it, and an entry idle for
longer than the lease is taken over by whichever consumer reclaims next.

Broadcasts are Redis pub/sub on ``<p>celeriac:bcast:<channel>``: fire and forget, each
subscription on a connection of its own.

Revokes, presence, dedup keys and the rejected log are the Redis coordination store's
(:mod:`celeriac.coordination.redis`), by default in this same database. Two of its keys are
also written here, atomically with a message: ``publish_once.lua`` takes
``celeriac:once:<key>``, and ``consume.lua`` logs a malformed scheduled message on
``celeriac:rejected`` as it drops it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import redis

from celeriac._redis.client import RedisConnection, WriteBehind
from celeriac._utils.pid import PROCESS
from celeriac._utils.redis_wire import SCHEMES, frame, priority_steps
from celeriac._utils.stored import StoredParts, envelope_bytes
from celeriac.brokers.base import (
    Broker,
    Capabilities,
    Settler,
    Subscription,
    dead_holders,
    node_prefix,
)
from celeriac.brokers.redis_direct import Direct
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured
from celeriac.message import Delivery, Envelope
from celeriac.protocol import REJECTED_BODY_MAX_BYTES, open_stored

GROUP = "celeriac"
# Rejected-message records kept on the list consume.lua logs to (as the coordination store does).
MAX_REJECTED = 10_000
# A claim larger than this is split: Lua's unpack() has a stack limit of a few thousand values.
MAX_BATCH = 1_000
# Consumers that hold nothing and were idle this long are removed from the group (crashed
# workers would otherwise pile up in XINFO CONSUMERS).
STALE_CONSUMER_MS = 3_600_000
_PUBLISH_CHUNK = 5_000


def _fields(env: Envelope) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """h, p, b, t, e: the stream entry's values (see consume.lua)."""
    return envelope_bytes(env)


class _Plan:
    """The keys one ``consume(queues)`` works on, computed once per queue list."""

    __slots__ = ("block_args", "keys", "owners", "queues", "streams")

    def __init__(self, broker: RedisBroker, queues: Sequence[str]) -> None:
        self.queues = list(queues)
        #: consume.lua's KEYS: per queue its eta zset and streams, then the rejected list
        self.keys: list[str] = []
        #: KEYS index (1-based, as Lua reports it) -> (queue, stream key as bytes)
        self.owners: dict[int, tuple[str, bytes]] = {}
        for queue in queues:
            self.keys.append(broker.eta_key(queue))
            for step in broker.steps_desc:
                key = broker.stream_key(queue, step)
                self.keys.append(key)
                self.owners[len(self.keys)] = (queue, key.encode())
        self.keys.append(broker.rejected_key())
        #: stream key -> queue, and the streams in claim order, for the blocking read
        self.streams = {
            key: queue
            for step in broker.steps_desc
            for queue in queues
            for key in [broker.stream_key(queue, step)]
        }
        self.block_args = [*self.streams, *([">"] * len(self.streams))]


class RedisBroker(Broker):
    schemes = SCHEMES
    capabilities = Capabilities(
        native_delays=True, leases=True, priorities=True, broadcast=True, atomic_publish_once=True,
        stored_publish=True,
    )
    #: Celery's setting this broker reads (TLS options, as ``rediss://`` takes them)
    app_settings: tuple[str, ...] = ("broker_use_ssl",)

    def __init__(self, url: str, *, transport_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, transport_options=transport_options)
        self._conn = RedisConnection(
            url,
            self.transport_options,
            connection_error=BrokerConnectionError,
            ssl_option_keys=("broker_use_ssl", "ssl"),
            raw_replies=("XREADGROUP",),
        )
        options = self._conn.options
        self.lease_s = float(options.get("visibility_timeout", self.lease_s))
        self._lease_ms = max(1, int(self.lease_s * 1000))
        # The longest single blocking read: bounds how late a scheduled message published by
        # another process (which wakes nobody) is seen.
        self.polling_interval_s = max(float(options.get("polling_interval") or 0.1), 0.001)
        if options.get("socket_timeout"):
            # A blocking read must end well before the socket gives up on the reply.
            self.polling_interval_s = min(self.polling_interval_s, options["socket_timeout"] / 2)
        # How often a claim also takes over lapsed leases: at most a second late, so a dead
        # worker's messages are back about one lease after its last heartbeat.
        self._reclaim_every_s = min(max(self.lease_s / 2, 0.01), 1.0)
        try:
            steps = priority_steps(options.get("priority_steps"))
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"Bad priority_steps: {exc}") from exc
        self.steps_desc = tuple(reversed(steps))
        # priority p -> its step's index in steps_desc, as the digit string consume.lua reads
        self._step_of = [max(s for s in steps if s <= p) for p in range(10)]
        self._pmap = "".join(str(self.steps_desc.index(s)) for s in self._step_of)
        self._plans: dict[tuple[str, ...], _Plan] = {}
        self._stream_keys: dict[tuple[str, int], str] = {}
        self._next_reclaim = 0.0
        self._consumer_pid = 0
        self._consumer_name = ""
        self._errors = self._conn.errors
        self._acks = WriteBehind(self._conn)
        self._direct = Direct(self._conn)

    # -- keys ----------------------------------------------------------------------------------
    def stream_key(self, queue: str, step: int) -> str:
        return self._conn.key(f"celeriac:q:{queue}:{step}")

    def eta_key(self, queue: str) -> str:
        return self._conn.key(f"celeriac:eta:{queue}")

    def rejected_key(self) -> str:
        return self._conn.key("celeriac:rejected")

    def _stream_for(self, queue: str, priority: int) -> str:
        step = self._step_of[min(max(priority, 0), 9)]
        key = self._stream_keys.get((queue, step))
        if key is None:
            key = self._stream_keys[(queue, step)] = self.stream_key(queue, step)
        return key

    @property
    def consumer(self) -> str:
        # node|machine|pid|token (brokers.base.consumer_name), unique per process: a forked
        # child must not share (and renew) its parent's entries.
        pid = PROCESS.pid
        if pid != self._consumer_pid:
            self._consumer_pid = pid
            self._consumer_name = self.consumer_name()
        return self._consumer_name

    # -- producing -----------------------------------------------------------------------------
    def _command(self, queue: str, env: Envelope, now: float) -> tuple[Any, ...]:
        """The XADD (due now) or ZADD (scheduled) that stores ``env``."""
        priority = env.priority
        fields = _fields(env)
        if env.has_eta:
            eta = env.eta_timestamp()
            if eta is not None and eta > now:
                digit = str(min(max(priority, 0), 9)).encode()
                member = digit + os.urandom(8) + frame(fields)
                return ("ZADD", self.eta_key(queue), repr(eta), member)
        h, p, b, t, e = fields
        stream = self._stream_for(queue, priority)
        return ("XADD", stream, "*", "h", h, "p", p, "b", b, "t", t, "e", e)

    def publish(self, queue: str, envelope: Envelope) -> None:
        command = self._command(queue, envelope, time.time())
        with self._errors:
            self._direct.call(command)

    def publish_many(self, items: Iterable[tuple[str, Envelope]]) -> None:
        now = time.time()
        commands = [self._command(queue, env, now) for queue, env in items]
        if not commands:
            return
        with self._errors:
            for start in range(0, len(commands), _PUBLISH_CHUNK):
                self._direct.call_many(commands[start : start + _PUBLISH_CHUNK])

    def publish_stored(
        self, queue: str, priority: int, task_ids: Sequence[str], entries: Sequence[StoredParts],
        *, wait: bool = True,
    ) -> None:
        stream = self._stream_for(queue, priority)
        commands = [("XADD", stream, "*", "h", h, "p", p, "b", b, "t", t, "e", e)
                    for h, p, b, t, e in entries]
        with self._errors:
            # Written now; the replies are read when the next batch is written (Redis stores
            # this one meanwhile) or on confirm.
            for start in range(0, len(commands), _PUBLISH_CHUNK):
                self._direct.send(commands[start : start + _PUBLISH_CHUNK])
            if wait:
                self._direct.confirm()

    def confirm_published(self) -> None:
        with self._errors:
            self._direct.confirm()

    def publish_once(self, queue: str, envelope: Envelope, key: str, ttl_s: float) -> bool:
        command = self._command(queue, envelope, time.time())
        kind = "stream" if command[0] == "XADD" else "eta"
        args = [max(1, int(ttl_s * 1000)), kind, *command[3 if kind == "stream" else 2 :]]
        keys = [self._conn.key(f"celeriac:once:{key}"), command[1]]
        with self._errors:
            return bool(self._conn.run("publish_once", keys, args))

    # -- consuming -----------------------------------------------------------------------------
    def _plan(self, queues: Sequence[str]) -> _Plan:
        names = tuple(dict.fromkeys(queues))
        plan = self._plans.get(names)
        if plan is None:
            plan = self._plans[names] = _Plan(self, names)
        return plan

    def consume(self, queues: Sequence[str], max_messages: int, timeout_s: float) -> list[Delivery]:
        if not queues or max_messages <= 0:
            return []
        plan = self._plan(queues)
        count = min(max_messages, MAX_BATCH)
        deadline = time.monotonic() + max(timeout_s, 0.0)
        with self._errors:
            # Replies to acks already in are read, none waited for: a claim needs no ack
            # confirmed (its own messages cannot come back before their lease lapses).
            self._acks.read_ready()
            while True:
                deliveries, next_eta = self._claim(plan, count)
                if deliveries:
                    return deliveries
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                wait_s = min(remaining, self.polling_interval_s)
                wait_s = min(wait_s, self._next_reclaim - time.monotonic())
                if next_eta is not None:
                    wait_s = min(wait_s, next_eta - time.time())
                if wait_s >= 0.001:
                    deliveries = self._block(plan, count, wait_s)
                    if deliveries:
                        return deliveries
                elif wait_s > 0:
                    time.sleep(wait_s)

    def _claim(self, plan: _Plan, count: int) -> tuple[list[Delivery], float | None]:
        now = time.monotonic()
        reclaim = now >= self._next_reclaim
        if reclaim:
            self._next_reclaim = now + self._reclaim_every_s
        nqueues, nsteps = len(plan.queues), len(self.steps_desc)
        args: list[Any] = [GROUP, self.consumer, count, repr(time.time()), int(reclaim)]
        args += (self._lease_ms, nqueues, nsteps, self._pmap, STALE_CONSUMER_MS)
        args += (MAX_REJECTED, REJECTED_BODY_MAX_BYTES, *plan.queues)
        reply = self._conn.run("consume", plan.keys, args)
        next_eta = float(reply[0]) if reply[0] is not None else None
        deliveries: list[Delivery] = []
        for batch in reply[1:]:
            queue, stream = plan.owners[batch[0]]
            entries = batch[1]
            if len(batch) > 2:  # reclaimed, with their delivery counts
                deliveries += [
                    _delivery(queue, stream, entry_id, delivered, fields)
                    for (entry_id, fields), delivered in zip(entries, batch[2], strict=True)
                ]
            else:
                deliveries += [
                    _delivery(queue, stream, entry_id, 1, fields) for entry_id, fields in entries
                ]
        return deliveries, next_eta

    def _block(self, plan: _Plan, count: int, wait_s: float) -> list[Delivery]:
        """Wait in XREADGROUP for a new entry on any of the plan's streams (never longer than
        ``wait_s``: BLOCK rounds down, and 0 would mean forever)."""
        block_ms = max(1, int(wait_s * 1000))
        try:
            reply = self._conn.client.execute_command(
                "XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", count,
                "BLOCK", block_ms, "STREAMS", *plan.block_args,
            )  # fmt: skip
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc):
                # The stream or group vanished (a restart, a purge, a flush) before or while we
                # waited: the next claim script recreates them.
                return []
            raise
        deliveries = [
            _delivery(plan.streams[key.decode()], key, entry_id, 1, fields)
            for key, entries in reply or ()
            for entry_id, fields in entries
            if fields
        ]
        if len(deliveries) > count:
            # Redis serves a woken read from one stream, so this is only a safety net: give back
            # what exceeds the asked count, as never delivered (n=0).
            extra = deliveries[count:]
            for d in extra:
                d.delivery_count = 0
            self.requeue(extra)
            del deliveries[count:]
        return deliveries

    def _settle_command(self, deliveries: Sequence[Delivery]) -> tuple[Any, ...]:
        """The ack.lua call that acks and deletes ``deliveries`` if this consumer still owns
        them (never a message requeued or reclaimed by another consumer meanwhile)."""
        keys = [d.tag[0] for d in deliveries]
        return (self._acks.script_sha("ack"), len(keys), *keys, GROUP, self.consumer,
                *(d.tag[1] for d in deliveries))

    def settle_with(self, backend: object) -> Settler | None:
        """Store results and ack in ONE transaction (MULTI/EXEC) when ``backend`` keeps its
        results in this broker's Redis database: a worker killed mid-settle then leaves
        neither, so its acks_late task runs again without a stored result, never with one.
        Without results to store the ack stays write-behind; without acks, a plain store."""
        # Duck-typed (brokers never import backends): the Redis result backend says where its
        # results live (``redis_server``) and lends the KEYS/ARGV of its store script.
        server = getattr(backend, "redis_server", None)
        store_call = getattr(backend, "store_results_call", None)
        store_many = getattr(backend, "store_many", None)
        if server is None or store_call is None or store_many is None:
            return None
        if server != self._conn.server:
            return None
        store_sha = self._acks.script_sha("store_results")

        def settle(
            items: Sequence[tuple[str, str, bytes]],
            expires_s: float | None,
            deliveries: Sequence[Delivery],
        ) -> None:
            if not items:
                self.ack(deliveries)
                return
            if not deliveries:
                store_many(items, expires_s)
                return
            keys, args = store_call(items, expires_s)
            ack = self._settle_command(deliveries)
            with self._errors:
                pipe = self._conn.base.pipeline(transaction=True)
                pipe.execute_command("EVALSHA", store_sha, len(keys), *keys, *args)
                pipe.execute_command("EVALSHA", *ack)
                replies = pipe.execute(raise_on_error=False)
            if any(isinstance(r, redis.ResponseError) for r in replies):
                # NOSCRIPT after a Redis restart (or SCRIPT FLUSH): each part on its own,
                # which loads the scripts again; both parts are idempotent.
                store_many(items, expires_s)
                self.ack(deliveries)
                with self._errors:
                    self._acks.flush()

        return settle

    def settle_behind_with(self, backend: object) -> Settler | None:
        """Records and early acks in one write-behind packet (see ``settle_with`` for how the
        backend is recognised): one send, no wait, when results and queues share a database."""
        server = getattr(backend, "redis_server", None)
        store_commands = getattr(backend, "store_commands", None)
        if server is None or store_commands is None or server != self._conn.server:
            return None

        def settle_behind(
            items: Sequence[tuple[str, str, bytes]],
            expires_s: float | None,
            deliveries: Sequence[Delivery],
        ) -> None:
            commands: list[tuple[Any, ...]] = store_commands(items, expires_s) if items else []
            if deliveries:
                commands.append(("EVALSHA", *self._settle_command(deliveries)))
            if commands:
                with self._errors:
                    self._acks.send(commands)

        return settle_behind

    def confirm_behind(self) -> None:
        with self._errors:
            self._acks.flush()

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        command = self._settle_command(deliveries)
        with self._errors:
            self._acks.send([("EVALSHA", *command)])

    def requeue(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        keys = [d.tag[0] for d in deliveries]
        args: list[Any] = [GROUP, self.consumer]
        for d in deliveries:
            args += (d.tag[1], d.delivery_count)
        with self._errors:
            self._acks.flush()
            self._conn.run("requeue", keys, args)

    def renew(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        keys = [d.tag[0] for d in deliveries]
        args = [GROUP, self.consumer, *(d.tag[1] for d in deliveries)]
        with self._errors:
            self._conn.run("renew", keys, args)

    def reject(self, deliveries: Sequence[Delivery], reason: str) -> None:
        if not deliveries:
            return
        # Logged first: should we die before the ack, a message comes back, never vanishes.
        self.log_rejected(deliveries, reason)
        with self._errors:
            self._acks.send([("EVALSHA", *self._settle_command(deliveries))])
            self._acks.flush()

    # -- queues --------------------------------------------------------------------------------
    def _queue_keys(self, queue: str) -> list[str]:
        return [self.eta_key(queue), *(self.stream_key(queue, s) for s in self.steps_desc)]

    def purge(self, queues: Sequence[str]) -> int:
        if not queues:
            return 0
        keys = [key for queue in dict.fromkeys(queues) for key in self._queue_keys(queue)]
        with self._errors:
            self._acks.flush()
            return int(self._conn.run("purge", keys, [GROUP]))

    def queue_size(self, queue: str) -> int:
        with self._errors:
            self._acks.flush()
            return int(self._conn.run("queue_size", self._queue_keys(queue), [GROUP]))

    def oldest_age_s(self, queue: str) -> float | None:
        # A stream entry id starts with its creation time in ms; the oldest ready entry of a
        # stream is the first one after the group's last delivered id (requeue adds a new one).
        streams = [self.stream_key(queue, step) for step in self.steps_desc]
        with self._errors:
            self._acks.flush()
            pipe = self._conn.base.pipeline(transaction=False)
            for stream in streams:
                pipe.execute_command("XINFO", "GROUPS", stream)
            groups = pipe.execute(raise_on_error=False)
            pipe = self._conn.base.pipeline(transaction=False)
            for stream, infos in zip(streams, groups, strict=True):
                last = "0-0"
                if isinstance(infos, list):
                    for info in infos:
                        if _name(info) == GROUP:
                            last = _last_delivered(info)
                pipe.execute_command("XRANGE", stream, f"({last}", "+", "COUNT", 1)
            heads = pipe.execute(raise_on_error=False)
        born_ms = [_entry_ms(head[0][0]) for head in heads if isinstance(head, list) and head]
        if not born_ms:
            return None
        return max(time.time() - min(born_ms) / 1000.0, 0.0)

    # -- broadcast -----------------------------------------------------------------------------
    def _channel(self, channel: str) -> str:
        return self._conn.key(f"celeriac:bcast:{channel}")

    def broadcast(self, channel: str, payload: bytes) -> None:
        with self._errors:
            self._conn.client.execute_command("PUBLISH", self._channel(channel), bytes(payload))

    def subscribe(self, channel: str) -> Subscription:
        with self._errors:
            return _RedisSubscription(self, self._channel(channel))

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        self._acks.close()
        self._direct.close()
        self._conn.close()

    # -- crash recovery ------------------------------------------------------------------------
    def bind_node(self, hostname: str) -> None:
        super().bind_node(hostname)
        self._consumer_pid = 0  # name the consumer again

    def reclaim_node(
        self,
        hostname: str,
        queues: Sequence[str],
        node_announced: Callable[[], bool] | None = None,
    ) -> int:
        # Consumers live per stream, so only the given queues' streams are searched. Listing
        # the node's consumers, deciding which are dead (needs this machine's process table)
        # and giving their entries back are separate steps; requeue.lua touches only entries
        # the dead consumer still owns, so a lease taken over meanwhile stays with its new owner.
        streams = [
            self.stream_key(queue, step) for queue in dict.fromkeys(queues)
            for step in self.steps_desc
        ]
        if not streams:
            return 0
        with self._errors:
            self._acks.flush()
            found = self._conn.run("node_consumers", streams, [GROUP, node_prefix(hostname)])
            held = [(streams[int(i) - 1], name.decode()) for i, name in zip(
                found[::2], found[1::2], strict=True
            )]
            dead = set(dead_holders({n for _, n in held}, hostname, node_announced))
            return sum(self._give_back(key, name) for key, name in held if name in dead)

    def _give_back(self, stream: str, consumer: str) -> int:
        """Requeue every entry ``consumer`` holds on ``stream``, keeping delivery counts."""
        given = 0
        while True:
            pending = self._conn.client.xpending_range(
                stream, GROUP, min="-", max="+", count=MAX_BATCH, consumername=consumer
            )
            if not pending:
                return given
            args: list[Any] = [GROUP, consumer]
            for entry in pending:
                args += (entry["message_id"], f"+{int(entry['times_delivered'])}")
            given += int(self._conn.run("requeue", [stream] * len(pending), args))


_REQUIRED_FIELDS = (b"h", b"p", b"b", b"t", b"e")


def _delivery(queue: str, stream: bytes, entry_id: bytes, delivered: int, fields: Any) -> Delivery:
    """The delivery of one stream entry, whose flat field list is read by field NAME: h, p, b,
    t, e (see consume.lua) and the optional n (earlier deliveries, added by requeue), in any
    order. An entry lacking a field, or whose parts do not decode (protocol.open_stored), is
    delivered as malformed, never raised."""
    if (
        type(fields) is list
        and len(fields) in (10, 12)
        and fields[0] == b"h" and fields[2] == b"p" and fields[4] == b"b"
        and fields[6] == b"t" and fields[8] == b"e"
        and (len(fields) == 10 or fields[10] == b"n")
    ):  # fmt: skip
        # The order publish writes: no dict needed.
        parts = (fields[1], fields[3], fields[5], fields[7], fields[9])
        earlier = fields[11] if len(fields) == 12 else None
        missing: list[str] = []
    else:
        named = dict(zip(fields[::2], fields[1::2], strict=False)) if type(fields) is list else {}
        parts = tuple(named.get(name, b"") for name in _REQUIRED_FIELDS)
        earlier = named.get(b"n")
        missing = [name.decode() for name in _REQUIRED_FIELDS if name not in named]
    if earlier is not None:
        try:
            delivered += max(int(earlier), 0)
        except (TypeError, ValueError):
            pass  # only the redelivery count suffers
    envelope, problem = open_stored(*parts)
    if missing:
        lacking = f"stream entry is missing field(s) {', '.join(missing)}"
        problem = f"{lacking}; {problem}" if problem else lacking
    return Delivery(envelope, queue, (stream, entry_id), delivered > 1, delivered, problem)



def _name(info: Any) -> str | None:
    """The ``name`` of one XINFO GROUPS reply entry (a flat list, or a dict from redis-py)."""
    if isinstance(info, dict):
        value = info.get("name", info.get(b"name"))
    else:
        named = dict(zip(info[::2], info[1::2], strict=False))
        value = named.get(b"name", named.get("name"))
    return value.decode() if isinstance(value, bytes) else value


def _entry_ms(entry_id: Any) -> int:
    """The creation time (ms since the epoch) a stream entry id starts with."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.partition("-")[0])


def _last_delivered(info: Any) -> str:
    if isinstance(info, dict):
        value = info.get("last-delivered-id", info.get(b"last-delivered-id", "0-0"))
    else:
        named = dict(zip(info[::2], info[1::2], strict=False))
        value = named.get(b"last-delivered-id", named.get("last-delivered-id", "0-0"))
    return value.decode() if isinstance(value, bytes) else str(value)


class _RedisSubscription(Subscription):
    """A pub/sub connection of its own, subscribed (and confirmed) before it is returned."""

    def __init__(self, broker: RedisBroker, channel: str) -> None:
        self._errors = broker._errors
        self._pubsub = broker._conn.base.pubsub()
        self._pubsub.subscribe(channel)
        # Wait for the confirmation: a broadcast after subscribe() returns must arrive.
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            message = self._pubsub.get_message(timeout=0.1)
            if message is not None and message["type"] == "subscribe":
                break
        else:
            self._pubsub.close()
            raise BrokerConnectionError(f"Redis did not confirm SUBSCRIBE {channel}")
        self._closed = False

    def get(self, timeout_s: float) -> list[bytes]:
        if self._closed:
            return []
        out: list[bytes] = []
        deadline = time.monotonic() + max(timeout_s, 0.0)
        with self._errors:
            while True:
                wait_s = 0.0 if out else max(deadline - time.monotonic(), 0.0)
                message = self._pubsub.get_message(timeout=wait_s)
                if message is None:
                    if out or time.monotonic() >= deadline:
                        return out
                    continue
                if message["type"] == "message":
                    out.append(bytes(message["data"]))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pubsub.close()
