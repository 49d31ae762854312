"""Connections to PostgreSQL for the broker and the coordination store.

Rules:

* **URLs.** ``postgresql://`` and ``postgres://`` (libpq URLs), and SQLAlchemy's
  ``db+postgresql[+driver]://`` (a result backend's URL, whose database the coordination store
  may share): the ``db+`` and ``+driver`` parts are dropped. ``?schema=NAME`` (or the option
  ``schema``) puts every celeriac table into schema NAME, created on first use; without it they
  go where the connection's ``search_path`` creates tables (``public``). Query parameters libpq
  does not know (SQLAlchemy's own) are dropped.
* **Nothing connects before first use.** A :class:`Pool` opens connections on demand, keeps up
  to ``max_idle`` of them, and applies the schema once per process (:func:`migrate`).
* **Fork safety.** A connection never crosses a ``fork``: in the child, every connection the
  parent opened gets its socket swapped for ``/dev/null`` before it is dropped, so closing it
  (libpq sends a Terminate message) can never end the parent's session.
* **Errors.** psycopg errors become the caller's error class with one line naming the URL
  (password masked) and what to do (:func:`describe`). A statement that fails with a connection
  error on a pooled connection (it may have died while idle: server restart,
  ``pg_terminate_backend``) is run once more on a fresh connection; anything else is raised.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import pq

from celeriac._postgres.schema import migrate
from celeriac._utils.pid import PROCESS
from celeriac.exceptions import ImproperlyConfigured

T = TypeVar("T")
logger = logging.getLogger("celeriac.postgres")

#: URL schemes served; the ``db+`` ones are SQLAlchemy result-backend URLs on PostgreSQL
SCHEMES = ("postgresql", "postgres")
BACKEND_SCHEMES = ("db+postgresql", "db+postgres", "db+postgresql+psycopg",
                   "db+postgresql+psycopg2")
#: seconds libpq waits for a connection before giving up (option ``connect_timeout``)
DEFAULT_CONNECT_TIMEOUT_S = 10
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_LIBPQ_KEYS = {d.keyword.decode() for d in pq.Conninfo.get_defaults()}
# The database's clock, in epoch seconds: the one clock every worker's leases are timed by.
# statement_timestamp() is stable within a statement, so the planner can compare it with the
# partial indexes (clock_timestamp() is volatile and would force a scan of the table).
NOW = "extract(epoch FROM statement_timestamp())"


@dataclass(frozen=True, slots=True)
class PgParams:
    """Where to connect: ``conninfo`` for libpq, the ``schema`` (None: the default search path),
    and ``display``, the URL as it may be shown (password masked)."""

    conninfo: str
    schema: str | None
    display: str
    #: the URL's own libpq ``options`` (e.g. ``-c statement_timeout=5000``), kept when the
    #: schema's ``search_path`` is added
    options: str = ""

    @property
    def namespace(self) -> str:
        """What tells this schema's notification channels from another's in one database."""
        return f"{self.schema or ''}:"


def mask(url: str) -> str:
    """``url`` with its password (in the user part or the query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.rpartition("@")[2]
    query = "&".join(
        f"{k}=***" if k == "password" else f"{k}={v}" for k, v in parse_qsl(parts.query)
    )
    netloc = parts.netloc
    if password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def parse_url(url: str, options: Mapping[str, Any] | None = None) -> PgParams:
    """The connection parameters of a PostgreSQL URL (see the module docstring); raises
    ImproperlyConfigured for a URL that is not one, or a schema name that is not a plain
    identifier."""
    options = options or {}
    scheme, sep, rest = url.partition("://")
    base = scheme.lower().removeprefix("db+").partition("+")[0]
    if not sep or base not in SCHEMES:
        raise ImproperlyConfigured(f"Not a PostgreSQL URL: {mask(url)!r}")
    parts = urlsplit(f"postgresql://{rest}")
    query: list[tuple[str, str]] = []
    schema: str | None = options.get("schema")
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = value
        elif key in _LIBPQ_KEYS:
            query.append((key, value))
    if not any(k == "connect_timeout" for k, _ in query):
        timeout = options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S)
        query.append(("connect_timeout", str(max(1, int(float(timeout))))))
    if schema is not None and not _IDENTIFIER.fullmatch(schema):
        raise ImproperlyConfigured(
            f"{mask(url)}: schema {schema!r} is not a plain identifier (letters, digits, _)"
        )
    conninfo = urlunsplit(parts._replace(query=urlencode(query)))
    options_value = next((v for k, v in query if k == "options"), "")
    return PgParams(conninfo, schema or None, mask(url), options_value)


def qualified(params: PgParams, table: str) -> str:
    """``table`` named with the params' schema (for a connection whose ``search_path`` is not
    ours, e.g. a result backend's engine)."""
    return f'"{params.schema}".{table}' if params.schema else table


def same_database(params: PgParams, engine: Any) -> bool:
    """Whether SQLAlchemy ``engine`` (duck-typed: ``engine.url``, ``engine.dialect.name``)
    connects to the database ``params`` name: same host, port, database and user."""
    url = getattr(engine, "url", None)
    if url is None or getattr(getattr(engine, "dialect", None), "name", "") != "postgresql":
        return False
    ours = urlsplit(params.conninfo)
    theirs = (url.host or "localhost", url.port or 5432, url.database or "", url.username or "")
    return theirs == (ours.hostname or "localhost", ours.port or 5432, ours.path.lstrip("/"),
                      ours.username or "")


def channel(namespace: str, name: str) -> str:
    """The LISTEN/NOTIFY channel of queue or broadcast channel ``name``: a hash, since channel
    names are identifiers of at most 63 bytes. SQL computes the same name with
    ``'celeriac_' || left(md5(namespace || name), 16)`` (:data:`CHANNEL_SQL`)."""
    digest = hashlib.md5((namespace + name).encode(), usedforsecurity=False).hexdigest()
    return "celeriac_" + digest[:16]


