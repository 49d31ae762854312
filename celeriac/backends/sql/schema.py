"""Tables, URLs and per-dialect statements of the ``db+...`` result backend.

Layout (docs/decisions/0022): Celery's two tables, so tools that read Celery's database
backend find the rows where they expect them, plus one counter table for chords.

* task table (``database_table_names['task']``, default ``celery_taskmeta``): Celery's columns
  ``id, task_id, status, result, date_done, traceback, children, name, args, kwargs, worker,
  retries, queue, stamps`` (Celery 5.7's extended layout) plus celeriac's ``payload`` (the
  encoded record, exactly as stored: what celeriac reads back) and ``expires_at`` (Unix
  seconds; NULL: kept). ``status`` is the record's state, ``date_done`` the time of the last
  store (naive UTC, as Celery writes it); the other Celery columns are a copy of a JSON record
  (see :mod:`.columns`), so Celery processes and SQL tools read values too.
* group table (``database_table_names['group']``, default ``celery_tasksetmeta``): Celery's
  ``id, taskset_id, result, date_done`` plus ``payload`` and ``expires_at``; records stored
  under ``celery-taskset-meta-<id>`` (``GroupResult.save``) live here as ``taskset_id = <id>``.
* counter table (``database_table_names['counter']``, default ``celeriac_chordcounter``):
  ``key, value, expires_at``, the chord primitive.

Ids come from Celery's named sequences (``task_id_sequence``, ``taskset_id_sequence``, in the
table's schema) where the database has sequences (PostgreSQL, MariaDB), as in Celery's own
tables, so a Celery process can insert into these tables too and celeriac into Celery's; the
sequence is also the column's default (set on first use), which celeriac's inserts rely on.
Elsewhere ids autoincrement.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from celeriac._utils.urls import mask_url
from celeriac.exceptions import ImproperlyConfigured

GROUP_PREFIX = "celery-taskset-meta-"
DEFAULT_NAMES = {
    "task": "celery_taskmeta",
    "group": "celery_tasksetmeta",
    "counter": "celeriac_chordcounter",
}

# MySQL's BLOB holds 64 KiB and TEXT 64 KiB: results need the LONG types there.
_BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
_KEY_LENGTH = 155  # Celery's task_id/taskset_id width


@dataclass(frozen=True)
class Tables:
    """The backend's tables; public so a broker on the same database can write results in its
    own transaction (``task``/``group`` rows as :meth:`SQLBackend.rows` builds them)."""

    metadata: sa.MetaData
    task: sa.Table
    group: sa.Table
    counter: sa.Table


def build_tables(
    names: Mapping[str, str] | None, schemas: Mapping[str, str] | None
) -> Tables:
    """Tables named as ``database_table_names`` and placed as ``database_table_schemas`` say
    (keys ``task``, ``group`` and celeriac's ``counter``; the counter table defaults to the
    task table's schema)."""
    names = {**DEFAULT_NAMES, **(names or {})}
    schemas = dict(schemas or {})
    schemas.setdefault("counter", schemas.get("task", ""))
    for key in names.keys() - DEFAULT_NAMES.keys():
        raise ImproperlyConfigured(
            f"database_table_names: unknown table {key!r} (known: task, group, counter)"
        )
    metadata = sa.MetaData()
    task_ids = sa.Sequence("task_id_sequence", schema=schemas.get("task") or None)
    group_ids = sa.Sequence("taskset_id_sequence", schema=schemas.get("group") or None)
    task = sa.Table(
        names["task"],
        metadata,
        _id_column(task_ids),
        sa.Column("task_id", sa.String(_KEY_LENGTH), unique=True, nullable=False),
        sa.Column("status", sa.String(50)),
        sa.Column("result", _BLOB),
        sa.Column("date_done", sa.DateTime, index=True),
        sa.Column("traceback", _TEXT),
        sa.Column("children", _BLOB),
        sa.Column("name", sa.String(_KEY_LENGTH)),
        sa.Column("args", _BLOB),
        sa.Column("kwargs", _BLOB),
        sa.Column("worker", sa.String(_KEY_LENGTH)),
        sa.Column("retries", sa.Integer),
        sa.Column("queue", sa.String(_KEY_LENGTH)),
        sa.Column("stamps", _BLOB),
        sa.Column("payload", _BLOB),
        sa.Column("expires_at", sa.Double, index=True),
        schema=schemas.get("task") or None,
    )
    group = sa.Table(
        names["group"],
        metadata,
        _id_column(group_ids),
        sa.Column("taskset_id", sa.String(_KEY_LENGTH), unique=True, nullable=False),
        sa.Column("result", _BLOB),
        sa.Column("date_done", sa.DateTime),
        sa.Column("payload", _BLOB),
        sa.Column("expires_at", sa.Double, index=True),
        schema=schemas.get("group") or None,
    )
    counter = sa.Table(
        names["counter"],
        metadata,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Double),
        schema=schemas.get("counter") or None,
    )
    return Tables(metadata, task, group, counter)


