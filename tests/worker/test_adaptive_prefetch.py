"""Adaptive prefetch (issue 15, item 4; celeriac/worker/prefetch.py, ADR 0026).

The policy's rules on their own, then two real worker processes on one queue: worker A holds a
long task with 63 short ones claimed behind it, worker B is idle. With the default (adaptive)
prefetch the 63 run on B while the long task still runs on A; with an explicit
``worker_prefetch_multiplier`` A keeps what its fixed window claimed, as Celery does.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac.worker.prefetch import (
    LONG_TASK_S,
    MAX_MULTIPLIER,
    MAX_WINDOW,
    START_MULTIPLIER,
    Prefetch,
    multiplier_for,
)
from tests.support.services import backend_beside, broker_url
from tests.support.workers import WorkerProcess
from tests.worker.support import task_module, wait_until

# -- the policy ----------------------------------------------------------------------------------


def test_window_starts_at_celerys_default_and_short_tasks_grow_it_to_the_cap() -> None:
    prefetch = Prefetch()
    assert prefetch.adaptive and prefetch.window(2) == 2 * START_MULTIPLIER
    changed = [prefetch.observe(0.00002) for _ in range(3)]
    assert changed == [True, False, False]
    assert prefetch.multiplier == MAX_MULTIPLIER == 64
    assert prefetch.window(1) == 64 and prefetch.window(2) == 128
    # the whole window is capped, whatever the pool's size
    assert prefetch.window(64) == MAX_WINDOW
    # never less than one message per slot
    assert prefetch.window(MAX_WINDOW * 2) == MAX_WINDOW * 2


def test_long_tasks_shrink_the_window_to_one_per_slot_and_short_ones_grow_it_back() -> None:
    prefetch = Prefetch()
    for _ in range(5):
        prefetch.observe(0.00001)
    assert prefetch.window(2) == 128
    assert prefetch.observe(10.0)  # one 10 s task is enough to stop reserving
    assert prefetch.multiplier == 1 and prefetch.window(2) == 2
    grown = []
    for _ in range(200):
        prefetch.observe(0.00001)
        grown.append(prefetch.multiplier)
    assert grown == sorted(grown) and grown[-1] == MAX_MULTIPLIER
    assert len(set(grown)) > 3  # it grows through the sizes in between, not in one jump


def test_the_reserve_is_about_twenty_ms_of_work_per_slot() -> None:
    assert multiplier_for(0.0) == MAX_MULTIPLIER
    assert multiplier_for(0.001) == 21  # 1 running + 20 reserved x 1 ms
    assert multiplier_for(0.005) == 5
    assert multiplier_for(0.02) == 2
    assert multiplier_for(0.021) == 1
    assert multiplier_for(3600.0) == 1


def test_give_back_rule_needs_every_slot_running_a_task_older_than_long_task_s() -> None:
    prefetch = Prefetch()
    prefetch.observe(0.00001)
    now = 1000.0
    # the most recent of the running tasks started less than LONG_TASK_S ago: keep the reserve
    assert not prefetch.hold_back(now, now - LONG_TASK_S / 2)
    assert not prefetch.held_back and prefetch.window(1) == 64
    assert prefetch.hold_back(now, now - LONG_TASK_S)
    # held back: no reserve at all (nothing is claimed) until a task finishes
    assert prefetch.held_back and prefetch.window(1) == 1 and prefetch.window(3) == 3
    assert prefetch.observe(0.00001)
    assert not prefetch.held_back and prefetch.window(1) == 64


def test_an_explicit_multiplier_never_changes() -> None:
    for given, window in ((4, 8), (1, 2), (0, 2), (200, 400)):
        prefetch = Prefetch(given)
        assert not prefetch.adaptive and prefetch.window(2) == window
        assert not prefetch.observe(0.00001) and not prefetch.observe(100.0)
        assert not prefetch.hold_back(1000.0, 0.0)
        assert prefetch.window(2) == window


# -- two workers on one queue ----------------------------------------------------------------

TASKS = textwrap.dedent(
    """
    import os, pathlib, time
    from celeriac import Celery

    app = Celery("adaptproj", broker=os.environ["ADAPT_URL"], backend=os.environ["ADAPT_BACKEND"])

    @app.task(bind=True)
    def short(self, i):
        return self.request.hostname

    @app.task(bind=True)
    def long(self, root):
        pathlib.Path(root, "long-started").touch()
        release = pathlib.Path(root, "release")
        deadline = time.monotonic() + 10.0
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.request.hostname
    """
)

A, B = "adapt-a@test", "adapt-b@test"
SHORT = 63


@pytest.fixture(params=["redis", "sqlite", "amqp"])
def proj(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with broker_url(request.param, tmp_path) as url:
        yield from task_module("adaptproj", TASKS, tmp_path, monkeypatch,
                               {"ADAPT_URL": url,
                                "ADAPT_BACKEND": backend_beside(request.param, url, tmp_path)})


def _prefetch_count(proj: Any, hostname: str) -> int:
    stats = proj.app.control.inspect([hostname], timeout=5).stats()
    assert stats and hostname in stats, stats
    return int(stats[hostname]["prefetch_count"])


def _a_holds_a_long_task_with_shorts_behind(proj: Any, tmp_path: Path, window: int
                                            ) -> tuple[Any, list[Any]]:
    """Warm worker A up on queue ``warm`` (its own) until its window is ``window``, queue the
    long task and the short ones on ``celery``, then have A consume ``celery``: one claim, as
    large as its window, takes them. Returns the long task's result and the short ones'."""
    warm = proj.short.delay_many([(i,) for i in range(300)], queue="warm")
    assert {r.get(timeout=30) for r in warm} == {A}
    assert _prefetch_count(proj, A) == window
    long = proj.long.delay(str(tmp_path))
    shorts = proj.short.delay_many([(i,) for i in range(SHORT)])
    replies = proj.app.control.add_consumer("celery", destination=[A], reply=True, timeout=5)
    assert replies and A in replies[0], replies
    wait_until(lambda: (tmp_path / "long-started").exists(), what="the long task started on A")
    return long, shorts


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["solo", "solo-early-ack-batch", "threads", "prefork"])
def test_shorts_behind_a_long_task_run_on_the_idle_worker_before_it_ends(
    proj: Any, tmp_path: Path, pool: str
) -> None:
    module = "adaptproj"
    if pool == "solo-early-ack-batch":
        # Up to 7 of the shorts are acked ahead with the long task: given back, they are
        # published again (an acked message is gone from the broker).
        (tmp_path / "adapteab.py").write_text(
            "import adaptproj\nadaptproj.app.conf.worker_early_ack_batch = 8\n"
            "from adaptproj import app\n")
        module, pool = "adapteab", "solo"
    options: dict[str, Any] = {"pool": pool, "concurrency": 1}
    with WorkerProcess(tmp_path, module, hostname=A, queues=["warm"], **options) as a:
        a.ready()
        long, shorts = _a_holds_a_long_task_with_shorts_behind(proj, tmp_path, 64)
        # A claimed them all at once...
        received = [line for line in a.output().splitlines()
                    if "adaptproj.short[" in line and " received" in line]
        ids = {r.id for r in shorts}
        assert len([line for line in received if any(i in line for i in ids)]) == SHORT, \
            a.output()[-3000:]
        with WorkerProcess(tmp_path, "adaptproj", hostname=B, **options) as b:
            b.ready()
            # ...and gave them back: all run on B, while the long task still runs on A
            assert [r.get(timeout=30) for r in shorts] == [B] * SHORT, a.output()[-3000:]
            assert not long.ready()
            (tmp_path / "release").touch()
            assert long.get(timeout=30) == A
            assert "gave 63 reserved message(s) back" in a.output()
            b.stop()
        assert a.stop() == 0


@pytest.mark.slow
def test_an_explicit_multiplier_keeps_celerys_fixed_window(proj: Any, tmp_path: Path) -> None:
    app_setting = "import adaptproj; adaptproj.app.conf.worker_prefetch_multiplier = 4"
    (tmp_path / "adaptfixed.py").write_text(f"{app_setting}\nfrom adaptproj import app\n")
    with WorkerProcess(tmp_path, "adaptfixed", hostname=A, queues=["warm"], pool="solo") as a:
        a.ready()
        # as before: slots x 4, whatever the tasks
        long, shorts = _a_holds_a_long_task_with_shorts_behind(proj, tmp_path, 4)
        with WorkerProcess(tmp_path, "adaptproj", hostname=B, pool="solo") as b:
            b.ready()
            # the three claimed with the long task wait for it on A; B runs the rest
            wait_until(lambda: sum(r.ready() for r in shorts) == SHORT - 3, timeout_s=30)
            waiting = [r for r in shorts if not r.ready()]
            assert len(waiting) == 3 and not long.ready()
            (tmp_path / "release").touch()
            assert long.get(timeout=30) == A
            assert [r.get(timeout=30) for r in waiting] == [A] * 3
            assert {r.get(timeout=30) for r in shorts if r not in waiting} == {B}
            assert "reserved message(s) back" not in a.output()
            b.stop()
        assert a.stop() == 0


@pytest.mark.slow
@pytest.mark.parametrize("proj", ["redis"], indirect=True)
def test_stats_report_the_adaptive_window(proj: Any, tmp_path: Path) -> None:
    with WorkerProcess(tmp_path, "adaptproj", hostname=A, pool="solo") as a:
        a.ready()
        assert _prefetch_count(proj, A) == START_MULTIPLIER  # nothing finished yet
        assert {r.get(timeout=30) for r in proj.short.delay_many([(i,) for i in range(50)])} \
            == {A}
        assert _prefetch_count(proj, A) == MAX_MULTIPLIER
        assert a.stop() == 0
