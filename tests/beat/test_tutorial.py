"""docs/periodic-tasks.md runs as it shows: its ``tasks.py`` under a simulated clock, then a
worker running what beat sent."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from celeriac.beat import Scheduler
from celeriac.beat.service import prepare_app
from celeriac.worker import Worker

DOC = Path(__file__).resolve().parents[2] / "docs" / "periodic-tasks.md"
SHANGHAI = ZoneInfo("Asia/Shanghai")
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def python_blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


@pytest.fixture
def tasks(tmp_path: Path, memory_url: str) -> Iterator[ModuleType]:
    source = "\n".join(b for b in python_blocks() if b.startswith("# file: tasks.py"))
    path = tmp_path / "tasks.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("tasks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("tasks")
    sys.modules["tasks"] = module
    try:
        spec.loader.exec_module(module)
        module.app.conf.broker_url = memory_url
        module.app.conf.result_backend = memory_url
        yield module
    finally:
        module.app.close()
        if saved is None:
            sys.modules.pop("tasks", None)
        else:
            sys.modules["tasks"] = saved


def test_the_tutorial_schedule(tasks: ModuleType) -> None:
    app = tasks.app
    try:
        tasks.test.s("probe")
    except (NotImplementedError, ImportError):
        pytest.skip("celeriac.canvas is not available")
    assert "tasks.test('hello')" not in app.conf.beat_schedule
    prepare_app(app)  # what `celeriac beat` does first: sends on_after_configure
    assert set(app.conf.beat_schedule) == {
        "add-every-10-seconds", "add every 10", "tasks.test('world')",
        "tasks.test('Happy Mondays!')",
    }
    # Monday 2024-05-06, 20:19 in Shanghai, for two minutes.
    now = [datetime(2024, 5, 6, 20, 19, tzinfo=SHANGHAI).astimezone(UTC)]
    scheduler = Scheduler(app, clock=lambda: now[0])
    end = now[0] + timedelta(minutes=2)
    while now[0] <= end:
        scheduler.tick()
        now[0] += timedelta(seconds=1)

    def sent(entry: str) -> list[datetime]:
        return [run.scheduled_at for run in scheduler.history if run.entry == entry]

    assert len(sent("add-every-10-seconds")) == 12
    assert len(sent("add every 10")) == 12
    assert len(sent("tasks.test('world')")) == 4
    assert [t.astimezone(SHANGHAI) for t in sent("tasks.test('Happy Mondays!')")] == [
        datetime(2024, 5, 6, 20, 20, tzinfo=SHANGHAI)]

    deliveries = app.broker.consume(["celery"], 1000, 0.0)
    by_entry: dict[str, Any] = {}
    for delivery in deliveries:
        run = next(r for r in scheduler.history if r.task_id == delivery.task_id)
        by_entry.setdefault(run.entry, delivery.envelope)
    app.broker.requeue(deliveries)
    assert orjson.loads(by_entry["add-every-10-seconds"].body)[0] == [10, 5]
    assert by_entry["tasks.test('world')"].headers["expires"]
    assert not by_entry["add every 10"].headers.get("expires")

    # A worker runs what beat sent.
    Worker(app, burst=True, pool="solo", install_signal_handlers=False).start()
    first_add = sent("add-every-10-seconds")[0]
    run = next(r for r in scheduler.history if r.scheduled_at == first_add
               and r.entry == "add-every-10-seconds")
    assert app.AsyncResult(run.task_id).get(timeout=5) == 15


def test_the_custom_schedule_example() -> None:
    (source,) = [b for b in python_blocks() if "class weekdays_only" in b]
    namespace: dict[str, Any] = {}
    exec(compile(source, str(DOC), "exec"), namespace)
    now = [datetime(2024, 5, 4, 12, 0, tzinfo=UTC)]  # a Saturday
    sched = namespace["weekdays_only"](60).bind(None, lambda: now[0])
    last = now[0] - timedelta(minutes=5)
    assert not sched.is_due(last).is_due
    now[0] = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)  # a Monday
    assert sched.is_due(last).is_due