def _id_column(sequence: sa.Sequence) -> sa.Column[int]:
    return sa.Column("id", sa.Integer, sequence, primary_key=True, autoincrement=True)


def writer_table(table: sa.Table) -> sa.Table:
    """``table`` without its ``id`` column, for inserts: the database's default gives the id
    (the sequence's ``nextval`` where there is one), so an ``executemany`` has placeholders
    only and PyMySQL sends it as one multi-row INSERT instead of one statement per row."""
    columns = [sa.Column(c.name, c.type) for c in table.columns if c.name != "id"]
    key = "task_id" if "task_id" in table.c else "taskset_id"
    for column in columns:
        if column.name == key:
            column.unique = True
    return sa.Table(table.name, sa.MetaData(), *columns, schema=table.schema)


# -- URLs --------------------------------------------------------------------------------------

#: The SQLAlchemy dialect+driver each celeriac scheme means; None: decided by what is installed.
_DRIVERS: dict[str, str | None] = {
    "postgresql": None,
    "postgres": None,
    "postgresql+psycopg2": None,
    "postgresql+psycopg": "postgresql+psycopg",
    "mysql": None,
    "mysql+pymysql": "mysql+pymysql",
    "mysql+mysqldb": "mysql+mysqldb",
    "mariadb+pymysql": "mariadb+pymysql",
    "sqlite": "sqlite",
}
SCHEMES = tuple(f"db+{name}" for name in _DRIVERS)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL behind a ``db+`` URL.

    ``postgresql``/``postgres``/``postgresql+psycopg2`` use psycopg2 when it is installed (what
    SQLAlchemy and so Celery would use) and psycopg 3 otherwise; ``mysql`` uses MySQLdb
    (mysqlclient) when installed and PyMySQL otherwise.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.lower().startswith("db+"):
        raise ImproperlyConfigured(f"not a database result backend URL: {mask_url(url)!r}")
    name = scheme[3:].lower()
    if name not in _DRIVERS:
        known = ", ".join(SCHEMES)
        raise ImproperlyConfigured(f"unknown database URL scheme {scheme!r} (known: {known})")
    driver = _DRIVERS[name]
    if name == "sqlite" and rest.split("?", 1)[0] in ("", "/", "/:memory:"):
        raise ImproperlyConfigured(
            f"{url!r}: an in-memory SQLite database lives in one connection, so workers and "
            "callers would never see each other's results; name a file "
            "(db+sqlite:///results.db) or use memory:// in tests"
        )
    if driver is None and name.startswith("postgres"):
        driver = "postgresql+psycopg2" if _installed("psycopg2") else "postgresql+psycopg"
    elif driver is None:
        driver = "mysql+mysqldb" if _installed("MySQLdb") else "mysql+pymysql"
    return f"{driver}://{rest}"


# -- statements that differ by dialect ---------------------------------------------------------


def upsert(dialect: str, table: sa.Table, key: str, columns: Sequence[str]) -> Any | None:
    """An INSERT that sets ``columns`` of the row with the same ``key`` when there is one (the
    others keep their values), or None when the dialect has no such statement."""
    if dialect in ("postgresql", "sqlite"):
        module: Any = postgresql if dialect == "postgresql" else sqlite
        stmt = module.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=[key], set_={c: stmt.excluded[c] for c in columns}
        )
    if dialect in ("mysql", "mariadb"):
        my = mysql.insert(table)
        return my.on_duplicate_key_update({c: my.inserted[c] for c in columns})
    return None


def incr_statement(dialect: str, counter: sa.Table, now: float) -> tuple[Any, bool] | None:
    """Upsert adding ``value`` to the counter (restarting an expired one from zero) and whether
    it RETURNs the new value (PostgreSQL, SQLite); on MySQL the caller reads the row, which the
    upsert locked, in the same transaction. None when the dialect has no upsert."""
    expired = sa.and_(counter.c.expires_at.is_not(None), counter.c.expires_at <= now)
    if dialect in ("postgresql", "sqlite"):
        module: Any = postgresql if dialect == "postgresql" else sqlite
        stmt = module.insert(counter)
        added = sa.case(
            (expired, stmt.excluded.value), else_=counter.c.value + stmt.excluded.value
        )
        returning = stmt.on_conflict_do_update(
            index_elements=["key"], set_={"value": added, "expires_at": stmt.excluded.expires_at}
        ).returning(counter.c.value)
        return returning, True
    if dialect in ("mysql", "mariadb"):
        my = mysql.insert(counter)
        added = sa.case((expired, my.inserted.value), else_=counter.c.value + my.inserted.value)
        # MySQL assigns left to right, each seeing the previous ones: value before expires_at.
        ordered = [("value", added), ("expires_at", my.inserted.expires_at)]
        return my.on_duplicate_key_update(ordered), False
    return None
