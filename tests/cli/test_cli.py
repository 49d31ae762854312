"""The ``celeriac`` command. Pure command-line behaviour runs in-process with CliRunner;
anything that needs a worker runs real subprocesses."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import celeriac
from celeriac.cli.main import main
from tests.cli.workers import WorkerProcess, run_cli

COMMANDS = ("worker", "call", "result", "inspect", "status", "purge", "demo")

PROJECT_MODULE = """
    from celeriac import Celery

    app = Celery("{name}", broker="sqlite:///{name}.db")


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def fail(message):
        raise ValueError(message)
"""


# -- pure command line ---------------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    outcome = CliRunner().invoke(main, ["--help"])
    assert outcome.exit_code == 0
    for command in COMMANDS:
        assert f"\n  {command} " in outcome.output
    for option in ("-A, --app", "-b, --broker", "--result-backend", "--workdir", "-C, --no-color",
                   "-q, --quiet", "--config"):
        assert option in outcome.output


def test_version() -> None:
    outcome = CliRunner().invoke(main, ["--version"])
    assert outcome.exit_code == 0
    assert outcome.output.strip() == celeriac.__version__


def test_python_dash_m_celeriac(tmp_path: Path) -> None:
    done = run_cli(["--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "worker" in done.stdout


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An app module in a fresh current directory, on a SQLite broker there."""
    name = f"cliapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PROJECT_MODULE.format(name=name)))
    monkeypatch.chdir(tmp_path)
    saved_path = list(sys.path)
    yield name
    loaded = sys.modules.pop(name, None)
    if loaded is not None:
        loaded.app.close()
    sys.path[:] = saved_path


def test_app_option_before_and_after_the_command(module: str) -> None:
    runner = CliRunner()
    celery5 = runner.invoke(main, ["-A", module, "call", f"{module}.add", "--args", "[1, 2]"])
    assert celery5.exit_code == 0, celery5.output
    celery4 = runner.invoke(main, ["call", "-A", module, f"{module}.add", "-a", "[3, 4]"])
    assert celery4.exit_code == 0, celery4.output
    assert celery5.output != celery4.output  # two task ids
    purged = runner.invoke(main, ["purge", "--app", module, "-f"])
    assert purged.exit_code == 0, purged.output
    assert purged.output.strip() == "Purged 2 messages from 1 known task queue."
    again = runner.invoke(main, ["-A", module, "purge", "-f"])
    assert again.output.strip() == "No messages purged from 1 queue."


