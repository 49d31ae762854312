"""``celeriac inspect`` through the command line, with a task really running (issue 14: the
actions Celery's ``inspect`` has): ``query_task`` finds it by id, ``conf`` masks secrets,
``clock`` counts, ``scheduled`` is empty because the broker keeps a message with an eta.
A real worker subprocess on a SQLite broker."""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.workers import WorkerProcess, run_cli

PROJECT = """
    import os
    import time

    from celeriac import Celery

    app = Celery("{name}", broker="sqlite:///{name}.db")
    app.conf.my_api_key = "s3cr3t-key"


    @app.task
    def hold(path):
        # runs until the test creates `path` (30 s at most)
        deadline = time.monotonic() + 30
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)
        return "released"
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    name = f"insp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PROJECT.format(name=name)))
    with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "threads", "-c", "1", "-l",
                                  "info", "-n", "insp@%h"]) as worker:
        worker.wait_for("ready.")
        yield tmp_path, name
        (tmp_path / "release").touch()
        assert worker.stop() == 0, worker.output()


def inspect(root: Path, name: str, *args: str) -> Any:
    """The one worker's reply to ``celeriac inspect ARGS --json``."""
    done = run_cli(["-A", name, "inspect", *args, "--json", "-t", "2"], root)
    assert done.returncode == 0, done.stdout + done.stderr
    (reply,) = json.loads(done.stdout).values()
    return reply


def test_inspect_actions_on_a_running_task(project: tuple[Path, str]) -> None:
    root, name = project
    sent = run_cli(["-A", name, "call", f"{name}.hold", "-a", json.dumps([str(root / "release")])],
                   root)
    assert sent.returncode == 0, sent.stderr
    task_id = sent.stdout.strip()
    deadline = time.monotonic() + 30
    while [task["id"] for task in inspect(root, name, "active")] != [task_id]:
        assert time.monotonic() < deadline, "the task never showed as active"
        time.sleep(0.1)

    found = inspect(root, name, "query_task", task_id, "no-such-id")
    assert list(found) == [task_id]
    state, info = found[task_id]
    assert state == "active"
    assert (info["id"], info["name"], info["hostname"].split("@")[0]) == (
        task_id, f"{name}.hold", "insp")

    conf = inspect(root, name, "conf")
    assert conf["broker_url"] == f"sqlite:///{name}.db"
    assert conf["my_api_key"] == "********" and "s3cr3t" not in json.dumps(conf)

    first = inspect(root, name, "clock")["clock"]
    assert isinstance(first, int) and inspect(root, name, "clock")["clock"] > first

    later = run_cli(["-A", name, "call", f"{name}.hold", "-a", '["x"]', "--countdown", "600"],
                    root)
    assert later.returncode == 0, later.stderr
    assert inspect(root, name, "scheduled") == []  # the broker holds it until it is due
    size = run_cli(["-A", name, "amqp", "queue.declare", "celery"], root)
    assert size.stdout.strip() == "ok. queue:celery messages:1", size.stdout
