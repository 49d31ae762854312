"""The result backend contract (``celeriac.backends.base``), run against every backend in
BACKEND_KINDS. Timing assertions are only "not before" and "eventually"."""

from __future__ import annotations

import threading
import time

from celeriac import states
from celeriac.backends import ResultBackend
from tests.backends.conftest import BackendFactory

EVENTUALLY_S = 5.0


def later(delay_s: float, fn: object, *args: object) -> threading.Timer:
    timer = threading.Timer(delay_s, fn, args)  # type: ignore[arg-type]
    timer.start()
    return timer


def test_store_get_get_state(backend: ResultBackend) -> None:
    assert backend.get("t1") is None
    assert backend.get_state("t1") is None
    backend.store("t1", states.SUCCESS, b'{"result": 4}', None)
    assert backend.get("t1") == b'{"result": 4}'
    assert backend.get_state("t1") == states.SUCCESS


def test_store_replaces(backend: ResultBackend) -> None:
    backend.store("t1", states.STARTED, b"started", 60)
    backend.store("t1", states.FAILURE, b"\x00failed\xff", 60)
    assert backend.get("t1") == b"\x00failed\xff"
    assert backend.get_state("t1") == states.FAILURE


def test_store_many_and_get_many_order(backend: ResultBackend) -> None:
    backend.store_many([(f"t{i}", states.SUCCESS, f"r{i}".encode()) for i in range(10)], 60)
    backend.store_many([], 60)
    assert backend.get_state("t3") == states.SUCCESS
    wanted = ["t9", "missing", "t0", "t5", "t0"]
    assert backend.get_many(wanted) == [b"r9", None, b"r0", b"r5", b"r0"]
    assert backend.get_many([]) == []


def test_wait_returns_when_stored_from_another_thread(backend: ResultBackend) -> None:
    timer = later(0.1, backend.store, "t1", states.SUCCESS, b"done", None)
    try:
        assert backend.wait("t1", EVENTUALLY_S) == b"done"
    finally:
        timer.join()


def test_wait_from_another_backend_instance(make_backend: BackendFactory) -> None:
    writer, reader = make_backend(), make_backend()
    timer = later(0.1, writer.store, "t1", states.FAILURE, b"boom", None)
    try:
        assert reader.wait("t1", EVENTUALLY_S) == b"boom"
    finally:
        timer.join()


def test_wait_times_out(backend: ResultBackend) -> None:
    started = time.monotonic()
    assert backend.wait("never", 0.1) is None
    assert time.monotonic() - started >= 0.09


def test_wait_ignores_unready_states(backend: ResultBackend) -> None:
    backend.store("t1", states.STARTED, b"running", None)
    assert backend.wait("t1", 0.1) is None
    timers = [
        later(0.05, backend.store, "t1", states.RETRY, b"retrying", None),
        later(0.2, backend.store, "t1", states.SUCCESS, b"done", None),
    ]
    try:
        assert backend.wait("t1", EVENTUALLY_S) == b"done"
    finally:
        for timer in timers:
            timer.join()


def test_wait_returns_already_ready(backend: ResultBackend) -> None:
    backend.store("t1", states.REVOKED, b"revoked", None)
    assert backend.wait("t1", 0) == b"revoked"


def test_forget(backend: ResultBackend) -> None:
    backend.store("t1", states.SUCCESS, b"done", None)
    backend.forget("t1")
    backend.forget("never-stored")
    assert backend.get("t1") is None
    assert backend.get_state("t1") is None


def test_expiry(backend: ResultBackend) -> None:
    backend.store("short", states.SUCCESS, b"done", 0.2)
    backend.store("long", states.SUCCESS, b"kept", 60)
    assert backend.get("short") == b"done"
    deadline = time.monotonic() + EVENTUALLY_S
    while backend.get("short") is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend.get("short") is None
    assert backend.get_state("short") is None
    assert backend.get_many(["short", "long"]) == [None, b"kept"]
    assert backend.wait("short", 0.05) is None


def test_cleanup_counts_expired_records(backend: ResultBackend) -> None:
    backend.store_many([(f"t{i}", states.SUCCESS, b"x") for i in range(3)], 0.2)
    backend.store("kept", states.SUCCESS, b"kept", None)
    time.sleep(0.4)
    assert backend.cleanup() == 3
    assert backend.cleanup() == 0
    assert backend.get("kept") == b"kept"


def test_incr_is_atomic_across_threads(backend: ResultBackend) -> None:
    seen: list[list[int]] = [[] for _ in range(8)]

    def bump(out: list[int]) -> None:
        for _ in range(500):
            out.append(backend.incr("chord", 1, 60))

    threads = [threading.Thread(target=bump, args=(out,)) for out in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    values = [v for out in seen for v in out]
    assert sorted(values) == list(range(1, 4001))
    assert backend.incr("chord", 0, 60) == 4000


def test_incr_amounts_and_delete(backend: ResultBackend) -> None:
    assert backend.incr("k", 5, None) == 5
    assert backend.incr("k", -2, None) == 3
    assert backend.incr("other", 1, None) == 1
    backend.delete_counter("k")
    backend.delete_counter("never")
    assert backend.incr("k", 1, None) == 1


def test_incr_counter_expiry(backend: ResultBackend) -> None:
    assert backend.incr("k", 1, 0.2) == 1
    assert backend.incr("k", 1, 0.2) == 2
    time.sleep(0.4)
    assert backend.incr("k", 1, 0.2) == 1


def test_close_then_reuse(backend: ResultBackend) -> None:
    backend.store("t1", states.SUCCESS, b"done", None)
    backend.close()
    assert backend.get("t1") == b"done"
