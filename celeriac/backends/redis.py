"""``redis://`` (``rediss://``, ``redis+socket://``, ``unix://``, ``sentinel://``) result backend,
key-compatible with Celery's: a record is the encoded result meta under
``celery-task-meta-<task id>`` (group records arrive already named ``celery-taskset-meta-<id>``),
expiring natively, and a ready record is also published on a channel of the same name.

Waiting never polls: a waiter subscribes to the record's channel and only then reads the key (a
store between the two is seen by the read, one after it by the subscription). One pub/sub
connection per process serves every waiter, read by one listener thread (see
:class:`Listener`), so ``AsyncResult.get()`` wakes within a loopback round trip of the store.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import redis

from celeriac import states
from celeriac._redis.client import RedisConnection, WriteBehind, readable
from celeriac._utils.pid import PROCESS
from celeriac._utils.redis_wire import SCHEMES
from celeriac.backends.base import ResultBackend
from celeriac.exceptions import TransportError

META_PREFIX = "celery-task-meta-"
GROUP_PREFIX = "celery-taskset-meta-"
STATE_PREFIX = "celeriac-task-state-"
_READY = frozenset(s.encode() for s in states.READY_STATES)
# b'{"status":"SUCCESS"' etc.: how our JSON records start, so the state is read without a parse.
_JSON_HEAD = b'{"status":"'


def payload_state(payload: bytes) -> str | None:
    """The state a Celery JSON record names, or None when the payload is not one."""
    if payload.startswith(_JSON_HEAD):
        end = payload.find(b'"', len(_JSON_HEAD))
        if end > 0:
            return payload[len(_JSON_HEAD) : end].decode()
    if not payload.startswith(b"{"):
        return None
    try:
        meta = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    status = meta.get("status") if isinstance(meta, dict) else None
    return status if isinstance(status, str) else None


def _expiry_ms(expires_s: float | None) -> int:
    """PX milliseconds; 0 keeps the record (None or 0 mean no expiry, as in Celery)."""
    return max(1, int(expires_s * 1000)) if expires_s else 0


class RedisBackend(ResultBackend):
    schemes = SCHEMES

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        self._conn = RedisConnection(
            url,
            self.options,
            connection_error=TransportError,
            ssl_option_keys=("redis_backend_use_ssl", "broker_use_ssl", "ssl"),
        )
        self._errors = self._conn.errors
        self._meta_prefix = self._conn.key(META_PREFIX)
        self._state_prefix = self._conn.key(STATE_PREFIX)
        self._listener: Listener | None = None
        self._listener_lock = threading.Lock()
        #: the records ``store_many_behind`` sends without waiting (SETs are idempotent)
        self._behind = WriteBehind(self._conn)
        # The records' states whose JSON head needs no side key, by state.
        self._heads: dict[str, bytes] = {}

    # -- keys ----------------------------------------------------------------------------------
    def key_for(self, task_id: str) -> str:
        if task_id.startswith(GROUP_PREFIX):
            return self._conn.key(task_id)
        return self._meta_prefix + task_id

    def _state_key(self, task_id: str) -> str:
        return self._state_prefix + task_id

    def _head(self, state: str) -> bytes:
        head = self._heads.get(state)
        if head is None:
            head = self._heads[state] = _JSON_HEAD + state.encode() + b'"'
        return head

    # -- storing -------------------------------------------------------------------------------
    def store(self, task_id: str, state: str, payload: bytes, expires_s: float | None) -> None:
        self.store_many([(task_id, state, payload)], expires_s)

    def store_many(self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None) -> None:
        if not items:
            return
        keys, args = self.store_results_call(items, expires_s)
        with self._errors:
            self._conn.run("store_results", keys, args)

    def store_many_behind(
        self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None
    ) -> None:
        if not items:
            return
        with self._errors:
            self._behind.send(self.store_commands(items, expires_s))

    def store_commands(
        self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None
    ) -> list[tuple[Any, ...]]:
        """The plain commands that store ``items`` as ``store_results.lua`` does (SET each
        record, SET its side state key when the payload does not tell the state, PUBLISH it
        when ready), for a write-behind packet: a script call costs Redis several times the
        SET and PUBLISH it would run. Not atomic per record, which no reader needs: a waiter
        subscribes before it reads."""
        px = _expiry_ms(expires_s)
        ready = states.READY_STATES
        commands: list[tuple[Any, ...]] = []
        for task_id, state, payload in items:
            key = self.key_for(task_id)
            commands.append(("SET", key, payload, "PX", px) if px else ("SET", key, payload))
            if not payload.startswith(self._head(state)):
                side = self._state_key(task_id)
                commands.append(("SET", side, state, "PX", px) if px else ("SET", side, state))
            if state in ready:
                commands.append(("PUBLISH", key, payload))
        return commands

    def store_results_call(
        self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of the ``store_results.lua`` call that stores ``items``: a broker on
        the same Redis database runs it in one transaction with its acks (``settle_with``)."""
        keys: list[str] = []
        args: list[Any] = [_expiry_ms(expires_s)]
        ready = states.READY_STATES
        for task_id, state, payload in items:
            keys += (self.key_for(task_id), self._state_key(task_id))
            # Celery JSON records carry their state; any other payload gets a side key.
            side = "" if payload.startswith(self._head(state)) else state
            args += (payload, 1 if state in ready else 0, side)
        return keys, args

    @property
    def redis_server(self) -> tuple[Any, ...]:
        """Which Redis database the results live in (see ``RedisConnection.server``)."""
        return self._conn.server

    # -- reading -------------------------------------------------------------------------------
    def get(self, task_id: str) -> bytes | None:
        with self._errors:
            value: bytes | None = self._conn.client.execute_command("GET", self.key_for(task_id))
        return value

    def get_many(self, task_ids: Sequence[str]) -> list[bytes | None]:
        if not task_ids:
            return []
        with self._errors:
            values: list[bytes | None] = self._conn.client.execute_command(
                "MGET", *[self.key_for(t) for t in task_ids]
            )
        return values

    def _record(self, task_id: str) -> tuple[str | None, bytes | None]:
        """(state, payload) in one round trip."""
        with self._errors:
            payload, side = self._conn.client.execute_command(
                "MGET", self.key_for(task_id), self._state_key(task_id)
            )
        if payload is None:
            return None, None
        state = payload_state(payload)
        if state is None and side is not None:
            state = side.decode()
        return state, payload

    def get_state(self, task_id: str) -> str | None:
        return self._record(task_id)[0]

    def _ready_payload(self, task_id: str) -> bytes | None:
        state, payload = self._record(task_id)
        return payload if state in states.READY_STATES else None

    def wait(self, task_id: str, timeout_s: float | None, interval_s: float = 0.05) -> bytes | None:
        payload = self._ready_payload(task_id)
        if payload is not None or (timeout_s is not None and timeout_s <= 0):
            return payload
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        slot = self._get_listener().add(self.key_for(task_id).encode())
        try:
            return self._wait_on(slot, task_id, deadline)
        finally:
            slot.remove()

    def _wait_on(self, slot: Slot, task_id: str, deadline: float | None) -> bytes | None:
        while True:
            if not slot.subscribed.wait(_left(deadline)):
                return None
            payload = self._ready_payload(task_id)
            if payload is not None:
                return payload
            if not slot.woken.wait(_left(deadline)):
                return None
            if slot.payload is not None:
                return slot.payload
            # Woken without a payload: the listener reconnected (messages may have been
            # missed) or saw a record it could not read the state of; look again.
            slot.woken.clear()

    def _get_listener(self) -> Listener:
        listener = self._listener
        if listener is not None and listener.pid == PROCESS.pid:
            return listener
        with self._listener_lock:
            if self._listener is None or self._listener.pid != PROCESS.pid:
                # A forked child starts its own (the parent's thread does not exist here).
                self._listener = Listener(self._conn, _is_ready)
            return self._listener

    # -- deleting and counters -----------------------------------------------------------------
    def forget(self, task_id: str) -> None:
        with self._errors:
            self._conn.client.delete(self.key_for(task_id), self._state_key(task_id))

    def incr(self, key: str, amount: int, expires_s: float | None) -> int:
        name = self._conn.key(key)
        px = _expiry_ms(expires_s)
        with self._errors:
            pipe = self._conn.base.pipeline(transaction=True)
            pipe.incrby(name, amount)
            if px:
                pipe.pexpire(name, px)
            else:
                pipe.persist(name)
            value = pipe.execute()[0]
        return int(value)

    def delete_counter(self, key: str) -> None:
        with self._errors:
            self._conn.client.delete(self._conn.key(key))

    def cleanup(self) -> int:
        # Redis expires records itself.
        return 0

    def close(self) -> None:
        with self._listener_lock:
            listener, self._listener = self._listener, None
        if listener is not None and listener.pid == PROCESS.pid:
            listener.close()
        self._behind.close()
        self._conn.close()


