"""``db+postgresql://``, ``db+mysql://``, ``db+sqlite://``... result backend: records in a SQL
database through SQLAlchemy Core, in Celery's table layout (see :mod:`.schema`).

Rules:

* Options are Celery's setting names: ``database_table_names``, ``database_table_schemas``,
  ``database_engine_options`` (keywords of ``create_engine``), ``database_short_lived_sessions``
  (no pool: a connection per operation), ``database_create_tables_at_setup`` (create the tables
  in the constructor; otherwise on first use), ``database_engine_callback`` (called with each
  new engine). Nothing connects before first use otherwise.
* Every operation is one transaction; ``store_many`` is one upsert executemany per table,
  ``get_many`` one query per table and 500 ids. An expired row is invisible at once (reads
  check ``expires_at``); :meth:`SQLBackend.cleanup` deletes such rows, and ``store_many`` runs
  it at most once a minute.
* ``incr`` is one atomic upsert (RETURNING on PostgreSQL and SQLite; on MySQL the upsert and a
  read of the row it locks, in one transaction).
* Waiting polls with a back-off from 1 ms to ``interval_s``; a store in the same process wakes
  waiters at once.
* A dropped connection (server restart, killed session) fails the call that met it only when
  the call is not safe to repeat (``incr``); other calls run again once on a fresh connection.
  Deadlocks are retried. Other driver errors become :class:`TransportError` naming the URL with
  its password masked.
* Fork-safe: a child process drops the parent's pooled connections without closing them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from celeriac import states
from celeriac._utils.pid import PROCESS
from celeriac._utils.sqlite import signal_for
from celeriac._utils.urls import mask_url
from celeriac._utils.waiting import poll_until
from celeriac.backends.base import ResultBackend
from celeriac.backends.sql.columns import celery_columns, record_from_celery_row
from celeriac.backends.sql.schema import (
    GROUP_PREFIX,
    SCHEMES,
    Tables,
    build_tables,
    incr_statement,
    sqlalchemy_url,
)
from celeriac.backends.sql.store import SQLStore
from celeriac.exceptions import ImproperlyConfigured, TransportError

T = TypeVar("T")

_CHUNK = 500
_CLEANUP_EVERY_S = 60.0
_READY = sorted(states.READY_STATES)
_AUTOCOMMIT_DIALECTS = frozenset({"postgresql", "sqlite"})
_RAW = sa.types.NullType()  # read columns without type processing: hostile rows stay data


def _as_bytes(value: object) -> bytes | None:
    """A stored record as bytes; anything a reader cannot take as one (a number written by
    hand into a loosely typed column) is no record."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return None


