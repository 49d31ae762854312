"""What the SQLite broker, result backend and coordination store share: URL parsing, one
connection per process and thread, the pragmas that make several processes safe on one file,
retries on a busy database, an in-process wake-up signal, and the dedup keys table.

Stdlib only (``sqlite3`` is stdlib), so it lives in layer 0 and raises no celeriac error itself:
the caller passes the error class (TransportError) that sqlite3 errors become.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

from celeriac._utils.pid import PROCESS

T = TypeVar("T")

DEFAULT_FILENAME = "celeriac.db"
BUSY_TIMEOUT_S = 10.0
# SQLite's busy handler already waits up to BUSY_TIMEOUT_S for a lock. A "locked" error that
# comes back sooner is one the handler never saw (two processes switching to WAL at once, WAL
# recovery): those get a few quick retries; one after the full wait is raised.
LOCKED_RETRIES = 5


def parse_url(url: str) -> str:
    """The absolute file path a ``sqlite://`` URL names.

    Like SQLAlchemy: ``sqlite:///rel.db`` is relative to the current directory,
    ``sqlite:////abs.db`` is absolute and ``sqlite://`` means ``celeriac.db`` here. The path is
    made absolute now so a later ``chdir`` (daemonising workers do that) cannot move the queue.
    """
    _, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"Not a SQLite URL: {url!r}")
    rest = rest.split("?", 1)[0]
    # Anything before the first slash is the (ignored) host part, as in SQLAlchemy URLs.
    _, slash, path = rest.partition("/")
    if not slash or not path:
        path = DEFAULT_FILENAME
    if path == ":memory:" or path.startswith("file:"):
        raise ValueError(
            f"{url!r}: an in-memory SQLite database cannot be shared between connections; "
            "use memory:// for an in-process transport"
        )
    return os.path.abspath(path)


def _is_locked(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def describe(exc: sqlite3.Error, path: str) -> str:
    """A message for a sqlite3 error, with a hint a user can act on."""
    text = str(exc)
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered:
        hint = "the file (or its directory, which needs room for -wal/-shm files) is not writable"
    elif "unable to open" in lowered:
        hint = "the file cannot be opened: does its directory exist and is it writable?"
    elif _is_locked(exc):
        hint = f"another process held the database lock for more than {BUSY_TIMEOUT_S:g}s"
    elif "malformed" in lowered or "not a database" in lowered:
        hint = "the file is not a healthy SQLite database"
    else:
        hint = "SQLite reported an error"
    return f"SQLite database {path}: {hint} ({type(exc).__name__}: {text})"


class _Opened:
    """The connections a Connections object opened in one process (closable without it)."""

    __slots__ = ("items", "pid")

    def __init__(self, pid: int) -> None:
        self.items: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self.pid = pid

    def close(self) -> None:
        if self.pid != PROCESS.pid:
            return  # a forked child must not close its parent's connections
        items, self.items = self.items, []
        for _, conn in items:
            try:
                conn.close()
            except sqlite3.Error:
                pass


class Connections:
    """Lazily opened connections to one file: one per thread of each process.

    A connection must never cross a ``fork`` (SQLite's locks are per process), so every lookup
    compares the owner pid; a child drops its parent's connections without closing them, since
    closing could disturb the parent's locks and WAL index mapping.
    """

    def __init__(
        self,
        path: str,
        schema: str,
        error_class: type[Exception],
        *,
        migrate: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """``schema`` is run on every new connection (``CREATE ... IF NOT EXISTS``), then
        ``migrate``, which brings a file made by an older release up to date."""
        _all_connections.add(self)
        self.path = path
        self._schema = schema
        self._migrate = migrate
        self._error_class = error_class
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pid = PROCESS.pid
        # Every open connection of this process with the thread that owns it, so close() can
        # close them all and connections of finished threads are reclaimed.
        self._opened = _Opened(PROCESS.pid)
        # An owner dropped without close() still closes its connections (Python 3.13 warns
        # about a connection that is garbage-collected open).
        weakref.finalize(self, self._opened.close)

    def get(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.pid == PROCESS.pid:
            return conn
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        pid = PROCESS.pid
        with self._lock:
            if self._pid != pid:
                _orphans.extend(conn for _, conn in self._opened.items)
                self._opened.items = []
                self._pid = self._opened.pid = pid
            self._reap_dead_threads()
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_S,
                # We issue BEGIN/COMMIT ourselves; the module's implicit transactions would
                # start deferred ones that deadlock when two readers both try to write.
                isolation_level=None,
                # Only close() touches another thread's connection.
                check_same_thread=False,
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            self._setup(conn)
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._opened.items.append((weakref.ref(threading.current_thread()), conn))
        self._local.conn = conn
        self._local.pid = pid
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        def setup(c: sqlite3.Connection) -> None:
            # WAL lets readers run while one writer commits; NORMAL skips the fsync per commit
            # (a power cut may lose the last commits, never corrupts the file).
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            c.execute("PRAGMA temp_store=MEMORY")
            c.executescript(self._schema)
            if self._migrate is not None:
                self._migrate(c)

        self._retry(setup, conn, write=False)

    def _reap_dead_threads(self) -> None:
        keep = []
        for ref, conn in self._opened.items:
            thread = ref()
            if thread is None or not thread.is_alive():
                conn.close()
            else:
                keep.append((ref, conn))
        self._opened.items = keep

    def close(self) -> None:
        """Close every connection this process opened; the next use reconnects."""
        with self._lock:
            if self._pid == PROCESS.pid:
                for _, conn in self._opened.items:
                    conn.close()
            else:
                _orphans.extend(conn for _, conn in self._opened.items)
            self._opened.items = []
        self._local = threading.local()

    def _close_own_idle(self) -> None:
        """Before a fork: close the forking thread's connection if no transaction is open.

        A child inherits SQLite's per-process bookkeeping of open files (including the lock on
        the WAL index that marks it in use), so the fewer connections are open at fork time, the
        less stale state the child starts from. Other threads' connections may be mid-statement
        and are left alone (the child orphans them).
        """
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != PROCESS.pid or conn.in_transaction:
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._opened.items = [(ref, c) for ref, c in self._opened.items if c is not conn]
        finally:
            self._lock.release()
        self._local.conn = None
        conn.close()

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in autocommit mode: each statement is its own transaction. For reads and
        single-statement writes, which need no BEGIN/COMMIT round trips."""
        return self._retry(fn, None, write=False)

    def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a ``BEGIN IMMEDIATE`` transaction: it takes the write lock up front, so
        it never fails half-way on a lock upgrade, and commits when ``fn`` returns."""
        return self._retry(fn, None, write=True)

    def _retry(
        self, fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection | None, write: bool
    ) -> T:
        attempt = 0
        while True:
            c = conn if conn is not None else self.get()
            started = time.monotonic()
            try:
                if write:
                    c.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(c)
                    if write:
                        c.execute("COMMIT")
                except BaseException:
                    if c.in_transaction:
                        c.execute("ROLLBACK")
                    raise
                return result
            except sqlite3.OperationalError as exc:
                attempt += 1
                quick = time.monotonic() - started < BUSY_TIMEOUT_S / 2
                if _is_locked(exc) and quick and attempt <= LOCKED_RETRIES:
                    time.sleep(0.01 * attempt)
                    continue
                raise self._error(exc) from exc
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> Exception:
        return self._error_class(describe(exc, self.path))


# Connections inherited from a parent process: kept referenced so garbage collection never
# closes them in the child (see Connections).
_orphans: list[sqlite3.Connection] = []
_all_connections: weakref.WeakSet[Connections] = weakref.WeakSet()


def _before_fork() -> None:
    for connections in list(_all_connections):
        connections._close_own_idle()


class Signal:
    """Wakes threads of this process waiting for a change to one database file.

    Other processes' changes are found by polling; this only saves the poll latency when the
    producer runs in the same process. The generation counter closes the gap between a waiter's
    last look at the database and its wait: a notify in between makes ``wait`` return at once.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self.generation = 0

    def notify(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def wait(self, seen_generation: int, timeout_s: float) -> bool:
        """Sleep up to ``timeout_s`` unless notified since ``seen_generation``; True when
        notified."""
        with self._cond:
            if self.generation == seen_generation:
                self._cond.wait(timeout_s)
            return self.generation != seen_generation


_signals: dict[tuple[str, str], Signal] = {}
_signals_lock = threading.Lock()


def signal_for(path: str, channel: str) -> Signal:
    """The process-wide signal of ``channel`` (e.g. "messages") on database file ``path``."""
    with _signals_lock:
        signal = _signals.get((path, channel))
        if signal is None:
            signal = _signals[(path, channel)] = Signal()
        return signal


def _reset_after_fork() -> None:
    # A lock held by another thread at fork time would stay locked forever in the child.
    global _signals_lock
    _signals_lock = threading.Lock()
    _signals.clear()


os.register_at_fork(before=_before_fork, after_in_child=_reset_after_fork)


def placeholders(count: int) -> str:
    """``?,?,...`` for an ``IN (...)`` list of ``count`` parameters."""
    return ",".join("?" * count)


#: The dedup keys table: taken by the coordination store's ``add_once`` and, in the same
#: transaction as the message, by the SQLite broker's atomic ``publish_once``.
DEDUPE_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedupe (key TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS dedupe_expires ON dedupe (expires_at);
"""


def take_key(c: sqlite3.Connection, key: str, ttl_s: float, now: float) -> bool:
    """Take dedup ``key`` for ``ttl_s`` seconds through ``c``, inside the caller's transaction
    (expired keys are dropped first); True when taken, False while another holds it."""
    c.execute("DELETE FROM dedupe WHERE expires_at <= ?", (now,))
    taken = c.execute(
        "INSERT INTO dedupe (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
        (key, now + ttl_s),
    ).rowcount
    return bool(taken)
