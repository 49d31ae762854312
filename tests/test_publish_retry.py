"""Publishing rides through a broken broker connection: delay(), apply_async(), send_task() and
bulk sends retry ``BrokerConnectionError`` with backoff for a bounded time (decision 0008)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from celeriac import Celery
from celeriac.app.sending import DEFAULT_RETRY_POLICY, RetryPolicy
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured, TransportError

FAST = {"interval_start": 0, "interval_step": 0.01, "interval_max": 0.02, "timeout": 2}


class Flaky:
    """Wraps a broker method: the next ``failures`` calls raise ``error`` without storing."""

    def __init__(self, real: Callable[..., None], failures: int,
                 error: Exception | None = None) -> None:
        self.real = real
        self.failures = failures
        self.error = error or BrokerConnectionError("Redis at somewhere is unreachable")
        self.calls = 0

    def __call__(self, *args: Any) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        self.real(*args)


def _flaky(app: Celery, method: str, failures: int, error: Exception | None = None) -> Flaky:
    broker = app.broker
    # The class's method, so a second wrapper never wraps the first.
    real = getattr(type(broker), method).__get__(broker)
    flaky = Flaky(real, failures, error)
    setattr(broker, method, flaky)
    return flaky


@pytest.fixture
def fast_app(app: Celery) -> Celery:
    app.conf.task_publish_retry_policy = dict(FAST)
    return app


def test_delay_rides_through_failures_and_stores_once(fast_app: Celery) -> None:
    @fast_app.task
    def add(x: int, y: int) -> int:
        return x + y

    flaky = _flaky(fast_app, "publish", failures=3)
    result = add.delay(1, 2)
    assert flaky.calls == 4
    assert fast_app.broker.queue_size("celery") == 1
    assert result.id


def test_broker_down_longer_than_the_bound_raises_about_then(fast_app: Celery) -> None:
    fast_app.conf.task_publish_retry_policy = {**FAST, "timeout": 0.5}
    flaky = _flaky(fast_app, "publish", failures=10**9)
    started = time.monotonic()
    with pytest.raises(BrokerConnectionError):
        fast_app.send_task("t.anything", (1,))
    elapsed_s = time.monotonic() - started
    assert 0.4 < elapsed_s < 5.0
    assert flaky.calls > 2
    assert fast_app.broker.queue_size("celery") == 0


def test_max_retries_stops_before_the_timeout(fast_app: Celery) -> None:
    fast_app.conf.task_publish_retry_policy = {**FAST, "max_retries": 2, "timeout": 60}
    flaky = _flaky(fast_app, "publish", failures=10**9)
    with pytest.raises(BrokerConnectionError):
        fast_app.send_task("t.anything")
    assert flaky.calls == 3


def test_retry_off_raises_at_once(fast_app: Celery) -> None:
    fast_app.conf.task_publish_retry = False
    flaky = _flaky(fast_app, "publish", failures=1)
    with pytest.raises(BrokerConnectionError):
        fast_app.send_task("t.anything")
    assert flaky.calls == 1


def test_call_options_override_the_app(fast_app: Celery) -> None:
    @fast_app.task
    def echo(x: int) -> int:
        return x

    flaky = _flaky(fast_app, "publish", failures=1)
    with pytest.raises(BrokerConnectionError):
        echo.apply_async((1,), retry=False)
    assert flaky.calls == 1

    flaky = _flaky(fast_app, "publish", failures=10**9)
    with pytest.raises(BrokerConnectionError):
        echo.apply_async((1,), retry_policy={"max_retries": 1})
    assert flaky.calls == 2

    fast_app.conf.task_publish_retry = False
    flaky = _flaky(fast_app, "publish", failures=1)
    echo.apply_async((1,), retry=True)
    assert flaky.calls == 2
    assert fast_app.broker.queue_size("celery") == 1


def test_other_transport_errors_are_not_retried(fast_app: Celery) -> None:
    flaky = _flaky(fast_app, "publish", failures=1, error=TransportError("WRONGTYPE"))
    with pytest.raises(TransportError):
        fast_app.send_task("t.anything")
    assert flaky.calls == 1


def test_bulk_send_retries_only_the_failed_batch(fast_app: Celery) -> None:
    @fast_app.task
    def echo(x: int) -> int:
        return x

    broker = fast_app.broker
    real = broker.publish_many
    calls: list[int] = []

    def second_batch_fails_twice(items: Any) -> None:
        items = list(items)
        calls.append(len(items))
        if len(calls) in (2, 3):
            raise BrokerConnectionError("connection reset")
        real(items)

    broker.publish_many = second_batch_fails_twice  # type: ignore[method-assign]
    results = fast_app.send_many(
        [(echo.name or "", (i,), None, None) for i in range(5)], chunk_size=2
    )
    assert len(results) == 5
    assert calls == [2, 2, 2, 2, 1]
    assert broker.queue_size("celery") == 5


def test_default_policy_bridges_several_seconds() -> None:
    policy = RetryPolicy.from_mapping(None)
    assert policy.max_retries is None
    assert policy.timeout_s >= 5
    app = Celery("defaults", broker="memory://defaults-policy")
    try:
        assert app.publish_settings().retry == policy
        assert app.conf.task_publish_retry_policy == DEFAULT_RETRY_POLICY
    finally:
        app.close()


def test_celery_policy_keeps_its_meaning_within_the_bound() -> None:
    policy = RetryPolicy.from_mapping(
        {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2,
         "retry_errors": None}
    )
    assert policy.max_retries == 3
    assert policy.interval_max_s == 0.2
    assert policy.timeout_s == DEFAULT_RETRY_POLICY["timeout"]


def test_unknown_policy_key_is_a_configuration_error(app: Celery) -> None:
    app.conf.task_publish_retry_policy = {"timout": 3}
    with pytest.raises(ImproperlyConfigured, match="timout"):
        app.send_task("t.anything")
