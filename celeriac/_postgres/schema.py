"""The schema of the PostgreSQL broker and coordination store: ``migrations/NNNN_name.sql``,
applied in order and recorded in ``celeriac_schema_version`` (docs/decisions/0021)."""

from __future__ import annotations

import zlib
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql


def migrations() -> list[tuple[int, str]]:
    """The schema's migrations as ``(version, SQL)``, oldest first (``migrations/NNNN_*.sql``)."""
    found = []
    for entry in resources.files("celeriac._postgres").joinpath("migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: psycopg.Connection[Any], schema: str | None) -> int:
    """Bring the schema up to the newest migration; returns the version it is at.

    Several processes may start at once: the check is a plain read, and only when something is
    missing does one transaction take an advisory lock (per schema), read the version again,
    and apply what is still missing, so each migration runs exactly once."""
    wanted = migrations()
    latest = wanted[-1][0]
    try:
        row = conn.execute("SELECT max(version) FROM celeriac_schema_version").fetchone()
        if row is not None and row[0] is not None and row[0] >= latest:
            return int(row[0])
    except psycopg.errors.UndefinedTable:
        pass
    except psycopg.errors.InvalidSchemaName:
        pass
    lock_key = zlib.crc32(f"celeriac-migrate:{schema or ''}".encode())
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
        if schema:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS celeriac_schema_version ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        done = {v for (v,) in conn.execute("SELECT version FROM celeriac_schema_version")}
        for version, text in wanted:
            if version not in done:
                conn.execute(text.encode())
                conn.execute("INSERT INTO celeriac_schema_version (version) VALUES (%s)",
                             (version,))
    return latest