#: :func:`channel` in SQL; ``%(ns)s`` binds the namespace, ``{name}`` is the column
CHANNEL_SQL = "'celeriac_' || left(md5(%(ns)s || {name}), 16)"

#: A CTE body taking dedup key ``%(key)s`` for ``%(ttl_s)s`` seconds: one row when taken, none
#: while it is held. The broker's ``publish_once`` and the store's ``add_once`` share it, so
#: they take the same keys.
TAKE_KEY = f"""
    INSERT INTO celeriac_dedupe AS d (key, expires_at) VALUES (%(key)s, {NOW} + %(ttl_s)s::float8)
    ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
    WHERE d.expires_at <= {NOW}
    RETURNING 1
"""


# (words that must all be in the error, what to do), first match wins
_HINTS = (
    (("password authentication failed",), "wrong user name or password: fix the URL's"
                                          " credentials"),
    (("no password supplied",), "the server wants a password: put it in the URL"),
    (("role", "does not exist"), "no such user on the server: fix the URL's user name"),
    (("database", "does not exist"), "no such database: create it (createdb NAME) or fix the"
                                     " URL's path"),
    (("connection refused",), "nothing listens there: is PostgreSQL running, host and port"
                              " right?"),
    (("could not translate host name",), "unknown host: fix the URL's host name"),
    (("timeout expired",), "no answer in time: is the host reachable (connect_timeout)?"),
    (("terminating connection",), "the server ended the connection (restart or administrator)"),
    (("server closed the connection",), "the server closed the connection"),
)


def describe(exc: BaseException, display: str) -> str:
    """One line for a psycopg error: the URL (masked), what to do, then the error itself."""
    text = " ".join(str(exc).split())
    lowered = text.lower()
    hint = next((advice for words, advice in _HINTS if all(w in lowered for w in words)),
                "PostgreSQL reported an error")
    return f"PostgreSQL at {display}: {hint} ({type(exc).__name__}: {text})"


def scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    """The first column of the first row ``query`` returns; None when it returns no row."""
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


# -- connections -------------------------------------------------------------------------------
_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


def connect(params: PgParams, error: type[Exception]) -> psycopg.Connection[Any]:
    """A new autocommit connection whose ``search_path`` starts with the schema."""
    kwargs: dict[str, Any] = {"autocommit": True}
    if params.schema:
        # Set at connection start-up: no extra round trip.
        kwargs["options"] = f"{params.options} -c search_path={params.schema},public".strip()
    try:
        return psycopg.connect(params.conninfo, **kwargs)
    except psycopg.Error as exc:
        raise error(describe(exc, params.display)) from exc


def neuter(conn: psycopg.Connection[Any]) -> None:
    """Point ``conn``'s socket at ``/dev/null`` in this (forked) process, so that closing it
    here cannot touch the session the parent still uses."""
    try:
        fd = conn.fileno()
    except Exception:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class Pool:
    """Connections of one process to one database and schema: taken for a statement (or a
    transaction) and given back; up to ``max_idle`` are kept open. Thread-safe."""

    def __init__(
        self,
        params: PgParams,
        *,
        error: type[Exception],
        connection_error: type[Exception] | None = None,
        max_idle: int = 8,
    ) -> None:
        self.params = params
        self.error = error
        self.connection_error = connection_error or error
        self.max_idle = max_idle
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._pid = PROCESS.pid
        self._migrated = False
        _pools.add(self)

    def open(self) -> psycopg.Connection[Any]:
        """A new connection of this pool's database, the schema brought up to date."""
        conn = connect(self.params, self.connection_error)
        if not self._migrated:
            try:
                migrate(conn, self.params.schema)
            except psycopg.Error as exc:
                conn.close()
                raise self.error(describe(exc, self.params.display)) from exc
            self._migrated = True
        return conn

    def _take(self) -> tuple[psycopg.Connection[Any], bool]:
        with self._lock:
            if self._pid != PROCESS.pid:
                self._after_fork()
            if self._idle:
                return self._idle.pop(), True
        return self.open(), False

    def _give(self, conn: psycopg.Connection[Any]) -> None:
        healthy = not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE
        with self._lock:
            if healthy and self._pid == PROCESS.pid and len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        if self._pid == PROCESS.pid:
            conn.close()

    def run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``fn(connection)``, errors translated; once more on a fresh connection when a
        pooled one turns out to have died while idle."""
        for attempt in (0, 1):
            conn, reused = self._take()
            try:
                result = fn(conn)
            except psycopg.OperationalError as exc:
                # Connection trouble (or a pipeline it left half-read): never pooled again.
                conn.close()
                if reused and attempt == 0:
                    logger.debug("PostgreSQL connection found dead, retrying: %s", exc)
                    continue
                raise self.connection_error(describe(exc, self.params.display)) from exc
            except psycopg.Error as exc:
                self._give(conn)
                raise self.error(describe(exc, self.params.display)) from exc
            self._give(conn)
            return result
        raise AssertionError("unreachable")

    def _after_fork(self) -> None:
        for conn in self._idle:
            neuter(conn)
        self._idle = []
        self._pid = PROCESS.pid

    def close(self) -> None:
        with self._lock:
            if self._pid != PROCESS.pid:
                self._after_fork()
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _after_fork_in_child() -> None:
    for pool in list(_pools):
        # The child is single-threaded now: the lock may have been held by another thread of
        # the parent at fork time, so it is replaced rather than taken.
        pool._lock = threading.Lock()
        pool._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
