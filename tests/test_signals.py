"""Signals: connect/send/disconnect, sender filters, failing receivers, and the task signals
fired around a real task run."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery, signals
from celeriac.signals import Signal


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sender: Any = None, **kwargs: Any) -> str:
        self.calls.append({"sender": sender, **kwargs})
        return f"seen-{len(self.calls)}"


def test_connect_send_disconnect() -> None:
    signal = Signal("test_signal")
    receiver = Recorder()
    assert signal.connect(receiver) is receiver
    responses = signal.send(sender="me", value=1)
    assert responses == [(receiver, "seen-1")]
    assert receiver.calls == [{"sender": "me", "signal": signal, "value": 1}]
    assert signal.disconnect(receiver) is True
    assert signal.send(sender="me", value=2) == []
    assert len(receiver.calls) == 1
    assert signal.disconnect(receiver) is False


def test_connecting_twice_calls_once() -> None:
    signal = Signal("test_signal")
    receiver = Recorder()
    signal.connect(receiver)
    signal.connect(receiver)
    signal.send(sender=None)
    assert len(receiver.calls) == 1


def test_receivers_run_in_connection_order() -> None:
    signal = Signal("test_signal")
    order: list[str] = []
    signal.connect(lambda sender, **kw: order.append("first"))
    signal.connect(lambda sender, **kw: order.append("second"))
    signal.send(sender=None)
    assert order == ["first", "second"]


def test_decorator_form() -> None:
    signal = Signal("test_signal")
    seen: list[Any] = []

    @signal.connect
    def plain(sender: Any, **kwargs: Any) -> None:
        seen.append(("plain", sender))

    @signal.connect(sender="wanted")
    def filtered(sender: Any, **kwargs: Any) -> None:
        seen.append(("filtered", sender))

    assert callable(plain) and callable(filtered)
    signal.send(sender="other")
    signal.send(sender="wanted")
    assert seen == [("plain", "other"), ("plain", "wanted"), ("filtered", "wanted")]


def test_sender_filtering() -> None:
    signal = Signal("test_signal")
    sender_a, sender_b = object(), object()
    receiver = Recorder()
    signal.connect(receiver, sender=sender_a)
    signal.send(sender=sender_b)
    signal.send(sender=None)
    assert receiver.calls == []
    signal.send(sender=sender_a, x=1)
    assert receiver.calls == [{"sender": sender_a, "signal": signal, "x": 1}]


def test_sender_filter_by_task_name_matches_task_object() -> None:
    signal = Signal("test_signal")

    class FakeTask:
        name = "proj.tasks.add"

    receiver = Recorder()
    signal.connect(receiver, sender="proj.tasks.add")
    signal.send(sender=FakeTask())
    signal.send(sender="proj.tasks.mul")
    assert len(receiver.calls) == 1


def test_raising_receiver_is_logged_not_propagated(caplog: pytest.LogCaptureFixture) -> None:
    signal = Signal("fragile_signal")
    after = Recorder()

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver exploded")

    signal.connect(broken)
    signal.connect(after)
    with caplog.at_level(logging.ERROR, logger="celeriac.signals"):
        responses = signal.send(sender="s")
    assert len(after.calls) == 1
    assert responses[0][0] is broken
    assert isinstance(responses[0][1], RuntimeError)
    assert responses[1] == (after, "seen-1")
    records = [r for r in caplog.records if r.name == "celeriac.signals"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert "fragile_signal" in records[0].getMessage()
    assert "receiver exploded" in records[0].getMessage()
    assert records[0].exc_info is not None


def test_weak_receiver_is_dropped_when_collected() -> None:
    signal = Signal("test_signal")

    class Owner:
        def __init__(self) -> None:
            self.count = 0

        def on_signal(self, sender: Any, **kwargs: Any) -> None:
            self.count += 1

    owner = Owner()
    signal.connect(owner.on_signal, weak=True)
    signal.send(sender=None)
    assert owner.count == 1
    del owner
    gc.collect()
    assert signal.send(sender=None) == []


def test_weak_receiver_can_be_disconnected() -> None:
    signal = Signal("test_signal")

    class Owner:
        count = 0

        def on_signal(self, sender: Any, **kwargs: Any) -> None:
            self.count += 1

    owner = Owner()
    signal.connect(owner.on_signal, weak=True)
    assert signal.disconnect(owner.on_signal) is True
    signal.send(sender=None)
    assert owner.count == 0
    assert signal.receivers == []


def test_celery_signal_names_exist() -> None:
    for name in ("before_task_publish", "after_task_publish", "task_prerun", "task_postrun",
                 "task_success", "task_failure", "task_retry", "worker_ready",
                 "worker_process_init", "beat_init", "setup_logging"):
        signal = getattr(signals, name)
        assert isinstance(signal, Signal)
        assert signal.name == name


# -- task signals around a real task run ---------------------------------------------------------

@pytest.fixture
def sig_app() -> Iterator[Celery]:
    app = Celery("t", broker="memory://sig-test", backend="memory://sig-test")
    yield app
    app.close()


def _connect(*pairs: tuple[Signal, Recorder]) -> None:
    for signal, receiver in pairs:
        signal.connect(receiver)


def _disconnect(*pairs: tuple[Signal, Recorder]) -> None:
    for signal, receiver in pairs:
        signal.disconnect(receiver)


def test_task_signals_fire_around_successful_run(sig_app: Celery) -> None:
    order: list[str] = []

    @sig_app.task
    def add(x: int, y: int) -> int:
        order.append("run")
        return x + y

    prerun, postrun, success, failure = Recorder(), Recorder(), Recorder(), Recorder()
    pairs = [
        (signals.task_prerun, prerun),
        (signals.task_postrun, postrun),
        (signals.task_success, success),
        (signals.task_failure, failure),
    ]
    ordered = [
        (signals.task_prerun, lambda sender, **kw: order.append("prerun")),
        (signals.task_postrun, lambda sender, **kw: order.append("postrun")),
        (signals.task_success, lambda sender, **kw: order.append("success")),
    ]
    _connect(*pairs)
    for signal, fun in ordered:
        signal.connect(fun)
    try:
        result = add.apply((2, 3), task_id="sig-task-1")
    finally:
        _disconnect(*pairs)
        for signal, fun in ordered:
            signal.disconnect(fun)

    assert result.get() == 5
    assert order == ["prerun", "run", "success", "postrun"]
    (pre,) = prerun.calls
    assert (pre["sender"], pre["task_id"], pre["task"]) == (add, "sig-task-1", add)
    assert list(pre["args"]) == [2, 3] and pre["kwargs"] == {}
    (post,) = postrun.calls
    assert (post["task_id"], list(post["args"]), post["retval"], post["state"]) == (
        "sig-task-1", [2, 3], 5, "SUCCESS",
    )
    (succ,) = success.calls
    assert (succ["sender"], succ["result"]) == (add, 5)
    assert failure.calls == []


def test_task_failure_signal(sig_app: Celery) -> None:
    @sig_app.task
    def fail(x: int, *, why: str) -> None:
        raise ValueError(why)

    prerun, postrun, success, failure = Recorder(), Recorder(), Recorder(), Recorder()
    pairs = [
        (signals.task_prerun, prerun),
        (signals.task_postrun, postrun),
        (signals.task_success, success),
        (signals.task_failure, failure),
    ]
    _connect(*pairs)
    try:
        result = fail.apply((7,), {"why": "nope"}, task_id="sig-task-2", throw=False)
    finally:
        _disconnect(*pairs)

    assert result.state == "FAILURE"
    assert success.calls == []
    (failed,) = failure.calls
    assert failed["sender"] is fail
    assert failed["task_id"] == "sig-task-2"
    assert list(failed["args"]) == [7] and failed["kwargs"] == {"why": "nope"}
    assert isinstance(failed["exception"], ValueError)
    assert failed["exception"].args == ("nope",)
    assert failed["traceback"] is not None
    assert [c["task_id"] for c in prerun.calls] == ["sig-task-2"]
    (post,) = postrun.calls
    assert post["state"] == "FAILURE"
    assert isinstance(post["retval"], ValueError)


def test_task_signal_sender_filter_by_task(sig_app: Celery) -> None:
    @sig_app.task
    def one() -> int:
        return 1

    @sig_app.task
    def two() -> int:
        return 2

    receiver = Recorder()
    signals.task_success.connect(receiver, sender=two.name)
    try:
        one.apply()
        two.apply()
    finally:
        signals.task_success.disconnect(receiver)
    assert [c["result"] for c in receiver.calls] == [2]


def test_failing_task_signal_receiver_does_not_fail_the_task(
    sig_app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    @sig_app.task
    def add(x: int, y: int) -> int:
        return x + y

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("handler bug")

    signals.task_prerun.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="celeriac.signals"):
            result = add.apply((1, 2))
    finally:
        signals.task_prerun.disconnect(broken)
    assert result.state == "SUCCESS"
    assert result.get() == 3
    assert any("handler bug" in r.getMessage() for r in caplog.records)
