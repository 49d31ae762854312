"""Where the last runs are kept: the SQLite file by default, Redis when the broker is Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.beat.store import (
    EntryState,
    MemoryStore,
    RedisStore,
    SQLiteStore,
    schedule_path,
    store_for,
)
from tests.redis.support import SPARE_DB, plain_url

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REDIS_URL = plain_url(SPARE_DB)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [("celerybeat-schedule", "celerybeat-schedule.db"), ("beat.db", "beat.db"),
     ("state.sqlite3", "state.sqlite3"), ("x.SQLITE", "x.SQLITE"), ("a.b", "a.b.db")],
)
def test_schedule_path(filename: str, expected: str) -> None:
    assert schedule_path(filename) == os.path.abspath(expected)


def test_default_store_is_the_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = Celery("t", broker="sqlite:///b.db")
    store = store_for(app)
    assert isinstance(store, SQLiteStore)
    assert store.path == str(tmp_path / "celerybeat-schedule.db")
    store.save("e", EntryState(T0, 1, "fp"))
    store.close()
    assert (tmp_path / "celerybeat-schedule.db").exists()
    app.conf.beat_schedule_filename = "other"
    other = store_for(app)
    assert isinstance(other, SQLiteStore) and other.path.endswith("other.db")
    other.close()


def test_redis_is_chosen_for_a_redis_broker_or_backend() -> None:
    app = Celery("proj", broker=REDIS_URL)
    store = store_for(app, "celerybeat-schedule")
    assert isinstance(store, RedisStore)
    assert store.key == "celeriac:beat:proj:celerybeat-schedule"
    store.close()
    mixed = Celery("proj", broker="memory://x", backend=REDIS_URL)
    assert isinstance(store_for(mixed), RedisStore)


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:1/0?global_keyprefix=p:",
    "redis+socket:///tmp/nowhere.sock?global_keyprefix=p:",
    "unix:///tmp/nowhere.sock?global_keyprefix=p:",
    "sentinel://127.0.0.1:1/0?global_keyprefix=p:&master_name=m",
])
def test_any_redis_url_the_worker_takes_keeps_the_schedule_under_its_prefix(url: str) -> None:
    # Nothing connects here: the URL is only read, as the worker reads it (issue 14).
    app = Celery("proj", broker=url)
    store = store_for(app, "celerybeat-schedule")
    assert isinstance(store, RedisStore)
    assert store.key == "p:celeriac:beat:proj:celerybeat-schedule"
    store.close()


def test_memory_store() -> None:
    store = MemoryStore()
    store.save("e", EntryState(T0, 1, "fp"))
    assert store.load() == {"e": EntryState(T0, 1, "fp")}


def test_entry_state_text_round_trip() -> None:
    state = EntryState(T0 + timedelta(microseconds=5), 7, "fp|x")
    assert EntryState.loads(state.dumps()) == state


@pytest.fixture
def redis_store() -> Iterator[RedisStore]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        client.close()
        if IN_CI:
            pytest.fail(f"Redis is required in CI: {exc}")
        pytest.skip(f"no Redis server: {exc}")
    key = f"celeriac:beat:test:{uuid.uuid4().hex}"
    store = RedisStore(REDIS_URL, key)
    yield store
    client.delete(key)
    client.close()
    store.close()


@pytest.mark.redis
def test_redis_store_round_trip(redis_store: RedisStore) -> None:
    assert redis_store.load() == {}
    redis_store.save("e", EntryState(T0, 1, "fp"))
    redis_store.save("e", EntryState(T0 + timedelta(seconds=10), 2, "fp"))
    redis_store.save("f", EntryState(T0, 5, "other"))
    again = RedisStore(REDIS_URL, redis_store.key)
    assert again.load() == {
        "e": EntryState(T0 + timedelta(seconds=10), 2, "fp"),
        "f": EntryState(T0, 5, "other"),
    }
    again.close()


def test_redis_errors_become_transport_errors() -> None:
    from celeriac.exceptions import TransportError

    store = RedisStore("redis://127.0.0.1:1/0", "k")
    with pytest.raises(TransportError, match="could not read"):
        store.load()
    store.close()
