"""A connection that LISTENs: the PostgreSQL broker's wake-ups and broadcast subscriptions.

Rule: one reader per Listener (not shared between threads); after ``fork`` the child never uses
the parent's listening connection (it is dropped with its socket on ``/dev/null``, as in
:mod:`celeriac._postgres.conn`)."""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any

import psycopg
from psycopg import sql

from celeriac._postgres.conn import Pool, connect, describe, neuter
from celeriac._utils.pid import PROCESS

logger = logging.getLogger("celeriac.postgres")
_listeners: weakref.WeakSet[Listener] = weakref.WeakSet()


class Listener:
    """A connection of its own that LISTENs on channels and waits for notifications (one
    reader; not shared between threads). Reconnects on next use after an error."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._conn: psycopg.Connection[Any] | None = None
        self._channels: set[str] = set()
        self._pid = PROCESS.pid
        _listeners.add(self)

    def listen(self, channels: list[str]) -> None:
        """Make sure notifications on ``channels`` are received from now on (a round trip only
        when a channel is new)."""
        if self._pid != PROCESS.pid:
            self._after_fork()
        conn = self._conn
        if conn is None or conn.closed:
            conn = self._conn = connect(self._pool.params, self._pool.connection_error)
            self._channels = set()
        new = [c for c in channels if c not in self._channels]
        if not new:
            return
        statement = sql.SQL("; ").join(sql.SQL("LISTEN {}").format(sql.Identifier(c)) for c in new)
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            self.close()
            raise self._pool.connection_error(describe(exc, self._pool.params.display)) from exc
        self._channels.update(new)

    def wait(self, timeout_s: float) -> list[str] | None:
        """The payloads of the notifications received within ``timeout_s`` (all that arrived
        together with the first); None when the connection failed (it is closed: notifications
        may have been missed, so the caller listens again and re-checks)."""
        conn = self._conn
        if conn is None:
            return None
        try:
            return [n.payload for n in conn.notifies(timeout=max(timeout_s, 0.0), stop_after=1)]
        except psycopg.Error as exc:
            logger.warning("PostgreSQL listener at %s failed: %s", self._pool.params.display,
                           " ".join(str(exc).split()))
            self.close()
            return None

    def _after_fork(self) -> None:
        if self._conn is not None:
            neuter(self._conn)
        self._conn = None
        self._channels = set()
        self._pid = PROCESS.pid

    def close(self) -> None:
        if self._pid != PROCESS.pid:
            self._after_fork()
        conn, self._conn = self._conn, None
        self._channels = set()
        if conn is not None:
            conn.close()


def _after_fork_in_child() -> None:
    for listener in list(_listeners):
        listener._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
