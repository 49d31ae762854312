"""Write-behind acks for the PostgreSQL broker: a DELETE sent at once, its reply read later.

An ack has left the process when :meth:`WriteBehind.send` returns (libpq has written the
statement to the socket, so a worker killed by its next task does not get the acked message
back), but the caller does not wait a round trip for the reply. The connection is in libpq's
pipeline mode with a Sync after each statement, so each ack is its own transaction; replies are
read by :meth:`WriteBehind.flush`, which the broker calls before any other operation so its
callers see acks as done. If the connection breaks with replies outstanding, those statements
are sent again on a fresh connection: deleting rows this consumer owns is idempotent. A
statement the server refuses is logged (the message then comes back once its lease lapses).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import weakref
from collections import deque
from typing import Any

import psycopg
from psycopg import pq

from celeriac._postgres.conn import Pool, connect, describe, neuter
from celeriac._utils.pid import PROCESS

logger = logging.getLogger("celeriac.postgres")

_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
#: seconds to wait for an outstanding reply before the connection is given up and the
#: statements are sent again on a new one
REPLY_TIMEOUT_S = 30.0


def _readable(fd: int, timeout_s: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(timeout_s * 1000))


class WriteBehind:
    """One connection of its own, thread-safe; statements with text parameters."""

    def __init__(self, pool: Pool, *, synchronous_commit: bool, max_unread: int = 1024) -> None:
        self._pool = pool
        self._synchronous_commit = synchronous_commit
        self._max_unread = max_unread
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = PROCESS.pid
        #: (statement, parameters) sent and not yet answered, oldest first
        self._pending: deque[tuple[bytes, list[bytes | None]]] = deque()
        _instances.add(self)

    def send(self, statement: str, params: list[str | None]) -> None:
        """Send ``statement`` (``$n`` placeholders) now; its reply is read later."""
        item = (statement.encode(), [None if p is None else p.encode() for p in params])
        with self._lock:
            self._check_pid()
            if len(self._pending) >= self._max_unread:
                self._read(block=True)
            self._pending.append(item)
            try:
                self._send(item)
                self._read(block=False)
            except psycopg.Error:
                self._recover_or_raise()

    def flush(self) -> None:
        """Wait for the replies of everything sent (a no-op when nothing is outstanding)."""
        if not self._pending:
            return
        with self._lock:
            self._check_pid()
            try:
                self._read(block=True)
            except psycopg.Error:
                self._recover_or_raise()
                try:
                    self._read(block=True)
                except psycopg.Error as exc:
                    raise self._error(exc) from exc

    def close(self) -> None:
        with self._lock:
            self._check_pid()
            try:
                if self._pending:
                    self._read(block=True)
            except psycopg.Error as exc:
                logger.warning("PostgreSQL acks not confirmed at close: %s", exc)
            self._pending.clear()
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    # -- internals (the lock is held) ----------------------------------------------------------
    def _pgconn(self) -> Any:
        conn = self._conn
        if conn is None or conn.closed:
            conn = connect(self._pool.params, self._pool.connection_error)
            if not self._synchronous_commit:
                # see statements.ASYNC_COMMIT: a lost ack only brings its message back
                conn.execute("SET synchronous_commit = off")
            conn.pgconn.enter_pipeline_mode()
            self._conn = conn
        return conn.pgconn

    def _send(self, item: tuple[bytes, list[bytes | None]]) -> None:
        pgconn = self._pgconn()
        pgconn.send_query_params(item[0], item[1])
        pgconn.pipeline_sync()
        if pgconn.flush() != 0:  # blocking connection: 0 once all is written
            raise psycopg.OperationalError(pgconn.get_error_message())

    def _read(self, block: bool) -> None:
        """Read replies: all of them (``block``), or those already arrived. Waiting is a
        poll() on the socket, so other threads run meanwhile."""
        conn = self._conn
        if conn is None:
            if self._pending and block:
                raise psycopg.OperationalError("no connection")
            return
        pgconn = conn.pgconn
        while self._pending:
            pgconn.consume_input()
            ended = 0  # consecutive ends of results: two mean nothing more has arrived
            while self._pending and not pgconn.is_busy() and ended < 2:
                result = pgconn.get_result()
                if result is None:
                    ended += 1
                    continue
                ended = 0
                self._handle(result, pgconn)
            if not self._pending or not block:
                return
            if pgconn.status != pq.ConnStatus.OK:
                raise psycopg.OperationalError(pgconn.get_error_message())
            if not _readable(pgconn.socket, REPLY_TIMEOUT_S):
                raise psycopg.OperationalError(f"no reply within {REPLY_TIMEOUT_S:g}s")

    def _handle(self, result: Any, pgconn: Any) -> None:
        status = result.status
        if status == pq.ExecStatus.PIPELINE_SYNC:
            self._pending.popleft()
        elif status in _OK or status == pq.ExecStatus.PIPELINE_ABORTED:
            pass
        elif pgconn.status != pq.ConnStatus.OK:
            raise psycopg.OperationalError(result.error_message.decode(errors="replace"))
        else:
            message = result.error_message.decode(errors="replace").strip()
            logger.warning("PostgreSQL refused a write-behind ack: %s", message)

    def _recover(self) -> None:
        """A fresh connection, and everything unanswered sent again."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        for item in list(self._pending):
            self._send(item)

    def _recover_or_raise(self) -> None:
        try:
            self._recover()
        except psycopg.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: psycopg.Error) -> Exception:
        return self._pool.connection_error(describe(exc, self._pool.params.display))

    def _after_fork(self) -> None:
        # The child is single-threaded now: a lock another thread held at fork time would stay
        # held, so it is replaced rather than taken.
        self._lock = threading.Lock()
        self._check_pid()

    def _check_pid(self) -> None:
        if self._pid != PROCESS.pid:
            # A forked child: never the parent's connection, nor its outstanding acks.
            if self._conn is not None:
                neuter(self._conn)
            self._conn = None
            self._pending.clear()
            self._pid = PROCESS.pid


_instances: weakref.WeakSet[WriteBehind] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for instance in list(_instances):
        instance._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
