"""``celeriac amqp``, ``list bindings``, ``migrate``, ``graph`` and ``logtool``, run for real:
subprocesses on SQLite brokers (and Redis as a migrate destination), log files written by a
real worker."""

from __future__ import annotations

import json
import sqlite3
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.project import make_project
from tests.cli.workers import WorkerProcess, run_cli
from tests.redis.support import REDIS_BROKER_DB, drop_keys, redis_url


def _send(root: Path, name: str, *args: str, broker: str | None = None) -> str:
    extra = ["-b", broker] if broker else []
    done = run_cli(["-A", name, *extra, "call", *args], root)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _size(root: Path, name: str, queue: str = "celery", broker: str | None = None) -> str:
    extra = ["-b", broker] if broker else []
    done = run_cli(["-A", name, *extra, "amqp", "queue.declare", queue], root)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# -- amqp ------------------------------------------------------------------------------------------


def test_amqp_queue_commands(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    task_id = _send(tmp_path, name, f"{name}.add", "-a", "[1, 2]")
    _send(tmp_path, name, f"{name}.add", "-a", "[3, 4]")
    assert _size(tmp_path, name) == "ok. queue:celery messages:2"
    peek = run_cli(["-A", name, "amqp", "basic.get", "celery"], tmp_path)
    assert peek.returncode == 0, peek.stderr
    message = json.loads(peek.stdout)
    assert message["headers"]["id"] == task_id and message["queue"] == "celery"
    assert json.loads(message["body"])[0] == [1, 2]
    assert _size(tmp_path, name) == "ok. queue:celery messages:2"  # put back
    taken = run_cli(["-A", name, "amqp", "basic.get", "celery", "yes"], tmp_path)
    assert json.loads(taken.stdout)["headers"]["id"] == task_id
    assert _size(tmp_path, name) == "ok. queue:celery messages:1"
    refused = run_cli(["-A", name, "amqp", "queue.delete", "celery", "no", "yes"], tmp_path)
    assert refused.returncode == 1 and "is not empty" in refused.stderr
    purged = run_cli(["-A", name, "amqp", "queue.purge", "celery"], tmp_path)
    assert purged.stdout.strip() == "ok. 1 messages deleted."
    empty = run_cli(["-A", name, "amqp", "basic.get", "celery"], tmp_path)
    assert empty.stdout.strip() == "None"


def test_amqp_body_is_shown_not_run(tmp_path: Path) -> None:
    """A hostile row written straight into the SQLite broker: printed as text, nothing more."""
    name = make_project(tmp_path)
    _send(tmp_path, name, f"{name}.add", "-a", "[1, 1]")
    db = sqlite3.connect(tmp_path / f"{name}.db")
    tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
    table = next(t for t in tables if "message" in t)
    columns = [r[1] for r in db.execute(f"pragma table_info({table})")]
    assert "body" in columns
    db.execute(f"update {table} set body = ?", (b"__import__('os').system('touch pwned')",))
    db.commit()
    db.close()
    peek = run_cli(["-A", name, "amqp", "basic.get", "celery", "yes"], tmp_path)
    assert peek.returncode == 0, peek.stderr
    assert "__import__" in json.loads(peek.stdout)["body"]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("command", ["exchange.declare", "exchange.delete", "queue.bind",
                                     "basic.publish", "basic.ack", "repl"])
def test_amqp_commands_that_do_not_apply(tmp_path: Path, command: str) -> None:
    done = run_cli(["amqp", command, "a", "b", "c"], tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"celeriac: amqp {command}: ")


# -- list bindings ---------------------------------------------------------------------------------


def test_list_bindings(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    (tmp_path / "routes_conf.py").write_text(textwrap.dedent("""
        task_routes = {"*.add": {"queue": "adds"}}
    """))
    done = run_cli(["-A", name, "--config", "routes_conf", "list", "bindings"], tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.strip().splitlines()]
    assert rows[0] == ["Queue", "Exchange", "Routing", "Key"]
    assert ["celery", "celery", "celery"] in rows and ["adds", "adds", "adds"] in rows


# -- migrate -------------------------------------------------------------------------------------


@pytest.fixture
def redis_dest() -> Iterator[str]:
    url = redis_url(REDIS_BROKER_DB)
    yield url
    drop_keys(url)


def test_migrate_moves_between_brokers(tmp_path: Path, redis_dest: str) -> None:
    name = make_project(tmp_path)
    source = f"sqlite:///{name}.db"
    ids = [_send(tmp_path, name, f"{name}.add", "-a", f"[{i}, 0]") for i in range(3)]
    copied = run_cli(["-A", name, "migrate", source, redis_dest, "-t", "0.5"], tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert "3 tasks copied from 1 queue." in copied.stderr
    assert _size(tmp_path, name) == "ok. queue:celery messages:3"
    assert _size(tmp_path, name, broker=redis_dest) == "ok. queue:celery messages:3"
    run_cli(["-A", name, "-b", redis_dest, "amqp", "queue.purge", "celery"], tmp_path)
    moved = run_cli(["-A", name, "migrate", source, redis_dest, "-a", "-n", "2"], tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert "Migrating task 2/2:" in moved.stdout and "2 tasks moved" in moved.stderr
    assert _size(tmp_path, name) == "ok. queue:celery messages:1"
    # the moved tasks run from the destination, with their ids
    with WorkerProcess(tmp_path, ["-A", name, "-b", redis_dest, "worker", "-P", "solo",
                                  "-l", "info"]) as worker:
        worker.wait_for("ready.")
        for task_id in ids[:2]:
            worker.wait_for(f"[{task_id}] succeeded")
        assert worker.stop() == 0, worker.output()


def test_migrate_filters_task_names(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    dest = tmp_path / "dest.db"
    _send(tmp_path, name, f"{name}.add", "-a", "[1, 1]")
    _send(tmp_path, name, "other.task")
    done = run_cli(["-A", name, "migrate", f"sqlite:///{name}.db", f"sqlite:///{dest}", "-a",
                    "-T", "other.task"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 task moved" in done.stderr
    assert _size(tmp_path, name) == "ok. queue:celery messages:1"
    assert _size(tmp_path, name, broker=f"sqlite:///{dest}") == "ok. queue:celery messages:1"


# -- graph -----------------------------------------------------------------------------------------


def test_graph_workers_and_bootsteps(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "solo", "-Q", "a,b", "-n",
                                  "g1@host", "-l", "info"]) as worker:
        worker.wait_for("ready.")
        done = run_cli(["-A", name, "graph", "workers", "-t", "3"], tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("digraph workers {")
        assert '"queue:a" -> "g1@host";' in done.stdout
        assert '"queue:b" -> "g1@host";' in done.stdout
        assert worker.stop() == 0
    steps = run_cli(["graph", "bootsteps"], tmp_path)
    assert steps.returncode == 2 and "no bootsteps" in steps.stderr


# -- logtool ---------------------------------------------------------------------------------------

FAILING_MODULE = """
    from celeriac import Celery

    app = Celery("{name}", broker="sqlite:///{name}.db")


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def boom():
        raise ValueError("kaboom")
"""


def test_logtool_reads_a_real_worker_log(tmp_path: Path) -> None:
    name = "logproj"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(FAILING_MODULE.format(name=name)))
    log = tmp_path / "worker.log"
    with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "solo", "-l", "info",
                                  "-f", str(log)]) as worker:
        deadline = time.monotonic() + 30
        while "ready." not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline and worker.process.poll() is None, \
                worker.output()
            time.sleep(0.05)
        for args in (["logproj.add", "-a", "[1, 2]"], ["logproj.add", "-a", "[2, 2]"],
                     ["logproj.boom"]):
            run_cli(["-A", name, "call", *args, "--wait", "--timeout", "30"], tmp_path)
        assert worker.stop() == 0
    stats = run_cli(["logtool", "stats", str(log)], tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert "Task total: 3\nTask errors: 1\nTask success: 2" in stats.stdout
    assert "logproj.add: 2" in stats.stdout
    traces = run_cli(["logtool", "traces", str(log)], tmp_path).stdout
    assert "ValueError: kaboom" in traces and "Traceback" in traces
    errors = run_cli(["logtool", "errors", str(log)], tmp_path).stdout.strip().splitlines()
    assert len(errors) == 1 and "logproj.boom[" in errors[0]
    # a task received and never finished (the worker was killed under it)
    with open(log, "a") as handle:
        handle.write("[2026-01-01 00:00:00,000: INFO/MainProcess] Task logproj.add[dead-1] "
                     "received\nnot a record line\n")
    incomplete = run_cli(["logtool", "incomplete", str(log)], tmp_path).stdout
    assert incomplete.strip() == "dead-1 logproj.add"
    debug = run_cli(["logtool", "debug", str(log)], tmp_path).stdout
    assert "error     logproj.boom[" in debug
    missing = run_cli(["logtool", "stats", str(tmp_path / "nope.log")], tmp_path)
    assert missing.returncode == 2