def _is_ready(payload: bytes) -> bool | None:
    """Whether a published record is ready; None when its state cannot be read from it."""
    state = payload_state(payload)
    if state is None:
        return None
    return state.encode() in _READY


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


class _Channel:
    """The waiters of one channel and whether the server confirmed our subscription."""

    __slots__ = ("slots", "subscribed")

    def __init__(self) -> None:
        self.slots: set[Slot] = set()
        self.subscribed = threading.Event()


class Slot:
    """One waiter's mailbox: ``woken`` is set with ``payload`` (a ready record) or without it
    (look again: a reconnect may have lost messages)."""

    __slots__ = ("_listener", "channel", "payload", "subscribed", "woken")

    def __init__(self, listener: Listener, channel: bytes, subscribed: threading.Event) -> None:
        self._listener = listener
        self.channel = channel
        self.subscribed = subscribed
        self.woken = threading.Event()
        self.payload: bytes | None = None

    def remove(self) -> None:
        self._listener.remove(self)


class Listener:
    """One pub/sub connection per process and the thread that reads it.

    Waiters never touch the socket: they register a slot and nudge the thread through a pipe;
    the thread sends SUBSCRIBE/UNSUBSCRIBE, confirms subscriptions, and hands published records
    to the slots. After a lost connection it reconnects with backoff, subscribes again and wakes
    every waiter to read its key once more, since a store may have happened meanwhile.
    """

    def __init__(self, conn: RedisConnection, is_ready: Callable[[bytes], bool | None]) -> None:
        self.pid = PROCESS.pid
        self._conn = conn
        self._is_ready = is_ready
        self._lock = threading.Lock()
        self._channels: dict[bytes, _Channel] = {}
        self._dirty: set[bytes] = set()
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # Owned by the thread: the connection, what the server has been asked to send us,
        # and subscribe confirmations still to come per channel.
        self._connection: Any = None
        self._pool: Any = None
        self._on_server: set[bytes] = set()
        self._awaiting: dict[bytes, int] = {}
        self._thread = threading.Thread(
            target=self._run, name="celeriac-result-listener", daemon=True
        )
        self._thread.start()

    def add(self, channel: bytes) -> Slot:
        with self._lock:
            entry = self._channels.get(channel)
            fresh = entry is None
            if entry is None:
                entry = self._channels[channel] = _Channel()
                self._dirty.add(channel)
            slot = Slot(self, channel, entry.subscribed)
            entry.slots.add(slot)
        if fresh:
            self._wake()
        return slot

    def remove(self, slot: Slot) -> None:
        with self._lock:
            entry = self._channels.get(slot.channel)
            if entry is None or slot not in entry.slots:
                return
            entry.slots.discard(slot)
            if entry.slots:
                return
            del self._channels[slot.channel]
            self._dirty.add(slot.channel)
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # a full pipe wakes the thread just as well; a closed one means shut down

    def close(self) -> None:
        self._closed = True
        self._wake()
        self._thread.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        delay_s = 0.05
        while not self._closed:
            try:
                self._step()
                delay_s = 0.05
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                if self._closed:
                    break
                self._lost()
                if readable(self._wake_r, delay_s):
                    self._drain_wakes()  # new waiters are served once reconnected
                delay_s = min(delay_s * 2, 2.0)
        if self._connection is not None:
            self._connection.disconnect()
            self._pool.release(self._connection)

    def _step(self) -> None:
        conn = self._connection
        if conn is None:
            self._pool = self._conn.base.connection_pool
            conn = self._connection = self._pool.get_connection()
        elif conn._sock is None:
            conn.connect()
        self._sync(conn)
        poller = select.poll()
        poller.register(conn._sock.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        events = poller.poll()
        if any(fd == self._wake_r for fd, _ in events):
            self._drain_wakes()
        while not self._closed and conn.can_read(timeout=0):
            self._handle(conn.read_response())

    def _drain_wakes(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _sync(self, conn: Any) -> None:
        """Bring the server's subscriptions in line with the registered channels."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            wanted = {ch: self._channels.get(ch) for ch in dirty}
        subscribe, unsubscribe = [], []
        for channel, entry in wanted.items():
            if entry is not None and channel not in self._on_server:
                subscribe.append(channel)
                self._on_server.add(channel)
                self._awaiting[channel] = self._awaiting.get(channel, 0) + 1
            elif entry is not None and not self._awaiting.get(channel):
                entry.subscribed.set()  # re-registered while still subscribed
            elif entry is None and channel in self._on_server:
                unsubscribe.append(channel)
                self._on_server.discard(channel)
        if subscribe:
            conn.send_command("SUBSCRIBE", *subscribe, check_health=False)
        if unsubscribe:
            conn.send_command("UNSUBSCRIBE", *unsubscribe, check_health=False)

    def _handle(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return
        kind, channel = reply[0], reply[1]
        if kind == b"subscribe":
            left = self._awaiting.get(channel, 1) - 1
            if left > 0:
                self._awaiting[channel] = left
                return
            self._awaiting.pop(channel, None)
            with self._lock:
                entry = self._channels.get(channel)
                if entry is not None and channel in self._on_server:
                    entry.subscribed.set()
        elif kind == b"message":
            with self._lock:
                entry = self._channels.get(channel)
                slots = list(entry.slots) if entry is not None else []
            if not slots:
                return
            ready = self._is_ready(reply[2])
            if ready is False:
                return
            for slot in slots:
                if ready:
                    slot.payload = reply[2]
                slot.woken.set()

    def _lost(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
        self._on_server.clear()
        self._awaiting.clear()
        with self._lock:
            self._dirty.update(self._channels)
            for entry in self._channels.values():
                entry.subscribed.clear()
                for slot in entry.slots:
                    slot.woken.set()