class SQLBackend(ResultBackend):
    schemes = SCHEMES
    #: Celery settings the app passes in ``options`` when they are set
    app_settings = (
        "database_engine_options",
        "database_short_lived_sessions",
        "database_table_schemas",
        "database_table_names",
        "database_create_tables_at_setup",
        "database_engine_callback",
    )

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        opts = self.options
        self.sqlalchemy_url = sqlalchemy_url(url)
        #: the tables, for a broker on the same database that stores results in its own
        #: transaction (with :attr:`engine`, :meth:`write_rows` and :meth:`notify`)
        self.tables: Tables = build_tables(
            opts.get("database_table_names"), opts.get("database_table_schemas")
        )
        engine_options = opts.get("database_engine_options") or {}
        if not isinstance(engine_options, Mapping):
            raise ImproperlyConfigured("database_engine_options must be a dict")
        self._engine_options = dict(engine_options)
        self._short_lived = bool(opts.get("database_short_lived_sessions", False))
        self._store = SQLStore(self.tables, self._error)
        self._engine: sa.Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._tables_ready = False
        self._next_cleanup = time.monotonic() + _CLEANUP_EVERY_S
        if opts.get("database_create_tables_at_setup", False):
            self._run(lambda c: None)

    # -- connections -------------------------------------------------------------------------

    @property
    def engine(self) -> sa.Engine:
        """This process's SQLAlchemy engine (created on first use, renewed after a fork)."""
        engine = self._engine
        if engine is not None and self._pid == PROCESS.pid:
            return engine
        if self._pid != PROCESS.pid:
            # A lock another thread held at fork time would stay held in this child.
            self._lock = threading.Lock()
        with self._lock:
            if self._engine is not None and self._pid != PROCESS.pid:
                # The parent's connections stay open for the parent: drop them, do not close.
                self._engine.dispose(close=False)
            elif self._engine is None:
                self._engine = self._create_engine()
            self._pid = PROCESS.pid
            return self._engine

    def _create_engine(self) -> sa.Engine:
        options: dict[str, Any] = {"pool_recycle": 3600, **self._engine_options}
        if self._short_lived:
            options["poolclass"] = sa.pool.NullPool
        try:
            engine = sa.create_engine(self.sqlalchemy_url, **options)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"result backend {mask_url(self.url)}: {_first_line(exc)}; install the "
                f"database driver (pip install 'celeriac[{_extra_for(self.sqlalchemy_url)}]')"
            ) from exc
        except (sa_exc.ArgumentError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"result backend {mask_url(self.url)}: {_first_line(exc)}"
            ) from exc
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        callback = self.options.get("database_engine_callback")
        if callback is not None:
            # Celery's hook: called with each new engine (so once per process here).
            callback(engine)
        return engine

    def _error(self, exc: BaseException) -> TransportError:
        cause = getattr(exc, "orig", None) or exc
        return TransportError(f"result backend {mask_url(self.url)}: {_first_line(cause)}")

    def _run(
        self, fn: Callable[[sa.Connection], T], *, repeatable: bool = True, atomic: bool = True
    ) -> T:
        """``fn`` in one transaction, with the retries the module docstring describes.

        ``atomic=False``: ``fn`` runs one statement (or only reads), so on PostgreSQL and SQLite
        it runs in autocommit: no BEGIN and COMMIT round trips around it. (MySQL drivers
        would pay a round trip to switch autocommit, so it keeps transactions.)"""
        attempts = 0
        while True:
            attempts += 1
            try:
                engine = self.engine
                if not self._tables_ready:
                    self._store.create_tables(engine)
                    self._tables_ready = True
                if not atomic and engine.dialect.name in _AUTOCOMMIT_DIALECTS:
                    with engine.connect() as conn:
                        return fn(conn.execution_options(isolation_level="AUTOCOMMIT"))
                with engine.begin() as conn:
                    return fn(conn)
            except sa_exc.DBAPIError as exc:
                if attempts < 10 and _is_deadlock(exc):
                    time.sleep(0.001 * attempts)
                    continue
                if attempts == 1 and exc.connection_invalidated and repeatable:
                    continue
                raise self._error(exc) from exc
            except sa_exc.SQLAlchemyError as exc:
                raise self._error(exc) from exc

    # -- records -----------------------------------------------------------------------------

    def store(self, task_id: str, state: str, payload: bytes, expires_s: float | None) -> None:
        self.store_many([(task_id, state, payload)], expires_s)

    def write_rows(
        self, conn: sa.Connection, items: Sequence[tuple[str, str, bytes]],
        expires_s: float | None,
    ) -> None:
        """Upsert records through ``conn`` (a broker on this database storing results in its
        own transaction); the caller commits, then calls :meth:`notify`."""
        now = time.time()
        until = now + expires_s if expires_s else None
        done = datetime.now(UTC).replace(tzinfo=None)
        tasks: dict[str, dict[str, Any]] = {}
        groups: dict[str, dict[str, Any]] = {}
        # Last record per id wins, and one upsert statement never meets its key twice.
        for task_id, state, payload in items:
            copies = celery_columns(payload)
            if task_id.startswith(GROUP_PREFIX):
                group_id = task_id[len(GROUP_PREFIX) :]
                groups[group_id] = {
                    "taskset_id": group_id, "payload": payload, "result": copies["result"],
                    "date_done": done, "expires_at": until,
                }
            else:
                tasks[task_id] = {
                    "task_id": task_id, "status": state, "payload": payload, **copies,
                    "date_done": done, "expires_at": until,
                }
        dialect = conn.dialect.name
        for table, key, rows in (
            (self.tables.task, "task_id", tasks), (self.tables.group, "taskset_id", groups)
        ):
            if rows:
                self._store.upsert_rows(conn, dialect, table, key, list(rows.values()))

    def notify(self) -> None:
        """Wake this process's waiters (after records were committed)."""
        signal_for(self.url, "sql-results").notify()

    def store_many(self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None) -> None:
        if not items:
            return
        # One upsert statement unless the batch mixes task and group records.
        mixed = len({task_id.startswith(GROUP_PREFIX) for task_id, _, _ in items}) > 1
        self._run(lambda c: self.write_rows(c, items, expires_s), atomic=mixed)
        self.notify()
        if time.monotonic() >= self._next_cleanup:
            self._next_cleanup = time.monotonic() + _CLEANUP_EVERY_S
            self.cleanup()

    def _where(self, task_id: str) -> tuple[sa.Table, sa.ColumnElement[bool]]:
        if task_id.startswith(GROUP_PREFIX):
            table = self.tables.group
            return table, table.c.taskset_id == task_id[len(GROUP_PREFIX) :]
        return self.tables.task, self.tables.task.c.task_id == task_id

    @staticmethod
    def _live(table: sa.Table, now: float) -> sa.ColumnElement[bool]:
        return sa.or_(table.c.expires_at.is_(None), table.c.expires_at > now)

    def get(self, task_id: str) -> bytes | None:
        table, match = self._where(task_id)
        query = sa.select(sa.literal(1), sa.type_coerce(table.c.payload, _RAW)).where(
            match, self._live(table, time.time())
        )
        row = self._run(lambda c: c.execute(query).first(), atomic=False)
        if row is None:
            return None
        if row[1] is None:  # a row Celery wrote: rebuild its record from Celery's columns
            return self.get_many([task_id])[0]
        return _as_bytes(row[1])

    def get_many(self, task_ids: Sequence[str]) -> list[bytes | None]:
        ids = list(task_ids)
        if not ids:
            return []
        now = time.time()
        plain = sorted({i for i in ids if not i.startswith(GROUP_PREFIX)})
        grouped = sorted({i[len(GROUP_PREFIX) :] for i in ids if i.startswith(GROUP_PREFIX)})

        def fetch(c: sa.Connection) -> dict[str, bytes | None]:
            found: dict[str, bytes | None] = {}
            for table, prefix, wanted in (
                (self.tables.task, "", plain), (self.tables.group, GROUP_PREFIX, grouped)
            ):
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start : start + _CHUNK]
                    for key, record in self._fetch(c, table, chunk, now).items():
                        found[prefix + key] = record
            return found

        found = self._run(fetch, atomic=False)
        return [found.get(task_id) for task_id in ids]

    def _fetch(
        self, c: sa.Connection, table: sa.Table, keys: list[str], now: float
    ) -> dict[str, bytes | None]:
        """Records of ``keys`` in ``table``: ``payload``, else rebuilt from Celery's columns
        (a row Celery wrote), in a second query only when there is such a row."""
        key_column = table.c.task_id if table is self.tables.task else table.c.taskset_id
        live = self._live(table, now)
        query = sa.select(key_column, sa.type_coerce(table.c.payload, _RAW)).where(
            key_column.in_(keys), live
        )
        found: dict[str, bytes | None] = {}
        celery_rows: list[str] = []
        for key, payload in c.execute(query):
            found[str(key)] = record = _as_bytes(payload)
            if record is None and payload is None:
                celery_rows.append(str(key))
        if celery_rows:
            task = table is self.tables.task
            columns = [
                key_column,
                sa.type_coerce(table.c.status if task else sa.literal(states.SUCCESS), _RAW),
                sa.type_coerce(table.c.result, _RAW),
                sa.type_coerce(table.c.traceback if task else sa.null(), _RAW),
                sa.type_coerce(table.c.children if task else sa.null(), _RAW),
                table.c.date_done,
            ]
            rows = c.execute(sa.select(*columns).where(key_column.in_(celery_rows), live))
            for key, *values in rows:
                found[str(key)] = record_from_celery_row(str(key), *values)
        return found

    def get_state(self, task_id: str) -> str | None:
        table, match = self._where(task_id)
        # A saved group has no state column: it is there or not.
        column = table.c.status if table is self.tables.task else sa.literal(states.SUCCESS)
        query = sa.select(sa.type_coerce(column, _RAW)).where(match, self._live(table, time.time()))
        state = self._run(lambda c: c.execute(query).scalar(), atomic=False)
        return state if isinstance(state, str) else None

    def _poll(self, task_id: str) -> bytes | None:
        """The record when ready, in one query that reads no record bytes before that."""
        table, match = self._where(task_id)
        if table is not self.tables.task:
            return self.get(task_id)
        ready = table.c.status.in_(_READY)
        query = sa.select(
            sa.type_coerce(ready, _RAW), sa.type_coerce(sa.case((ready, table.c.payload)), _RAW)
        ).where(match, self._live(table, time.time()))
        row = self._run(lambda c: c.execute(query).first(), atomic=False)
        if row is None or not row[0]:
            return None
        # A ready row without a payload is one Celery wrote: read it the long way.
        return _as_bytes(row[1]) if row[1] is not None else self.get(task_id)

    def wait(self, task_id: str, timeout_s: float | None, interval_s: float = 0.05) -> bytes | None:
        return poll_until(
            lambda: self._poll(task_id), signal_for(self.url, "sql-results"), timeout_s, interval_s
        )

    def forget(self, task_id: str) -> None:
        table, match = self._where(task_id)
        self._run(lambda c: c.execute(sa.delete(table).where(match)), atomic=False)

    # -- chord counters ----------------------------------------------------------------------

    def incr(self, key: str, amount: int, expires_s: float | None) -> int:
        counter = self.tables.counter

        def bump(c: sa.Connection) -> int:
            # The clock is read here, after any table creation and retry, not at the call.
            now = time.time()
            until = now + expires_s if expires_s else None
            row = {"key": key, "value": amount, "expires_at": until}
            made = incr_statement(c.dialect.name, counter, now)
            if made is None:
                return self._store.incr_portable(c, row, now)
            stmt, returns = made
            result = c.execute(stmt, row)
            if returns:
                return int(result.scalar_one())
            query = sa.select(counter.c.value).where(counter.c.key == key)
            return int(c.execute(query).scalar_one())

        # Not repeated after a dropped connection: the first try may have counted.
        # One upsert on PostgreSQL and SQLite; MySQL's two statements keep their transaction.
        return self._run(bump, repeatable=False, atomic=False)

    def delete_counter(self, key: str) -> None:
        counter = self.tables.counter
        self._run(
            lambda c: c.execute(sa.delete(counter).where(counter.c.key == key)), atomic=False
        )

    def cleanup(self) -> int:
        now = time.time()

        def delete(c: sa.Connection) -> int:
            removed = 0
            for table in (self.tables.task, self.tables.group, self.tables.counter):
                expired = sa.and_(table.c.expires_at.is_not(None), table.c.expires_at <= now)
                count = c.execute(sa.delete(table).where(expired)).rowcount
                # Counters are chord bookkeeping, not records: only results are counted.
                removed += count if table is not self.tables.counter else 0
            return removed

        return self._run(delete)

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None and self._pid == PROCESS.pid:
            engine.dispose()


def _extra_for(url: str) -> str:
    if url.startswith("postgres"):
        return "postgres"
    return "mysql" if url.startswith(("mysql", "mariadb")) else "sql"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _is_deadlock(exc: sa_exc.DBAPIError) -> bool:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in ("40P01", "40001"):
        return True
    args = getattr(orig, "args", ())
    # MySQL/MariaDB: 1213 deadlock, 1205 lock wait timeout; SQLite: a busy database.
    if args and args[0] in (1213, 1205):
        return True
    return "database is locked" in str(orig)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers work beside the writer; the busy timeout waits for a lock instead of
    # failing at once.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


__all__ = ["SQLBackend"]
