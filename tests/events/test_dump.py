"""``celeriac -A proj events --dump`` prints the events of a real worker live, one line each in
Celery's dump format; the modes celeriac does not provide say so and exit 2."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac.cli.events import EventDumper
from tests.events.support import TASKS
from tests.support.services import backend_beside, broker_url
from tests.worker.support import REPO_ROOT, start_worker, task_module, worker_code


@pytest.fixture(params=["sqlite", "redis", "amqp", "postgresql"])
def evtasks(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with broker_url(request.param, tmp_path) as url:
        backend = backend_beside(request.param, url, tmp_path)
        yield from task_module("evtasks", TASKS, tmp_path, monkeypatch,
                               {"EVTASKS_URL": url, "EVTASKS_BACKEND": backend})


def _cli(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]))
    return subprocess.Popen([sys.executable, "-m", "celeriac", "-A", "evtasks", *args],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


class Lines:
    """The lines a process prints, read by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        self.proc = proc
        self.thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)

    def close(self) -> None:
        """After the process ended: the reader is done and the pipes closed."""
        self.thread.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def wait_for(self, text: str, timeout_s: float = 30.0) -> str:
        while True:
            line = self.lines.get(timeout=timeout_s)
            self.seen.append(line)
            if text in line:
                return line


@pytest.mark.slow
def test_dump_prints_a_real_tasks_events(evtasks: Any, tmp_path: Path) -> None:
    dump = _cli(tmp_path, "events", "--dump")
    out = Lines(dump)
    worker = None
    try:
        out.wait_for("-> evdump: starting capture")
        worker = start_worker(tmp_path, worker_code(
            "evtasks", hostname="dumped@test", pool="threads", send_events=True))
        out.wait_for("dumped@test")  # the dump hears the worker: its subscription is on
        result = evtasks.add.delay(2, 3)
        assert result.get(timeout=30) == 5
        line = out.wait_for(f"task succeeded: evtasks.add({result.id})")
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        dump.send_signal(signal.SIGINT)
        code = dump.wait(30)
        out.close()
    assert line.startswith("dumped@test [")
    assert "result=5" in line and "runtime=" in line
    assert any(f"task received: evtasks.add({result.id}) args=" in seen for seen in out.seen)
    assert code == 0


@pytest.mark.parametrize("args", [["events"], ["events", "--camera", "x.Camera"],
                                  ["events", "--dump", "-F", "1"]])
def test_modes_celeriac_does_not_provide_exit_2(tmp_path: Path, args: list[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "evtasks.py").write_text("from celeriac import Celery\napp = Celery('x')\n")
    proc = _cli(tmp_path, *args)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "--dump" in stderr and stdout == ""


def test_the_dump_line_format() -> None:
    lines: list[str] = []
    dumper = EventDumper(lines.append)
    dumper.on_event({"type": "task-received", "hostname": "w@h", "timestamp": 0.5,
                     "uuid": "u1", "name": "proj.add", "args": "[1]", "kwargs": "{}",
                     "clock": 3, "local_received": 9.0})
    dumper.on_event({"type": "task-succeeded", "hostname": "w@h", "timestamp": 1.0,
                     "uuid": "u1", "result": "2", "runtime": 0.1})
    dumper.on_event({"type": "worker-online", "hostname": "w@h", "timestamp": 1.0,
                     "freq": 2.0})
    dumper.on_event({"type": "task-started", "hostname": "w@h", "timestamp": "bad",
                     "uuid": "u2"})
    assert lines == [
        "w@h [1970-01-01 00:00:00.500000] task received: proj.add(u1) args=[1] kwargs={} "
        "clock=3",
        "w@h [1970-01-01 00:00:01] task succeeded: proj.add(u1) args=[1] kwargs={} "
        "result=2, runtime=0.1",
        "w@h [1970-01-01 00:00:01] started: freq=2.0",
        "w@h [None] task started: (u2)",
    ]
