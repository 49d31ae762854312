"""A signal handler takes no lock the interrupted code may hold.

The CI failure this guards: a prefork worker got a second Ctrl-C while its main thread was
inside ``threading.Event.set()`` (the end of its loop); the handler called ``Event.set()``
again, waited for the condition lock its own thread held, and the worker never exited.
"""

from __future__ import annotations

import logging
import signal
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac._utils.signal_relay import SignalRelay
from celeriac.worker import Worker
from celeriac.worker.worker import COLD, WARM
from tests.cli.workers import WorkerProcess


def _in_thread_holding(lock: threading.Lock, action: object) -> bool:
    """Run ``action`` in a thread that holds ``lock``, as a handler runs inside the code it
    interrupted; whether it returned within 3 s."""
    done = threading.Event()

    def run() -> None:
        with lock:
            action()  # type: ignore[operator]
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(3)


def test_the_relay_runs_reactions_in_order_off_the_calling_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = SignalRelay()
    event = threading.Event()
    seen: list[tuple[str, str]] = []
    try:
        def react(tag: str) -> None:
            seen.append((tag, threading.current_thread().name))

        def boom() -> None:
            raise RuntimeError("a reaction that raises")

        # call_soon while the event's own lock is held by the caller: it must not wait
        assert _in_thread_holding(
            event._cond,  # type: ignore[attr-defined]
            lambda: [relay.call_soon(lambda: react("a")), relay.call_soon(boom),
                     relay.call_soon(lambda: react("b")), relay.call_soon(event.set)],
        )
        assert event.wait(3)
        assert [tag for tag, _ in seen] == ["a", "b"]
        assert all(name == "celeriac-signals" for _, name in seen)
        assert "a reaction that raises" in caplog.text
    finally:
        relay.close()
        relay.close()


def test_a_worker_signal_while_its_thread_holds_the_stop_lock(app: Celery) -> None:
    worker = Worker(app, pool="solo", install_signal_handlers=False)
    worker._relay = SignalRelay()
    stop_lock = worker._stop_event._cond  # type: ignore[attr-defined]
    try:
        assert _in_thread_holding(stop_lock, lambda: worker._on_signal(signal.SIGINT, None))
        assert worker._shutdown == WARM
        assert worker._stop_event.wait(3)
        assert _in_thread_holding(stop_lock, lambda: worker._on_signal(signal.SIGINT, None))
        assert worker._shutdown == COLD
        # a later SIGTERM does not make a cold shutdown warm again
        assert _in_thread_holding(stop_lock, lambda: worker._on_signal(signal.SIGTERM, None))
        assert worker._shutdown == COLD
    finally:
        worker._relay.close()


def test_the_worker_still_says_what_each_signal_does(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(app, pool="solo", install_signal_handlers=False)
    worker._relay = SignalRelay()
    caplog.set_level(logging.WARNING, logger="celeriac.worker.worker")
    try:
        worker._on_signal(signal.SIGINT, None)
        worker._on_signal(signal.SIGINT, None)
        deadline = time.monotonic() + 3
        while "Cold shutdown (SIGINT)" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker._relay.close()
    assert "press Ctrl-C again to stop running tasks" in caplog.text
    assert "Cold shutdown (SIGINT)" in caplog.text


HELD_PROJECT = """
    import os, time
    from celeriac import Celery

    app = Celery({name!r}, broker={broker!r})

    @app.task
    def hold(flag_dir):
        open(os.path.join(flag_dir, "started"), "w").close()
        while True:
            time.sleep(0.05)
"""


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_two_quick_ctrl_c_always_end_the_worker(tmp_path: Path, pool: str) -> None:
    """A second SIGINT as soon as the first one's warning is out (the main thread is then
    leaving its loop), while a task runs that never ends: the worker exits every time (cold
    shutdown). Two signals sent at once would arrive as one: signals do not queue."""
    name = f"sig_{uuid.uuid4().hex[:8]}"
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(HELD_PROJECT.format(name=name, broker=broker)))
    import importlib
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module(name)
        for round_ in range(3):
            flag_dir = tmp_path / f"round{round_}"
            flag_dir.mkdir()
            with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", pool, "-c", "1",
                                          "-l", "info"]) as proc:
                proc.wait_for("ready.")
                module.hold.delay(str(flag_dir))
                deadline = time.monotonic() + 30
                while not (flag_dir / "started").exists():
                    assert time.monotonic() < deadline, proc.output()
                    time.sleep(0.02)
                proc.process.send_signal(signal.SIGINT)
                proc.wait_for("press Ctrl-C again", timeout_s=30)
                proc.process.send_signal(signal.SIGINT)
                assert proc.process.wait(30) is not None, proc.output()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
