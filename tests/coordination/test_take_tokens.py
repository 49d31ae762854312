"""The token buckets of the coordination store contract (``CoordinationStore.take_tokens``,
global rate limits), run against every store in STORE_KINDS. Time only bounds from above
what a bucket may grant, or is waited for with "eventually"."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from celeriac.coordination import CoordinationStore
from celeriac.coordination.base import take_from_bucket
from celeriac.coordination.memory import MemoryCoordination
from tests.coordination.conftest import StoreFactory

EVENTUALLY_S = 5.0
#: a rate so low that no token comes back within a test
NO_REFILL_PER_S = 0.001


def _key() -> str:
    return f"task:{uuid.uuid4().hex}"


def test_a_new_bucket_is_full_and_grants_whole_tokens_up_to_its_capacity(
    store: CoordinationStore,
) -> None:
    key = _key()
    granted, wait_s = store.take_tokens(key, NO_REFILL_PER_S, 3, 5)
    assert granted == 3
    assert wait_s > 100  # a thousand seconds a token, less what refilled meanwhile
    assert store.take_tokens(key, NO_REFILL_PER_S, 3, 1)[0] == 0


def test_wait_is_zero_while_a_token_is_left(store: CoordinationStore) -> None:
    key = _key()
    assert store.take_tokens(key, NO_REFILL_PER_S, 2, 1) == (1, 0.0)
    granted, wait_s = store.take_tokens(key, NO_REFILL_PER_S, 2, 1)
    assert granted == 1 and wait_s > 100


def test_asking_for_nothing_or_less_than_a_token_grants_nothing(store: CoordinationStore) -> None:
    key = _key()
    assert store.take_tokens(key, NO_REFILL_PER_S, 1, 0)[0] == 0
    assert store.take_tokens(key, NO_REFILL_PER_S, 1, 1)[0] == 1
    assert store.take_tokens(key, NO_REFILL_PER_S, 1, 1)[0] == 0


def test_buckets_are_separate_by_key(store: CoordinationStore) -> None:
    one, two = _key(), _key()
    assert store.take_tokens(one, NO_REFILL_PER_S, 1, 1)[0] == 1
    assert store.take_tokens(one, NO_REFILL_PER_S, 1, 1)[0] == 0
    assert store.take_tokens(two, NO_REFILL_PER_S, 1, 1)[0] == 1


def test_a_bucket_refills_at_its_rate(store: CoordinationStore) -> None:
    key = _key()
    assert store.take_tokens(key, 20, 1, 1)[0] == 1
    granted, wait_s = store.take_tokens(key, 20, 1, 1)
    if not granted:  # unless 50 ms passed between the two calls
        assert 0 < wait_s <= 1 / 20
    deadline = time.monotonic() + EVENTUALLY_S
    while store.take_tokens(key, 20, 1, 1)[0] == 0:
        assert time.monotonic() < deadline, "the bucket never refilled"
        time.sleep(0.01)


def test_a_bucket_is_shared_by_every_store_of_its_url(make_store: StoreFactory) -> None:
    key = _key()
    one, two = make_store(), make_store()
    assert one.take_tokens(key, NO_REFILL_PER_S, 2, 1)[0] == 1
    assert two.take_tokens(key, NO_REFILL_PER_S, 2, 5)[0] == 1
    assert one.take_tokens(key, NO_REFILL_PER_S, 2, 1)[0] == 0


def test_racing_takers_never_get_more_than_the_bucket_holds(make_store: StoreFactory) -> None:
    key = _key()
    stores = [make_store() for _ in range(4)]
    got: list[int] = []
    start = threading.Barrier(len(stores))

    def race(store: CoordinationStore) -> None:
        start.wait()
        for _ in range(10):
            got.append(store.take_tokens(key, NO_REFILL_PER_S, 7, 1)[0])

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(got) == 7
    assert sorted(set(got)) == [0, 1]


def test_over_a_second_no_more_than_rate_times_time_plus_capacity(
    make_store: StoreFactory,
) -> None:
    """Two takers hammering one bucket for a while: what they got together is bounded by
    capacity + rate x elapsed (a slow machine only gets fewer)."""
    key = _key()
    rate_per_s, capacity = 10.0, 2.0
    stores = [make_store() for _ in range(2)]
    got: list[int] = []
    begun = time.monotonic()

    def take(store: CoordinationStore) -> None:
        while time.monotonic() - begun < 1.0:
            got.append(store.take_tokens(key, rate_per_s, capacity, 3)[0])
            time.sleep(0.002)

    threads = [threading.Thread(target=take, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed_s = time.monotonic() - begun
    assert sum(got) <= capacity + rate_per_s * elapsed_s + 1  # + 1: clock granularity
    assert sum(got) >= capacity  # the full bucket at least


def test_the_bucket_step_refills_nothing_when_the_clock_goes_back() -> None:
    granted, left, wait_s = take_from_bucket(0.5, 100.0, 40.0, 1.0, 5.0, 1)
    assert (granted, left, wait_s) == (0, 0.5, 0.5)
    granted, left, wait_s = take_from_bucket(0.5, 100.0, 102.0, 1.0, 5.0, 3)
    assert (granted, left, wait_s) == (2, 0.5, 0.5)
    assert take_from_bucket(0.0, 0.0, 1e9, 1.0, 5.0, 10)[:2] == (5, 0.0)


def test_a_store_without_buckets_says_so() -> None:
    class Plain(MemoryCoordination):
        take_tokens = CoordinationStore.take_tokens

    with pytest.raises(NotImplementedError):
        Plain(f"memory://{uuid.uuid4().hex}").take_tokens("k", 1.0, 1.0, 1)
