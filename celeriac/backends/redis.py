"""``redis://`` (``rediss://``, ``redis+socket://``, ``unix://``, ``sentinel://``) result backend,
key-compatible with Celery's: a record is the encoded result meta under
``celery-task-meta-<task id>`` (group records arrive already named ``celery-taskset-meta-<id>``),
expiring natively, and a ready record is also published on a channel of the same name.

Waiting never polls: a waiter subscribes to the record's channel and reads the key in the same
write, on one RESP3 connection per process read by the waiting threads themselves (see
:mod:`celeriac._redis.waiter`), so ``AsyncResult.get()`` wakes within a loopback round trip of
the store, in its own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from celeriac import states
from celeriac._redis.client import RedisConnection, WriteBehind
from celeriac._redis.waiter import Waiter
from celeriac._utils.pid import PROCESS
from celeriac._utils.redis_wire import SCHEMES
from celeriac.backends.base import ResultBackend
from celeriac.exceptions import TransportError

META_PREFIX = "celery-task-meta-"
GROUP_PREFIX = "celery-taskset-meta-"
STATE_PREFIX = "celeriac-task-state-"
_READY = frozenset(s.encode() for s in states.READY_STATES)
_READY_STATES = states.READY_STATES
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
    #: Celery's setting this backend reads (TLS options, as ``rediss://`` takes them)
    app_settings: tuple[str, ...] = ("redis_backend_use_ssl",)

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
        self._waiter: Waiter | None = None
        self._waiter_lock = threading.Lock()
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

    def confirm_behind(self) -> None:
        with self._errors:
            self._behind.flush()

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
        return _state_of(payload, side), payload

    def get_state(self, task_id: str) -> str | None:
        return self._record(task_id)[0]

    def _ready_payload(self, task_id: str) -> bytes | None:
        state, payload = self._record(task_id)
        return payload if state in states.READY_STATES else None

    def wait(self, task_id: str, timeout_s: float | None, interval_s: float = 0.05) -> bytes | None:
        if timeout_s is not None and timeout_s <= 0:
            return self._ready_payload(task_id)
        key = self.key_for(task_id)
        with self._errors:
            return self._get_waiter().wait(key.encode(), (key, self._state_key(task_id)),
                                           timeout_s)

    def _get_waiter(self) -> Waiter:
        waiter = self._waiter
        if waiter is not None and waiter.pid == PROCESS.pid:
            return waiter
        with self._waiter_lock:
            if self._waiter is None or self._waiter.pid != PROCESS.pid:
                # A forked child opens its own (the parent's socket is not the child's).
                self._waiter = Waiter(self._conn, _ready_record, _is_ready)
            return self._waiter

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
        with self._waiter_lock:
            waiter, self._waiter = self._waiter, None
        if waiter is not None and waiter.pid == PROCESS.pid:
            waiter.close()
        self._behind.close()
        self._conn.close()


def _state_of(payload: bytes | None, side: bytes | None) -> str | None:
    """The state of a record read as (record, side key): the record's own, else the side
    key's; None when there is no record."""
    if payload is None:
        return None
    state = payload_state(payload)
    if state is None and side is not None:
        state = side.decode()
    return state


def _ready_record(payload: bytes | None, side: bytes | None) -> bytes | None:
    """The record when (record, side key) says it is ready, else None."""
    return payload if payload is not None and _state_of(payload, side) in _READY_STATES else None


def _is_ready(payload: bytes) -> bool | None:
    """Whether a published record is ready; None when its state cannot be read from it."""
    state = payload_state(payload)
    if state is None:
        return None
    return state.encode() in _READY
