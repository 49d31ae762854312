"""Where beat keeps each entry's last run, so a restarted beat neither repeats nor forgets runs.

* :class:`MemoryStore`: nothing survives the process (the plain ``Scheduler``).
* :class:`SQLiteStore`: a SQLite file named by ``beat_schedule_filename`` / ``-s`` (``.db`` is
  added unless the name ends in .db, .sqlite or .sqlite3): ``celerybeat-schedule.db`` by default.
* :class:`RedisStore`: one hash, ``<global_keyprefix>celeriac:beat:<app>:<schedule file
  name>``, field = entry name, when the broker (else the result backend) is Redis, so beats on
  several machines share it. The URL is read as the worker reads it (any Redis scheme, the
  transport options). ``redis`` is imported only then.

A stored state is the entry's last run time, its run count and a fingerprint of its schedule.
"""

from __future__ import annotations

import abc
import json
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celeriac._utils.sqlite import Connections
from celeriac.exceptions import ImproperlyConfigured, TransportError

__all__ = [
    "EntryState",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "ScheduleStore",
    "schedule_path",
    "store_for",
]

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
#: every URL scheme the Redis broker and backend accept (TLS, Unix socket, sentinel)
REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "unix", "sentinel")
SCHEMA = """
CREATE TABLE IF NOT EXISTS beat_entries (
    name TEXT PRIMARY KEY, last_run_at TEXT NOT NULL, total_run_count INTEGER NOT NULL,
    fingerprint TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class EntryState:
    """What survives a restart about one entry."""

    last_run_at: datetime
    total_run_count: int
    fingerprint: str

    def dumps(self) -> str:
        return json.dumps([self.last_run_at.isoformat(), self.total_run_count, self.fingerprint])

    @classmethod
    def loads(cls, text: str | bytes) -> EntryState:
        when, count, fingerprint = json.loads(text)
        return cls(datetime.fromisoformat(when), int(count), str(fingerprint))


class ScheduleStore(abc.ABC):
    """Entry name -> :class:`EntryState`."""

    #: where the state lives, for the log and the banner
    description = ""

    @abc.abstractmethod
    def load(self) -> dict[str, EntryState]:
        """Every stored state."""

    @abc.abstractmethod
    def save(self, name: str, state: EntryState) -> None:
        """Store ``state`` for entry ``name`` (durably before returning)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files and connections."""


class MemoryStore(ScheduleStore):
    description = "memory (not kept across restarts)"

    def __init__(self) -> None:
        self._states: dict[str, EntryState] = {}
        self._lock = threading.Lock()

    def load(self) -> dict[str, EntryState]:
        with self._lock:
            return dict(self._states)

    def save(self, name: str, state: EntryState) -> None:
        with self._lock:
            self._states[name] = state


class SQLiteStore(ScheduleStore):
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.description = f"sqlite file {self.path}"
        self._conns = Connections(self.path, SCHEMA, TransportError)

    def load(self) -> dict[str, EntryState]:
        try:
            rows = self._conns.run(
                lambda c: c.execute(
                    "SELECT name, last_run_at, total_run_count, fingerprint FROM beat_entries"
                ).fetchall()
            )
        except TransportError as exc:
            if isinstance(exc.__cause__, sqlite3.DatabaseError) and "not a database" in str(exc):
                raise ImproperlyConfigured(
                    f"{self.path} is not a celeriac schedule file (one written by Celery's beat?):"
                    " remove it, or choose another file with -s / beat_schedule_filename"
                ) from exc
            raise
        return {
            name: EntryState(datetime.fromisoformat(when), int(count), fingerprint)
            for name, when, count, fingerprint in rows
        }

    def save(self, name: str, state: EntryState) -> None:
        params = (name, state.last_run_at.isoformat(), state.total_run_count, state.fingerprint)
        self._conns.run(
            lambda c: c.execute(
                "INSERT INTO beat_entries (name, last_run_at, total_run_count, fingerprint)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " last_run_at = excluded.last_run_at,"
                " total_run_count = excluded.total_run_count,"
                " fingerprint = excluded.fingerprint",
                params,
            )
        )

    def close(self) -> None:
        self._conns.close()


class RedisStore(ScheduleStore):
    """One hash in the Redis the app's broker (or result backend) uses. The URL is read as
    the worker reads it (``global_keyprefix`` prefixes the key, sentinel and TLS URLs, the
    transport options), through the same connection layer."""

    def __init__(self, url: str, key: str, options: Mapping[str, Any] | None = None) -> None:
        try:
            from celeriac._redis.client import RedisConnection
        except ImportError as exc:
            raise ImproperlyConfigured(
                "Keeping beat's schedule in Redis needs the redis package:"
                " pip install 'celeriac[redis]'"
            ) from exc
        self._conn = RedisConnection(
            url, dict(options or {}), connection_error=TransportError,
            ssl_option_keys=("broker_use_ssl", "ssl"),
        )
        self.key = self._conn.key(key)
        self.description = f"redis hash {self.key}"

    def load(self) -> dict[str, EntryState]:
        try:
            with self._conn.errors:
                raw = self._conn.client.hgetall(self.key)
        except TransportError as exc:
            raise type(exc)(f"beat could not read its schedule: {exc}") from exc
        return {
            (name.decode() if isinstance(name, bytes) else str(name)): EntryState.loads(value)
            for name, value in raw.items()
        }

    def save(self, name: str, state: EntryState) -> None:
        try:
            with self._conn.errors:
                self._conn.client.hset(self.key, name, state.dumps())
        except TransportError as exc:
            raise type(exc)(f"beat could not save its schedule: {exc}") from exc

    def close(self) -> None:
        self._conn.close()


def schedule_path(filename: str) -> str:
    """The SQLite file for ``beat_schedule_filename``: ``.db`` added unless already there."""
    if not filename.lower().endswith(SQLITE_SUFFIXES):
        filename += ".db"
    return os.path.abspath(filename)


def _scheme(url: str | None) -> str:
    return (url or "").partition("://")[0].lower()


def store_for(app: Any, schedule_filename: str | None = None) -> ScheduleStore:
    """Redis when the broker (else the result backend) is Redis, else the SQLite file."""
    filename = schedule_filename or app.conf.beat_schedule_filename or "celerybeat-schedule"
    conf = app.conf
    on_broker = dict(conf.broker_transport_options or {})
    if conf.get("broker_use_ssl"):
        on_broker.setdefault("broker_use_ssl", conf["broker_use_ssl"])
    for url, options in ((app.broker_url, on_broker),
                         (app.result_backend_url, conf.result_backend_transport_options)):
        if _scheme(url) in REDIS_SCHEMES:
            key = f"celeriac:beat:{app.main or 'default'}:{os.path.basename(filename)}"
            return RedisStore(url, key, options)
    return SQLiteStore(schedule_path(filename))
