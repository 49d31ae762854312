"""``store_many_behind`` (what a solo worker sends before its next task starts) writes exactly
what ``store_many`` writes: the same keys and bytes, the side state key of a record whose
payload does not tell its state, the expiry, and a publish for ready records only."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from celeriac import states
from celeriac.backends import create_backend
from celeriac.backends.redis import RedisBackend
from celeriac.result_meta import build_meta, encode_meta


@pytest.fixture
def backend(backend_url: str) -> Iterator[RedisBackend]:
    made = create_backend(backend_url, {})
    assert isinstance(made, RedisBackend)
    yield made
    made.close()


def _until(predicate: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "the records never arrived"
        time.sleep(0.01)


def _records(tag: str) -> list[tuple[str, str, bytes]]:
    return [
        (f"{tag}-json", states.SUCCESS, encode_meta(build_meta(f"{tag}-json", states.SUCCESS, 4))),
        (f"{tag}-started", states.STARTED,
         encode_meta(build_meta(f"{tag}-started", states.STARTED, None))),
        (f"{tag}-raw", states.FAILURE, b"\x80not-json"),
    ]


def _written(raw: redis.Redis, prefix: str, tag: str) -> dict[str, tuple[bytes | None, bool]]:
    """Every key of ``tag``'s records under ``prefix``: value, and whether it expires."""
    out: dict[str, tuple[bytes | None, bool]] = {}
    for key in raw.scan_iter(match=f"{prefix}*{tag}-*"):
        name = key.decode()[len(prefix):].replace(f"{tag}-", "TAG-")
        out[name] = (raw.get(key), raw.pttl(key) > 0)
    return out


@pytest.mark.parametrize("expires_s", [None, 3600.0])
def test_behind_writes_what_store_many_writes(
    backend: RedisBackend, raw: redis.Redis, prefix: str, expires_s: float | None
) -> None:
    backend.store_many(_records("first"), expires_s)
    pubsub = raw.pubsub()
    try:
        names = ("json", "started", "raw")
        pubsub.subscribe(*(f"{prefix}celery-task-meta-second-{name}" for name in names))
        for _ in range(3):
            assert pubsub.get_message(timeout=1)["type"] == "subscribe"
        backend.store_many_behind(_records("second"), expires_s)
        _until(lambda: backend.get_state("second-raw") == states.FAILURE)
        published = []
        while (message := pubsub.get_message(timeout=0.2)) is not None:
            published.append(message["channel"].decode()[len(prefix):])
    finally:
        pubsub.close()
    stored_a, stored_b = _written(raw, prefix, "first"), _written(raw, prefix, "second")
    assert stored_b.keys() == stored_a.keys() and len(stored_b) == 4  # 3 records + 1 side key
    for key, (value, expires) in stored_a.items():
        assert stored_b[key][1] == expires == (expires_s is not None)
        if "json" not in key and "started" not in key:
            assert stored_b[key][0] == value
    assert backend.get_state("second-json") == states.SUCCESS
    assert backend.get_state("second-started") == states.STARTED
    # Ready records are published; STARTED is not.
    assert sorted(published) == ["celery-task-meta-second-json", "celery-task-meta-second-raw"]