def test_purge_asks_first(module: str) -> None:
    runner = CliRunner()
    runner.invoke(main, ["-A", module, "call", f"{module}.add", "-a", "[1, 1]"])
    declined = runner.invoke(main, ["-A", module, "purge"], input="n\n")
    assert declined.exit_code == 1
    assert "There is no undo for this operation!" in declined.output
    assert "Purged" not in declined.output
    accepted = runner.invoke(main, ["-A", module, "purge", "-Q", "celery"], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "Purged 1 message from 1 known task queue." in accepted.output


def test_call_validates_json(module: str) -> None:
    outcome = CliRunner().invoke(main, ["-A", module, "call", f"{module}.add", "--args", "{1"])
    assert outcome.exit_code == 2
    assert "not valid JSON" in outcome.output
    outcome = CliRunner().invoke(main, ["-A", module, "call", f"{module}.add", "-k", "[1]"])
    assert outcome.exit_code == 2
    assert "must be a JSON object" in outcome.output


def test_call_wait_times_out_without_a_worker(module: str) -> None:
    outcome = CliRunner().invoke(
        main, ["-A", module, "call", f"{module}.add", "-a", "[1, 1]", "--wait", "--timeout", "0.3"]
    )
    assert outcome.exit_code == 1
    assert "Timed out after 0.3s" in outcome.output


def test_result_of_unknown_task_is_pending(module: str) -> None:
    outcome = CliRunner().invoke(main, ["-A", module, "result", str(uuid.uuid4())])
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.splitlines() == ["state:  PENDING", "result: null"]


def test_broker_option_overrides_the_app(module: str, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    runner = CliRunner()
    sent = runner.invoke(main, ["-A", module, "-b", f"sqlite:///{other}", "call", "x.y"])
    assert sent.exit_code == 0, sent.output
    assert other.exists()
    purged = runner.invoke(main, ["purge", "-f", "-A", module, "--broker", f"sqlite:///{other}"])
    assert "Purged 1 message" in purged.output


def test_bad_app_is_a_clear_error(tmp_path: Path) -> None:
    done = run_cli(["-A", "no_such_module_here", "worker", "-P", "solo"], tmp_path)
    assert done.returncode == 2
    assert "Invalid value for '-A' / '--app'" in done.stderr
    assert "Unable to load celeriac application." in done.stderr
    assert "The module no_such_module_here was not found." in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_app_in_celery4_order(tmp_path: Path) -> None:
    done = run_cli(["inspect", "ping", "-A", "no_such_module_here"], tmp_path)
    assert done.returncode == 2
    assert "The module no_such_module_here was not found." in done.stderr


def test_unavailable_pool_is_an_error(module: str) -> None:
    outcome = CliRunner().invoke(main, ["-A", module, "worker", "-P", "nonexistent"])
    assert outcome.exit_code == 2
    assert "'nonexistent' pool is not available" in outcome.output


def test_status_without_workers(module: str) -> None:
    outcome = CliRunner().invoke(main, ["-A", module, "status", "-t", "0.2"])
    assert outcome.exit_code == 69
    assert "No nodes replied within time constraint" in outcome.output


# -- with a worker ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cliproj")
    (root / "cliproj.py").write_text(textwrap.dedent(PROJECT_MODULE.format(name="cliproj")))
    return root


@pytest.fixture(scope="module")
def worker(project: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        project,
        # Celery 4 order: -A after the command.
        ["worker", "-A", "cliproj", "-l", "info", "-P", "threads", "-c", "2", "-n", "cli@%h"],
    )
    with process:
        process.wait_for("ready.")
        yield process
        assert process.stop() == 0, process.output()


def cli(project: Path, *args: str) -> tuple[int, str, str]:
    done = run_cli(["-A", "cliproj", *args], project)
    return done.returncode, done.stdout, done.stderr


def test_call_then_result(project: Path, worker: WorkerProcess) -> None:
    code, out, err = cli(project, "call", "cliproj.add", "--args", "[2, 3]")
    assert code == 0, err
    task_id = out.strip()
    uuid.UUID(task_id)
    deadline = time.monotonic() + 30
    while True:
        code, out, err = cli(project, "result", task_id)
        assert code == 0, err
        if "SUCCESS" in out or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert out.splitlines() == ["state:  SUCCESS", "result: 5"]
    assert f"Task cliproj.add[{task_id}] succeeded in" in worker.output()


def test_call_wait_prints_the_result(project: Path, worker: WorkerProcess) -> None:
    code, out, err = cli(project, "call", "cliproj.add", "-a", "[10, 6]", "--wait",
                         "--timeout", "30")
    assert code == 0, err
    task_id, value = out.splitlines()
    uuid.UUID(task_id)
    assert json.loads(value) == 16


def test_call_wait_on_a_failing_task(project: Path, worker: WorkerProcess) -> None:
    code, out, err = cli(project, "call", "cliproj.fail", "--args", '["boom"]', "--wait",
                         "--timeout", "30")
    assert code == 1
    task_id = out.strip()
    assert "FAILURE: ValueError('boom')" in err
    code, out, err = cli(project, "result", task_id, "--traceback")
    assert code == 0, err
    assert "state:  FAILURE" in out
    assert "result: ValueError('boom')" in out
    assert "Traceback (most recent call last)" in out


def test_inspect_registered(project: Path, worker: WorkerProcess) -> None:
    code, out, err = cli(project, "inspect", "registered")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("->  cli@") and lines[0].endswith(": OK")
    assert lines[1:3] == ["    * cliproj.add", "    * cliproj.fail"]
    assert lines[-1] == "1 node online."


def test_inspect_json_and_ping(project: Path, worker: WorkerProcess) -> None:
    code, out, err = cli(project, "inspect", "registered", "--json")
    assert code == 0, err
    (replies,) = json.loads(out).values()
    assert replies == ["cliproj.add", "cliproj.fail"]
    code, out, err = cli(project, "inspect", "ping")
    assert code == 0, err
    assert "        pong" in out
    code, out, err = cli(project, "inspect", "active_queues", "-j")
    assert code == 0, err
    ((queue,),) = json.loads(out).values()
    assert queue["name"] == "celery" and queue["routing_key"] == "celery"  # Celery's shape


def test_status(project: Path, worker: WorkerProcess) -> None:
    code, out, err = cli(project, "status")
    assert code == 0, err
    assert out.startswith("->  cli@")
    assert out.rstrip().endswith("1 node online.")


def test_inspect_unknown_destination(project: Path, worker: WorkerProcess) -> None:
    code, _, err = cli(project, "inspect", "ping", "-d", "nobody@nowhere", "-t", "0.2")
    assert code == 69
    assert "No nodes replied" in err


def test_worker_banner(project: Path, worker: WorkerProcess) -> None:
    log = worker.output()
    assert ".> concurrency: 2 (threads)" in log
    assert f"(file: {os.path.realpath(project / 'cliproj.db')})" in log
    assert "[tasks]\n  . cliproj.add\n  . cliproj.fail" in log


# -- app.worker_main() and the demo ----------------------------------------------------------------


def test_app_worker_main(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(textwrap.dedent("""
        from celeriac import Celery

        app = Celery("script", broker="sqlite:///script.db")


        @app.task
        def ping():
            return "pong"


        if __name__ == "__main__":
            app.worker_main(argv=["worker", "--loglevel=INFO", "-P", "solo"])
    """))
    with WorkerProcess(tmp_path, ["script.py"], command=[sys.executable]) as process:
        process.wait_for("ready.")
        assert "[tasks]\n  . script.ping\n" in process.output()
        assert process.stop() == 0, process.output()


def test_demo_quick(tmp_path: Path) -> None:
    done = run_cli(["demo", "--quick"], tmp_path, timeout_s=100)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "state: SUCCESS" in done.stdout
    assert "state: FAILURE" in done.stdout
    assert "after 4 retries" in done.stdout
    assert "on_success" in done.stdout and "after_return" in done.stdout
    # the dashboard step: its API learnt the task and the worker from the worker's events
    assert "ok: the dashboard saw the task succeed and the worker online" in done.stdout
    assert "-> state SUCCESS, result 42" in done.stdout
    assert "worker exited with status 0" in done.stdout


def test_control_commands_reply_as_celery_prints_them(project: Path,
                                                      worker: WorkerProcess) -> None:
    code, out, err = cli(project, "control", "rate_limit", "cliproj.add", "10/s")
    assert code == 0, err
    assert out.splitlines()[0].startswith("->  cli@") and out.splitlines()[0].endswith(": OK")
    assert "        new rate limit set successfully" in out
    code, out, err = cli(project, "control", "time_limit", "cliproj.add", "5", "10", "--json")
    assert code == 0, err
    assert list(json.loads(out).values()) == [{"ok": "time limits set successfully"}]
    code, out, err = cli(project, "control", "rate_limit", "no.such.task", "1/s")
    assert code == 0, err  # the worker answered: with an error
    assert ": ERROR" in out and "unknown task 'no.such.task'" in out
    code, out, err = cli(project, "control", "revoke", "a-task-id", "--terminate",
                         "--signal", "KILL")
    assert code == 0, err
    assert "tasks a-task-id flagged as revoked" in out
    code, out, err = cli(project, "inspect", "revoked", "-j")
    assert code == 0, err
    assert list(json.loads(out).values()) == [["a-task-id"]]


@pytest.mark.parametrize("action", ["reserved", "scheduled", "active", "clock", "report",
                                    "conf", "stats", "query_task"])
def test_every_inspect_action_answers(project: Path, worker: WorkerProcess,
                                      action: str) -> None:
    code, out, err = cli(project, "inspect", action, "--json")
    assert code == 0, err
    (reply,) = json.loads(out).values()
    assert not (isinstance(reply, dict) and "error" in reply), reply


def test_control_usage_errors(project: Path) -> None:
    code, _, err = cli(project, "control", "frobnicate")
    assert code == 2 and "unknown control action 'frobnicate'" in err
    code, _, err = cli(project, "control", "autoscale", "ten", "2")
    assert code == 2 and "MAX must be a number" in err
    code, _, err = cli(project, "control", "revoke", "x", "--terminate", "--signal", "STOP")
    assert code == 2 and "cannot send signal" in err
