"""``--autoscale=MAX,MIN`` (issue 11 item 5): the autoscaler's rules on a real threads pool,
the command line's reading of the option, and real worker processes that grow under a
backlog and shrink back after the keepalive."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from celeriac import Celery
from celeriac.brokers import memory as memory_broker
from celeriac.cli.main import main
from celeriac.worker import Worker
from celeriac.worker.autoscale import Autoscaler, parse_autoscale
from celeriac.worker.pools import create_pool
from celeriac.worker.pools.base import Pool
from tests.worker.support import start_worker, task_module, wait_until, worker_code
from tests.worker.test_pool_resize import drive


@pytest.fixture
def pool() -> Iterator[Pool]:
    url = f"memory://autoscale-{uuid.uuid4().hex}"
    app = Celery("t", broker=url, backend=url)
    threads = create_pool("threads", app, 1)
    threads.start()
    yield threads
    threads.stop(wait=True)
    app.close()
    memory_broker.reset(url)


def _scaler(pool: Pool, high: int, low: int, keepalive_s: float) -> Autoscaler:
    scaler = Autoscaler(pool, high, low, keepalive=keepalive_s)
    scaler.interval_s = 0.0  # look at every call
    return scaler


# -- the rules -------------------------------------------------------------------------------------
def test_grows_at_once_to_the_work_held_up_to_max(pool: Pool) -> None:
    scaler = _scaler(pool, 4, 1, keepalive_s=30)
    assert scaler.maybe_scale(0) is False
    assert pool.limit == 1
    assert scaler.maybe_scale(3) is True
    assert pool.limit == 3
    assert scaler.maybe_scale(50) is True
    assert pool.limit == 4, "never past max"
    assert scaler.maybe_scale(50) is False
    assert scaler.info() == {"max": 4, "min": 1, "current": 4, "qty": 50}


def test_shrinks_only_after_keepalive_of_idle_capacity(pool: Pool) -> None:
    scaler = _scaler(pool, 4, 2, keepalive_s=30)
    scaler.maybe_scale(4)
    for _ in range(3):
        assert scaler.maybe_scale(0) is False
    assert pool.limit == 4, "still within the keepalive"
    scaler.keepalive_s = 0.0  # idle since the first call: the keepalive is over now
    assert scaler.maybe_scale(0) is True
    assert pool.limit == 2, "down to min"
    assert scaler.maybe_scale(0) is False


def test_work_in_between_restarts_the_keepalive(pool: Pool) -> None:
    scaler = _scaler(pool, 4, 1, keepalive_s=0.0)
    scaler.maybe_scale(4)
    scaler.maybe_scale(0)  # idle since now
    scaler.maybe_scale(4)  # busy again: forgotten
    scaler.keepalive_s = 30
    scaler.maybe_scale(1)
    assert scaler.maybe_scale(1) is False
    assert pool.limit == 4


def test_min_zero_keeps_one_process(pool: Pool) -> None:
    scaler = _scaler(pool, 3, 0, keepalive_s=0.0)
    scaler.maybe_scale(3)
    scaler.maybe_scale(0)
    scaler.maybe_scale(0)
    assert pool.limit == 1


def test_the_look_is_rate_limited(pool: Pool) -> None:
    scaler = Autoscaler(pool, 4, 1, keepalive=30)
    scaler.interval_s = 3600.0
    scaler.maybe_scale(0)
    assert scaler.maybe_scale(4) is False, "the next look is not due yet"
    assert pool.limit == 1


def test_update_and_forced_scaling_move_the_bounds(pool: Pool) -> None:
    scaler = _scaler(pool, 4, 1, keepalive_s=30)
    assert scaler.update(6, 3) == (6, 3)
    assert pool.limit == 3, "raised to the new min at once"
    assert scaler.update(max=2) == (2, 3)
    assert pool.limit == 2, "lowered to the new max at once"
    scaler.force_scale_up(3)
    assert (pool.limit, scaler.max_concurrency) == (5, 5)
    scaler.force_scale_down(4)
    assert (pool.limit, scaler.min_concurrency) == (1, 1)
    scaler.force_scale_down(4)
    assert pool.limit == 1


def test_the_keepalive_comes_from_the_environment_as_in_celery(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOSCALE_KEEPALIVE", "2.5")
    assert Autoscaler(pool, 2).keepalive_s == 2.5
    monkeypatch.setenv("AUTOSCALE_KEEPALIVE", "soon")
    assert Autoscaler(pool, 2).keepalive_s == 30.0
    assert Autoscaler(pool, 2, keepalive=1).keepalive_s == 1.0


# -- the command line ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "bounds"), [("10,3", (10, 3)), ("3,10", (10, 3)), ("7", (7, 0)), (" 4 , 4 ", (4, 4))]
)
def test_autoscale_values_read_as_celery_reads_them(text: str, bounds: tuple[int, int]) -> None:
    assert parse_autoscale(text) == bounds


@pytest.mark.parametrize("value", ["abc", "1,2,3", "-1,4", "0", "4,x", ""])
def test_a_bad_autoscale_value_is_one_line_and_status_2(value: str) -> None:
    outcome = CliRunner().invoke(main, ["worker", f"--autoscale={value}"])
    assert outcome.exit_code == 2, outcome.output
    errors = [line for line in outcome.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert "--autoscale" in errors[0]


@pytest.mark.parametrize("value", ["0", "-5", "lots"])
def test_a_bad_memory_limit_is_status_2(value: str) -> None:
    outcome = CliRunner().invoke(main, ["worker", f"--max-memory-per-child={value}"])
    assert outcome.exit_code == 2, outcome.output
    assert "--max-memory-per-child" in outcome.output


# -- real workers --------------------------------------------------------------------------------
TASKS = textwrap.dedent(
    """
    import os, threading, time
    from celeriac import Celery

    app = Celery("scaled", broker=os.environ["SCALED_URL"])

    @app.task
    def nap(seconds):
        time.sleep(seconds)
        return [os.getpid(), threading.get_ident()]
    """
)


@pytest.fixture
def scaled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from task_module("scaled", TASKS, tmp_path, monkeypatch,
                           {"SCALED_URL": f"sqlite:///{tmp_path / 'broker.db'}"})


def _children(pid: int) -> int:
    """How many processes have ``pid`` as parent (Linux /proc)."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            count += 1
    return count


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts children in /proc")
def test_a_prefork_worker_grows_under_a_backlog_and_shrinks_when_idle(
    scaled: Any, tmp_path: Path
) -> None:
    proc = start_worker(tmp_path, worker_code("scaled", pool="prefork", autoscale=(4, 1)),
                        env={"AUTOSCALE_KEEPALIVE": "1"})
    try:
        wait_until(lambda: _children(proc.pid) == 1)
        results = [scaled.nap.delay(1.0) for _ in range(8)]
        wait_until(lambda: _children(proc.pid) == 4)
        values = [r.get(timeout=30) for r in results]
        wait_until(lambda: _children(proc.pid) == 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    log_text = (tmp_path / "worker.log").read_text()
    assert code == 0, log_text
    assert len({pid for pid, _ in values}) >= 2, "more than the first child ran tasks"
    assert "Traceback" not in log_text


@pytest.mark.slow
def test_threads_autoscale_and_remote_bounds_from_another_thread(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOSCALE_KEEPALIVE", "60")  # no shrink during the test
    url = f"memory://autoscale-{uuid.uuid4().hex}"
    app = Celery("t", broker=url, backend=url)

    @app.task
    def nap(seconds: float) -> int:
        time.sleep(seconds)
        return threading.get_ident()

    try:
        worker = Worker(app, pool="threads", autoscale=(3, 1), install_signal_handlers=False)
        assert worker.concurrency == 1, "starts at min"
        seen: dict[str, Any] = {}

        def control() -> None:
            wait_until(lambda: worker.autoscaler is not None)
            assert worker.autoscaler is not None
            results = [nap.delay(0.3) for _ in range(9)]
            wait_until(lambda: worker.concurrency == 3)
            seen["grown"] = [r.get(timeout=30) for r in results]
            seen["reply"] = worker.autoscale(5, 2)
            wait_until(lambda: worker.autoscaler is not None
                       and worker.autoscaler.info()["min"] == 2)
            seen["info"] = worker.autoscaler.info()
            seen["grow"] = worker.pool_grow(3)
            wait_until(lambda: worker.concurrency == 6)
            seen["after_grow"] = worker.autoscaler.info()

        assert drive(worker, control) == []
        assert len(set(seen["grown"])) >= 2
        assert seen["reply"] == "autoscale now max=5 min=2"
        assert seen["info"] == {"max": 5, "min": 2, "current": 3, "qty": 0}
        assert seen["grow"] == "pool will grow"
        assert seen["after_grow"] == {"max": 6, "min": 2, "current": 6, "qty": 0}, "max raised"
    finally:
        app.close()
        memory_broker.reset(url)
