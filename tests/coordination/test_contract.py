"""The coordination store contract (``celeriac.coordination.base``), run against every store in
STORE_KINDS. Timing assertions are only "not before" and "eventually"."""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from celeriac.coordination import STORES, CoordinationStore, store_class
from celeriac.message import Envelope
from celeriac.protocol import REJECTED_BODY_MAX_BYTES, REJECTED_HEADERS_MAX_BYTES
from tests.brokers.conftest import envelope
from tests.coordination.conftest import StoreFactory

EVENTUALLY_S = 5.0


def _eventually(check: object) -> None:
    deadline = time.monotonic() + EVENTUALLY_S
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


def test_revoke_and_expiry(store: CoordinationStore) -> None:
    assert store.revoked(["a", "b"]) == set()
    store.revoke(["a", "b"], 60)
    store.revoke(["short"], 0.2)
    assert store.revoked(["a", "c", "short"]) == {"a", "short"}
    assert store.revoked([]) == set()
    _eventually(lambda: not store.revoked(["short"]))
    assert store.revoked(["a", "b", "short"]) == {"a", "b"}


def test_a_shorter_revoke_never_cuts_a_longer_one_short(store: CoordinationStore) -> None:
    store.revoke(["x"], 60)
    store.revoke(["x"], 0.1)
    time.sleep(0.3)
    assert store.revoked(["x"]) == {"x"}


def test_revoke_is_seen_by_another_store_instance(make_store: StoreFactory) -> None:
    make_store().revoke(["x"], 60)
    assert make_store().revoked(["x", "y"]) == {"x"}


def test_announce_workers_withdraw(store: CoordinationStore) -> None:
    assert store.workers() == []
    assert not store.is_announced("w1@host")
    store.announce("w2@host", {"pid": 2}, 0.2)
    store.announce("w1@host", {"pid": 1, "queues": ["q"]}, 60)
    seen = {w.hostname: w for w in store.workers()}
    assert [w.hostname for w in store.workers()] == ["w1@host", "w2@host"]
    assert dict(seen["w1@host"].info) == {"pid": 1, "queues": ["q"]}
    assert seen["w1@host"].last_seen_s <= time.time()
    assert store.is_announced("w1@host")
    store.announce("w1@host", {"pid": 1, "queues": ["q", "r"]}, 60)
    seen = {w.hostname: w for w in store.workers()}
    assert seen["w1@host"].info["queues"] == ["q", "r"]
    _eventually(lambda: len(store.workers()) == 1)
    assert [w.hostname for w in store.workers()] == ["w1@host"]
    assert not store.is_announced("w2@host")
    store.withdraw("w1@host")
    store.withdraw("never-announced")
    assert store.workers() == []
    assert not store.is_announced("w1@host")


def test_add_once_takes_a_key_once_until_it_expires(make_store: StoreFactory) -> None:
    one, two = make_store(), make_store()
    assert one.add_once("run-1", 0.3)
    assert not two.add_once("run-1", 60)
    assert not one.add_once("run-1", 60)
    assert two.add_once("run-2", 60)
    _eventually(lambda: two.add_once("run-1", 60))
    assert not one.add_once("run-1", 60)


def test_add_once_has_one_winner_among_racing_threads(make_store: StoreFactory) -> None:
    stores = [make_store() for _ in range(4)]
    wins: list[bool] = []
    start = threading.Barrier(len(stores))

    def race(store: CoordinationStore) -> None:
        start.wait()
        wins.append(store.add_once("contended", 60))

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False, False, False, True]


def test_rejected_log_keeps_order_reason_and_limit(store: CoordinationStore) -> None:
    assert store.rejected() == []
    store.record_rejected([("q", envelope("bad", body=b"not json"), "cannot decode")])
    store.record_rejected([("q", envelope("worse"), "unknown task"), ("r", envelope("x"), "x")])
    records = store.rejected()
    assert [(env.task_id, reason) for env, reason in records] == [
        ("bad", "cannot decode"), ("worse", "unknown task"), ("x", "x"),
    ]
    assert records[0][0].body == b"not json"
    assert [env.task_id for env, _ in store.rejected(limit=1)] == ["x"]
    assert store.rejected(limit=0) == []
    store.record_rejected([])
    assert len(store.rejected()) == 3


def test_rejected_records_are_bounded(store: CoordinationStore) -> None:
    big = envelope("big", body=b"b" * (REJECTED_BODY_MAX_BYTES * 8), argsrepr="a" * 3_000_000)
    store.record_rejected([("q", big, "no good " * 5_000)])
    [(env, reason)] = store.rejected()
    assert len(env.body) == REJECTED_BODY_MAX_BYTES
    assert "truncated" in reason and reason.startswith("no good")
    assert len(orjson.dumps(dict(env.headers))) <= REJECTED_HEADERS_MAX_BYTES


def test_rejected_log_is_capped(
    store: CoordinationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = __import__(type(store).__module__, fromlist=["MAX_REJECTED"])
    monkeypatch.setattr(module, "MAX_REJECTED", 10)
    store.record_rejected([("q", envelope(f"t{i}"), "bad") for i in range(30)])
    assert [env.task_id for env, _ in store.rejected()] == [f"t{i}" for i in range(20, 30)]


def test_close_then_reuse(store: CoordinationStore) -> None:
    store.revoke(["x"], 60)
    store.close()
    assert store.revoked(["x"]) == {"x"}


def test_registered_schemes_match_the_classes() -> None:
    for scheme, plugin in STORES.builtins.items():
        assert scheme in store_class(f"{scheme}://x").schemes, plugin.target


def test_an_unreadable_envelope_in_the_log_is_shown_bounded(store: CoordinationStore) -> None:
    odd = Envelope(b"\xff" * 10, {"id": "odd"}, {}, "application/x-weird", "binary")
    store.record_rejected([("q", odd, "weird")])
    [(env, reason)] = store.rejected()
    assert env.body == b"\xff" * 10 and reason == "weird"
