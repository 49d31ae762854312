"""Table creation and the writes of the ``db+`` result backend that differ by dialect.

Rules: tables are created once per process, with ``CREATE TABLE IF NOT EXISTS`` semantics that
survive two processes creating them at once; a task or group table Celery created gains the
nullable columns it lacks (``payload``, ``expires_at``, the ``result_extended`` ones), so the
backend can share Celery's tables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from celeriac.backends.sql.schema import Tables, upsert, writer_table
from celeriac.exceptions import TransportError


class SQLStore:
    def __init__(self, tables: Tables, error: Callable[[BaseException], TransportError]) -> None:
        self.tables = tables
        self._error = error
        self._statements: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def create_tables(self, engine: sa.Engine) -> None:
        with self._lock:
            for attempt in range(10):
                try:
                    self._create(engine)
                    return
                except sa_exc.DBAPIError as exc:
                    # Another process created a table, sequence, index or column between our
                    # look and our CREATE/ALTER: look again (its work is now there).
                    text = str(exc.orig).lower()
                    if attempt == 9 or ("already exists" not in text and "duplicate" not in text):
                        raise
                    time.sleep(0.01 * (attempt + 1))

    def _create(self, engine: sa.Engine) -> None:
        self.tables.metadata.create_all(engine, checkfirst=True)
        with engine.begin() as conn:
            for table in (self.tables.task, self.tables.group):
                # A table made elsewhere may lack the sequence our inserts draw ids from.
                sequence = table.c.id.default
                if isinstance(sequence, sa.Sequence) and conn.dialect.supports_sequences:
                    sequence.create(conn, checkfirst=True)
            inspector = sa.inspect(conn)
            for table in (self.tables.task, self.tables.group):
                found = {c["name"]: c for c in inspector.get_columns(table.name, table.schema)}
                for column in table.columns:
                    if column.name not in found and column.nullable:
                        self._add_column(conn, table, column)
                sequence = table.c.id.default
                if (
                    isinstance(sequence, sa.Sequence)
                    and conn.dialect.supports_sequences
                    and not found["id"].get("default")
                ):
                    self._id_default(conn, table, sequence)

    @staticmethod
    def _id_default(conn: sa.Connection, table: sa.Table, sequence: sa.Sequence) -> None:
        # Our inserts leave the id to the column default (see schema.writer_table); Celery's
        # ORM passes nextval itself, so its tables have none.
        preparer = conn.dialect.identifier_preparer
        name = preparer.format_sequence(sequence)
        nextval = f"nextval('{name}')" if conn.dialect.name == "postgresql" else f"NEXTVAL({name})"
        conn.execute(
            sa.text(
                f"ALTER TABLE {preparer.format_table(table)} ALTER COLUMN"
                f" {preparer.quote('id')} SET DEFAULT {nextval}"
            )
        )

    @staticmethod
    def _add_column(conn: sa.Connection, table: sa.Table, column: sa.Column[Any]) -> None:
        preparer = conn.dialect.identifier_preparer
        column_type = column.type.compile(dialect=conn.dialect)
        conn.execute(
            sa.text(
                f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN"
                f" {preparer.quote(column.name)} {column_type}"
            )
        )

    def upsert_rows(
        self, conn: sa.Connection, dialect: str, table: sa.Table, key: str,
        rows: list[dict[str, Any]],
    ) -> None:
        """Insert ``rows`` (distinct keys, same columns each), replacing rows with their keys."""
        cache_key = (dialect, table.name)
        stmt = self._statements.get(cache_key)
        if stmt is None:
            stmt = upsert(dialect, writer_table(table), key, [c for c in rows[0] if c != key])
            self._statements[cache_key] = stmt
        if stmt is not None:
            conn.execute(stmt, rows)
            return
        # A dialect without upsert: update what exists, insert the rest, in this transaction.
        column = table.c[key]
        for row in rows:
            values = {c: v for c, v in row.items() if c != key}
            updated = conn.execute(sa.update(table).where(column == row[key]).values(values))
            if updated.rowcount == 0:
                conn.execute(sa.insert(table).values(row))

    def incr_portable(self, conn: sa.Connection, row: dict[str, Any], now: float) -> int:
        """The counter upsert for a dialect without one: lock the row, then update or insert
        (a concurrent first insert fails the transaction, which the caller runs again)."""
        counter = self.tables.counter
        current = conn.execute(
            sa.select(counter.c.value, counter.c.expires_at)
            .where(counter.c.key == row["key"])
            .with_for_update()
        ).first()
        if current is None:
            conn.execute(sa.insert(counter).values(row))
            return int(row["value"])
        expired = current.expires_at is not None and current.expires_at <= now
        value = int(row["value"]) + (0 if expired else int(current.value))
        conn.execute(
            sa.update(counter)
            .where(counter.c.key == row["key"])
            .values(value=value, expires_at=row["expires_at"])
        )
        return value
