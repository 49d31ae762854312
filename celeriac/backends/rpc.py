"""``rpc://`` result backend: each result travels back to the process that sent the task, as an
AMQP message on that process's own reply queue (Celery's rpc backend, wire-compatible).

Rules:
- The connection is the broker's (``broker_url``, which the app passes in; a ``broker_url``
  in ``result_backend_transport_options`` wins). A broker that is not AMQP is refused with one
  ImproperlyConfigured line at first use.
- The caller's reply queue is named by a uuid (Celery's ``oid``), one per backend and process,
  declared before the first task is sent (:meth:`RPCBackend.reply_queue`, which the app sets
  as each message's ``reply_to``). It is exclusive to the caller's connection, so it goes away
  with the caller: results for a process that is gone never pile up. Unread results in it
  expire after ``result_expires``, and it holds at most ``rpc_cache_max`` (oldest dropped).
- The worker learns each task's ``reply_to`` from its message (:meth:`note_reply_to`) and
  publishes every record of the task (STARTED, RETRY, custom states, the result) through the
  default exchange to that queue, ``correlation_id`` = task id. A record for a task whose caller
  is unknown is dropped. A ``reply_to`` that is not a uuid is ignored, so a message cannot
  point results into another queue. Records are transient (``delivery_mode`` 1) and published
  without waiting; with ``result_persistent`` they are persistent and the worker waits for the
  broker's confirms (pipelined: one wait per batch).
- The caller keeps what arrives in a bounded cache (oldest dropped first), so a result can be
  read any number of times in that process, and results of other tasks that arrive while one
  is awaited wait there for their own ``get()``. A ready state is never replaced by a later
  non-ready one. ``forget`` drops the cached copy only.
- A message in the reply queue that is not a record (wrong content type, undecodable, not a
  mapping with a ``status``, a ``task_id`` other than its ``correlation_id``, larger than
  ``rpc_max_result_bytes``) is dropped with one log line; nothing in it is executed.
- No chord counter, no group save/restore: ``incr`` raises ImproperlyConfigured naming a
  backend that can hold one.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import amqp

from celeriac import serialization, states
from celeriac._amqp.connection import (
    CLIENT_ERRORS,
    SCHEMES,
    AmqpParams,
    close_quietly,
    open_connection,
    parse_url,
    translate,
    wait_until,
)
from celeriac._utils.pid import PROCESS
from celeriac.backends.base import ResultBackend
from celeriac.exceptions import ImproperlyConfigured, TransportError

logger = logging.getLogger("celeriac.backends.rpc")

NOT_STORED = (
    "The rpc:// result backend sends results to the caller only: it cannot count chord "
    "members nor save or restore groups (GroupResult.save/restore, a chord's header): use a "
    "backend that stores results (redis://, db+postgresql://, sqlite://...) for those"
)
_UUID = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}\Z")
_GROUP_PREFIX = "celery-taskset-meta-"
#: a correlation id longer than this is not a task id
_TASK_ID_MAX_CHARS = 255
#: longest wait for one socket read or write outside a drain (then the connection is dropped)
_IO_TIMEOUT_S = 30.0
#: slice of a wait spent holding the connection, so other threads' results are seen promptly
_DRAIN_SLICE_S = 0.2


def is_reply_queue(name: object) -> bool:
    """Whether ``name`` may be a caller's reply queue (a uuid, as Celery's ``oid``)."""
    return isinstance(name, str) and _UUID.match(name) is not None


class RPCBackend(ResultBackend):
    """Results sent back to the caller over AMQP; see the module doc for the rules."""

    schemes = ("rpc",)
    shared_across_processes = False
    replies_to_caller = True

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        opts = self.options
        self.broker_url = str(opts.get("broker_url") or "")
        serializer = str(opts.get("result_serializer") or "json")
        self.content_type = serialization.codec(serializer).content_type
        accept = opts.get("result_accept")
        self.accept = frozenset(accept) if accept else frozenset({self.content_type})
        self.persistent = bool(opts.get("result_persistent"))
        expires_s = opts.get("result_expires_s")
        self.expires_ms = int(float(expires_s) * 1000) if expires_s else None
        self.cache_max = int(opts.get("rpc_cache_max", 100_000))
        self.cache_max_bytes = int(opts.get("rpc_cache_max_bytes", 256 * 2**20))
        self.max_result_bytes = int(opts.get("rpc_max_result_bytes", 64 * 2**20))
        self.callers_max = int(opts.get("rpc_callers_max", 100_000))
        self.connect_timeout_s = float(opts.get("connect_timeout", 4.0))
        # One connection per process, used under this lock by every thread (py-amqp is not
        # thread-safe): the executor's flushes, tasks' update_state, callers' get().
        self._lock = threading.RLock()
        self._params: AmqpParams | None = None
        self._reset()

    def _reset(self) -> None:
        self._pid = PROCESS.pid
        self._conn: Any = None
        self._channel: Any = None
        self._queue = str(uuid.uuid4())
        self._declared = False
        self._consuming = False
        self._published = 0
        self._confirmed = 0
        self._nacked = False
        #: task id -> reply queue, learned from messages (worker side)
        self._callers: dict[str, str] = {}
        #: task id -> (state, payload), what arrived in the reply queue (caller side)
        self._records: dict[str, tuple[str, bytes]] = {}
        self._records_bytes = 0

    # -- connection ------------------------------------------------------------------------------
    def _check_fork(self) -> None:
        """Called before the lock is taken: a forked child must not touch the parent's socket
        nor read its reply queue, and must not wait on a lock a parent's thread held."""
        if self._pid != PROCESS.pid:
            self._lock = threading.RLock()
            self._reset()

    def _channel_now(self) -> Any:
        """The open channel, connecting first when needed (call with the lock held)."""
        self._check_fork()
        if self._channel is not None:
            return self._channel
        scheme = self.broker_url.partition("://")[0].lower()
        if scheme not in SCHEMES:
            raise ImproperlyConfigured(
                f"rpc:// sends results over an AMQP broker, and broker_url is "
                f"{scheme or 'unset'}://: use an amqp:// broker or another result backend"
            )
        if self._params is None:
            # A reply the server never sends (queue.declare-ok...) must not hang a caller.
            self._params = parse_url(self.broker_url, {
                "read_timeout": _IO_TIMEOUT_S, "write_timeout": _IO_TIMEOUT_S, **self.options})
        # No heartbeats: a caller idles between calls and cannot send them, and a missed one
        # would close the connection, and with it the caller's reply queue.
        conn = open_connection(self._params, connect_timeout_s=self.connect_timeout_s,
                               heartbeat_s=0)
        try:
            channel = conn.channel()
            channel.auto_decode = False  # bodies stay bytes, whatever they claim to be
            if self.persistent:
                channel.confirm_select()
                channel.events["basic_ack"].add(self._on_ack)
                channel.events["basic_nack"].add(self._on_nack)
        except CLIENT_ERRORS as exc:
            close_quietly(conn)
            raise translate(exc, self._params) from exc
        self._conn, self._channel = conn, channel
        self._published = self._confirmed = 0
        return channel

    def _drop_connection(self, polite: bool = False) -> None:
        """Forget the connection: closed politely (``close``), else its socket dropped (after
        an error, where a polite close could wait on a dead peer)."""
        conn, self._conn, self._channel = self._conn, None, None
        self._declared = self._consuming = False
        if conn is None:
            return
        if polite:
            close_quietly(conn)
            return
        with suppress(Exception):  # the socket is going away anyway
            conn.collect()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Client-library errors leave as TransportError naming the server (password masked),
        the connection dropped first."""
        try:
            yield
        except CLIENT_ERRORS as exc:
            self._drop_connection()
            assert self._params is not None
            raise translate(exc, self._params) from exc

    def close(self) -> None:
        self._check_fork()
        with self._lock:
            self._drop_connection(polite=True)

    # -- worker side -----------------------------------------------------------------------------
    def note_reply_to(self, task_id: str, reply_to: str) -> None:
        """Remember where ``task_id``'s records go (its message's ``reply_to``)."""
        if not is_reply_queue(reply_to):
            return
        callers = self._callers
        if len(callers) >= self.callers_max and task_id not in callers:
            # Tasks that store nothing (ignore_result) never free their entry: oldest first.
            try:
                del callers[next(iter(callers))]
            except (RuntimeError, StopIteration, KeyError):
                pass  # another thread changed it meanwhile: the bound holds at the next call
        callers[task_id] = reply_to

    def store(self, task_id: str, state: str, payload: bytes, expires_s: float | None) -> None:
        if task_id.startswith(_GROUP_PREFIX):  # GroupResult.save(), a chord being applied
            raise ImproperlyConfigured(NOT_STORED)
        self.store_many([(task_id, state, payload)], expires_s)

    def store_many(self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None) -> None:
        """Publish each record to its caller's reply queue, all in one go (see the module
        doc); records of tasks whose caller is unknown are dropped."""
        self._check_fork()
        callers = self._callers
        ready = states.READY_STATES
        outgoing: list[tuple[str, str, bytes]] = []
        for task_id, state, payload in items:
            if task_id.startswith(_GROUP_PREFIX):
                # A worker's batch (a chord another client sent): dropped, never raised into
                # the worker's flush; the chord's counting fails and says so.
                logger.error("rpc:// cannot save group %s: %s", task_id, NOT_STORED)
                continue
            reply_to = callers.pop(task_id, None) if state in ready else callers.get(task_id)
            if reply_to is not None:
                outgoing.append((reply_to, task_id, payload))
        if not outgoing:
            return
        delivery_mode = 2 if self.persistent else 1
        with self._lock:
            for attempt in (1, 2):
                channel = self._channel_now()
                try:
                    for reply_to, task_id, payload in outgoing:
                        channel.basic_publish(
                            amqp.Message(payload, content_type=self.content_type,
                                         content_encoding="utf-8", correlation_id=task_id,
                                         delivery_mode=delivery_mode),
                            exchange="", routing_key=reply_to)
                    if self.persistent:
                        self._published += len(outgoing)
                        self._wait_confirms()
                    return
                except CLIENT_ERRORS as exc:
                    self._drop_connection()
                    if attempt == 2:
                        assert self._params is not None
                        raise translate(exc, self._params) from exc
                    logger.warning("rpc:// lost its connection (%s); publishing again", exc)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._confirmed = max(self._confirmed, delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._confirmed = max(self._confirmed, delivery_tag)
        self._nacked = True

    def _wait_confirms(self, timeout_s: float = 30.0) -> None:
        wait_until(self._conn, lambda: self._confirmed >= self._published, timeout_s)
        if self._confirmed < self._published:
            raise TransportError("rpc:// results were not confirmed by the broker in time")
        if self._nacked:
            self._nacked = False
            raise TransportError("the broker refused (nacked) persistent rpc:// results")

    # -- caller side -----------------------------------------------------------------------------
    def reply_queue(self) -> str:
        """This process's reply queue, declared on first call (and again after a reconnect):
        the ``reply_to`` of every task it sends."""
        if self._declared and self._pid == PROCESS.pid:
            return self._queue
        self._check_fork()
        with self._lock:
            self._declare()
        return self._queue

    def _declare(self) -> Any:
        channel = self._channel_now()
        if not self._declared:
            # A sender that never reads (beat, fire-and-forget) keeps at most as many
            # results waiting as a reader would cache, each for result_expires at most.
            arguments: dict[str, Any] = {"x-max-length": self.cache_max}
            if self.expires_ms:
                arguments["x-message-ttl"] = self.expires_ms
            with self._translated():
                channel.queue_declare(self._queue, durable=False, exclusive=True,
                                      auto_delete=True, arguments=arguments)
            self._declared = True
        return channel

    def _drain(self, timeout_s: float) -> None:
        """Read what arrived in the reply queue; wait up to ``timeout_s`` for the first message
        (0: take only what is there). Call with the lock held."""
        channel = self._declare()
        if not self._consuming:
            with self._translated():
                channel.basic_consume(self._queue, no_ack=True, callback=self._on_message)
            self._consuming = True
        conn = self._conn
        try:
            conn.drain_events(timeout=timeout_s)
            while True:  # then everything already received, without waiting
                conn.drain_events(timeout=0)
        except TimeoutError:
            return
        except CLIENT_ERRORS as exc:
            self._drop_connection()
            assert self._params is not None
            raise translate(exc, self._params) from exc

    def _on_message(self, message: Any) -> None:
        """Keep a well-formed record that arrived; drop anything else (module doc)."""
        properties = message.properties
        task_id = properties.get("correlation_id")
        body = message.body
        if isinstance(body, str):
            body = body.encode()
        why = None
        state = None
        if not isinstance(task_id, str) or not 0 < len(task_id) <= _TASK_ID_MAX_CHARS:
            why = "no task id (correlation_id)"
        elif not isinstance(body, bytes) or len(body) > self.max_result_bytes:
            why = f"body over {self.max_result_bytes} bytes"
        elif properties.get("content_type") != self.content_type:
            why = f"content type {str(properties.get('content_type'))[:60]!r}"
        else:
            try:
                meta = serialization.loads(body, self.content_type, self.accept)
            except Exception as exc:
                meta, why = None, f"cannot decode: {str(exc)[:120]}"
            if meta is not None:
                status = meta.get("status") if isinstance(meta, dict) else None
                if not isinstance(status, str):
                    why = "not a result record"
                elif meta.get("task_id", task_id) != task_id:
                    why = "task_id differs from correlation_id"
                else:
                    state = status
        if state is None:
            logger.warning("rpc:// dropped a message in reply queue %s: %s", self._queue, why)
            return
        self._keep(task_id, state, body)

    def _keep(self, task_id: str, state: str, payload: bytes) -> None:
        records = self._records
        old = records.pop(task_id, None)
        if old is not None:
            self._records_bytes -= len(old[1])
            if old[0] in states.READY_STATES and state not in states.READY_STATES:
                state, payload = old  # a late STARTED/PROGRESS never hides the result
        records[task_id] = (state, payload)
        self._records_bytes += len(payload)
        while records and (len(records) > self.cache_max
                           or self._records_bytes > self.cache_max_bytes):
            oldest = next(iter(records))
            self._records_bytes -= len(records.pop(oldest)[1])

    def get(self, task_id: str) -> bytes | None:
        record = self._record(task_id)
        return None if record is None else record[1]

    def get_state(self, task_id: str) -> str | None:
        record = self._record(task_id)
        return None if record is None else record[0]

    def _record(self, task_id: str) -> tuple[str, bytes] | None:
        if task_id.startswith(_GROUP_PREFIX):
            raise ImproperlyConfigured(NOT_STORED)
        self._check_fork()
        with self._lock:
            if self._declared:
                self._drain(0)
            else:
                # Nothing sent from here since (re)connecting, so nothing can arrive: connect
                # only (a worker's readiness probe lands here) and declare nothing.
                self._channel_now()
            return self._records.get(task_id)

    def wait(self, task_id: str, timeout_s: float | None, interval_s: float = 0.05) -> bytes | None:
        """Read the reply queue until ``task_id``'s ready record is there; None when
        ``timeout_s`` passes first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        ready = states.READY_STATES
        self._check_fork()
        while True:
            with self._lock:
                record = self._records.get(task_id)
                if record is not None and record[0] in ready:
                    return record[1]
                remaining_s = _DRAIN_SLICE_S if deadline is None else min(
                    _DRAIN_SLICE_S, deadline - time.monotonic())
                if remaining_s <= 0:
                    return None
                self._drain(remaining_s)

    def forget(self, task_id: str) -> None:
        self._check_fork()
        with self._lock:
            old = self._records.pop(task_id, None)
            if old is not None:
                self._records_bytes -= len(old[1])

    def incr(self, key: str, amount: int, expires_s: float | None) -> int:
        raise ImproperlyConfigured(NOT_STORED)

    def cleanup(self) -> int:
        return 0
