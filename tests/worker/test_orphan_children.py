"""A prefork child never outlives its worker: SIGKILL the worker's main process while a child
runs a task that never ends, and the child is gone within seconds (Linux: the kernel sends it
SIGKILL when its parent dies). An orphan would go on running a task the broker delivers again,
found in a test run where a child ran on for 41 minutes."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.cli.workers import WorkerProcess

PROJECT = """
    import os, time
    from celeriac import Celery

    app = Celery({name!r}, broker={broker!r})

    @app.task
    def forever(path):
        with open(path, "w") as handle:
            handle.write(str(os.getpid()))
        while True:
            time.sleep(0.05)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie answers kill(pid, 0) too: look at its state
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_dies_with_its_sigkilled_worker(tmp_path: Path) -> None:
    name = f"orph_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PROJECT.format(
        name=name, broker=f"sqlite:///{tmp_path / 'broker.db'}")))
    sys.path.insert(0, str(tmp_path))
    try:
        import importlib

        module = importlib.import_module(name)
        marker = tmp_path / "child.pid"
        with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "prefork", "-c", "1"]) as proc:
            module.forever.delay(str(marker))
            deadline = time.monotonic() + 30
            while not marker.exists() or not marker.read_text():
                assert time.monotonic() < deadline, proc.output()
                time.sleep(0.05)
            child = int(marker.read_text())
            assert child != proc.process.pid and _alive(child)
            os.kill(proc.process.pid, signal.SIGKILL)  # the main process only
            proc.process.wait(10)
            deadline = time.monotonic() + 10
            while _alive(child) and time.monotonic() < deadline:
                time.sleep(0.05)
            still = _alive(child)
            if still:
                os.kill(child, signal.SIGKILL)
            assert not still, "the prefork child outlived its worker"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
