"""Celery's worker, beat, events and global options that issue 14 adds: each does what
Celery's does, or is accepted with one line saying why it cannot apply (exit 2 where going on
would do something else than asked). Real worker processes on a SQLite broker."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import signal
import time
from pathlib import Path

import pytest

from celeriac.cli.privileges import drop_privileges
from tests.cli.project import make_project
from tests.cli.workers import WorkerProcess, run_cli


def _send(root: Path, name: str, *args: str) -> str:
    done = run_cli(["-A", name, "call", f"{name}.add", *args], root)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _state(root: Path, name: str, task_id: str) -> str:
    done = run_cli(["-A", name, "result", task_id], root)
    return done.stdout + done.stderr


def test_purge_empties_the_worker_queues_before_it_consumes(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    doomed = [_send(tmp_path, name, "--args", f"[{i}, 100]") for i in range(2)]
    with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "solo", "--discard",
                                  "-l", "info"]) as worker:
        worker.wait_for("purge: erased 2 messages from celery.")
        worker.wait_for("ready.")
        done = run_cli(["-A", name, "call", f"{name}.add", "--args", "[1, 1]", "--wait"],
                       tmp_path)
        assert done.returncode == 0 and done.stdout.strip().endswith("2"), \
            done.stdout + done.stderr
        # FIFO: had they been kept, the two earlier tasks would have run before this one
        for task_id in doomed:
            assert "PENDING" in _state(tmp_path, name, task_id)
        assert worker.stop() == 0, worker.output()


def test_heartbeat_interval_sets_the_heartbeat_events(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    with WorkerProcess(tmp_path, ["-A", name, "events", "--dump"]) as dump, \
            WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "solo", "-E",
                                     "--heartbeat-interval", "0.3", "-l", "info"]) as worker:
        worker.wait_for("ready.")
        dump.wait_for(" heartbeat: ", timeout_s=30)
        heartbeats = [line for line in dump.output().splitlines() if " heartbeat: " in line]
        assert heartbeats and all("freq=0.3" in line for line in heartbeats)
        assert worker.stop() == 0, worker.output()


def test_disable_prefetch_holds_no_more_than_the_pool_runs(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "threads", "-c", "3",
                                  "--prefetch-multiplier", "8", "--disable-prefetch",
                                  "-n", "nopf@%h", "-l", "info"]) as worker:
        worker.wait_for("ready.")
        deadline = time.monotonic() + 30
        while True:
            done = run_cli(["-A", name, "inspect", "stats", "--json", "-t", "2"], tmp_path)
            if done.returncode == 0 or time.monotonic() > deadline:
                break
        assert done.returncode == 0, done.stderr
        (stats,) = json.loads(done.stdout).values()
        assert stats["prefetch_count"] == 3
        assert worker.stop() == 0, worker.output()


def test_pool_start_method(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    done = run_cli(["-A", name, "worker", "--pool-start-method", "spawn"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "celeriac: --pool-start-method spawn: the prefork pool always forks its children; "
        "use -P threads for code that must not be forked.")
    bad = run_cli(["-A", name, "worker", "--pool-start-method", "forkserver"], tmp_path)
    assert bad.returncode == 2 and "'forkserver' is not one of 'fork', 'spawn'" in bad.stderr


def test_executable_and_statedb_say_one_line_and_go_on(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "solo", "--pool-start-method",
                                  "fork", "--executable", "/usr/bin/python3", "-S",
                                  "worker.state", "-l", "info"]) as worker:
        worker.wait_for("ready.")
        out = worker.output()
        assert "celeriac: --executable /usr/bin/python3: celeriac worker runs in the " \
            "foreground" in out
        assert "celeriac: --statedb worker.state: revoked task ids are kept" in out
        assert worker.stop() == 0, worker.output()
    assert not (tmp_path / "worker.state").exists()


def test_events_daemon_options(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    done = run_cli(["-A", name, "events", "--dump", "--logfile", "ev.log"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ("celeriac: --logfile ev.log: the dump prints to stdout; "
                                   "redirect it (celeriac events --dump > ev.log) or add "
                                   "--detach.")
    detached = run_cli(["-A", name, "events", "--dump", "--detach", "-f", "ev.log"], tmp_path)
    assert detached.returncode == 0, detached.stderr
    pid = int((tmp_path / "celeryev.pid").read_text())
    try:
        with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "solo", "-E", "-l", "info",
                                      "-n", "evd@%h"]) as worker:
            worker.wait_for("ready.")
            deadline = time.monotonic() + 30
            while "evd@" not in (tmp_path / "ev.log").read_text():
                assert time.monotonic() < deadline, (tmp_path / "ev.log").read_text()
                time.sleep(0.1)
            assert worker.stop() == 0
    finally:
        os.kill(pid, signal.SIGTERM)
    assert (tmp_path / "ev.log").read_text().startswith("-> evdump: starting capture...")


def test_global_loader_and_skip_checks(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    done = run_cli(["--loader", "proj.loaders:Custom", "--skip-checks", "-A", name, "call",
                    f"{name}.add", "-a", "[1, 2]"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ("celeriac: --loader proj.loaders:Custom: celeriac has one "
                                   "loader; configure the app with --config MODULE or "
                                   "app.config_from_object().")


def test_inspect_and_control_list(tmp_path: Path) -> None:
    for command, action in (("inspect", "query_task"), ("control", "rate_limit")):
        done = run_cli([command, "--list"], tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"  {action} " in done.stdout
    missing = run_cli(["inspect"], tmp_path)
    assert missing.returncode == 2 and "which inspect action?" in missing.stderr


def test_call_exchange_is_one_line_and_routing_key_names_the_queue(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    done = run_cli(["-A", name, "call", f"{name}.add", "-a", "[1, 2]", "--exchange", "tasks",
                    "--routing-key", "rk"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ("celeriac: --exchange tasks: celeriac's brokers route by "
                                   "queue name, not by exchange; name the queue with --queue "
                                   "(or --routing-key).")
    size = run_cli(["-A", name, "amqp", "queue.declare", "rk"], tmp_path)
    assert size.stdout.strip() == "ok. queue:rk messages:1"


def test_umask_applies_to_the_files_the_worker_creates(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    log = tmp_path / "umask.log"
    with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "solo", "-l", "info",
                                  "--umask", "077", "-f", str(log)]) as worker:
        deadline = time.monotonic() + 30
        while "ready." not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline and worker.process.poll() is None, \
                worker.output()
            time.sleep(0.05)
        assert log.stat().st_mode & 0o777 == 0o600
        assert worker.stop() == 0
    bad = run_cli(["-A", name, "worker", "--umask", "9x"], tmp_path)
    assert bad.returncode == 2 and "'9x' is not an octal umask such as 022" in bad.stderr


def test_unknown_user_or_group_is_one_line(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    for option, what in (("--uid", "user"), ("--gid", "group")):
        done = run_cli(["-A", name, "worker", option, "no_such_account_zz"], tmp_path)
        assert done.returncode == 2
        assert done.stderr.strip() == (f"celeriac: {option} no_such_account_zz: there is no "
                                       f"such {what} on this machine; name an existing {what} "
                                       f"(see /etc/{'passwd' if what == 'user' else 'group'}).")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can change user")
def test_uid_drops_privileges() -> None:
    """In a forked child (a worker run as nobody could not read a Python installed under
    /root, as here): the process ends up as nobody, in nobody's group, unable to go back."""
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 0
        try:
            drop_privileges("nobody", None, "027")
            try:
                os.setuid(0)
                back = "root-again"
            except PermissionError:
                back = "stuck"
            mask = os.umask(0)
            os.write(write_end, f"{os.getuid()} {os.geteuid()} {os.getgid()} "
                                f"{os.getgroups()} {mask:o} {back}".encode())
        except BaseException as exc:
            os.write(write_end, repr(exc).encode())
            code = 1
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report
    uid, euid, gid, groups, mask, back = report.split(" ", 5)[:6]
    assert (uid, euid, gid) == (str(nobody.pw_uid), str(nobody.pw_uid), str(nobody.pw_gid))
    assert mask == "27" and back == "stuck"
    assert "0," not in groups and "[0]" not in groups


def test_workdir_loads_the_app_and_makes_its_files_there(tmp_path: Path) -> None:
    # Started elsewhere: -A resolves and the app's relative sqlite:/// file lands in --workdir,
    # before the command (Celery 5) and after it (Celery 4).
    project = tmp_path / "project"
    project.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    name = make_project(project)
    for args in (["--workdir", str(project), "-A", name, "call", f"{name}.add", "-a", "[1, 2]"],
                 ["call", "--workdir", "project", "-A", name, f"{name}.add", "-a", "[3, 4]"]):
        done = run_cli(args, elsewhere if args[0] == "--workdir" else tmp_path)
        assert done.returncode == 0, done.stderr
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / f"{name}.db").exists()
    size = run_cli(["--workdir", str(project), "-A", name, "amqp", "queue.declare", "celery"],
                   elsewhere)
    assert size.stdout.strip() == "ok. queue:celery messages:2", size.stdout + size.stderr
    missing = run_cli(["--workdir", str(tmp_path / "nowhere"), "-A", name, "report"], elsewhere)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == (
        f"Error: Invalid value for '--workdir': [Errno 2] No such file or directory: "
        f"'{tmp_path / 'nowhere'}'")


def test_call_wait_with_a_misspelt_backend_sends_nothing(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    done = run_cli(["-A", name, "--result-backend", "reddis://localhost", "call",
                    f"{name}.add", "-a", "[1, 2]", "--wait"], tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("Error: No result backend for URL scheme 'reddis' (did you "
                                  "mean 'redis'?)")
    size = run_cli(["-A", name, "amqp", "queue.declare", "celery"], tmp_path)
    assert size.stdout.strip() == "ok. queue:celery messages:0", size.stdout + size.stderr


def test_call_with_a_serializer_nobody_registered_is_one_line(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    done = run_cli(["-A", name, "call", f"{name}.add", "-a", "[1, 2]", "--serializer", "jsno"],
                   tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"Error: cannot send {name}.add: No serializer registered for 'jsno' (set by "
        "--serializer or task_serializer; json, msgpack, yaml and pickle are known)")


def test_pidfile_and_logfile_expand_the_node_name(tmp_path: Path) -> None:
    # Celery's worker expands %n (name), %h (host), %i (process index: 0) and %I (nothing in
    # the main process) in --pidfile and --logfile
    name = make_project(tmp_path)
    with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "solo", "-l", "info",
                                  "-n", "fx@box.example", "--pidfile", "run/%n-%h.pid",
                                  "-f", "%n%I-%i.log"]) as worker:
        deadline = time.monotonic() + 30
        log = tmp_path / "fx-0.log"
        while "ready." not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline and worker.process.poll() is None, \
                worker.output() + str(sorted(p.name for p in tmp_path.iterdir()))
            time.sleep(0.05)
        pidfile = tmp_path / "run" / "fx-box.example.pid"
        assert int(pidfile.read_text()) == worker.process.pid
        assert worker.stop() == 0
    assert not pidfile.exists()
    assert not [p for p in tmp_path.rglob("*%*")]


def test_detached_worker_expands_its_pidfile(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    done = run_cli(["-A", name, "worker", "-D", "-P", "solo", "-n", "dx@%h", "--pidfile",
                    "%n.pid", "--logfile", "%n%I.log"], tmp_path)
    started = re.search(r"detached: pid (\d+),", done.stderr)
    assert started, done.stderr
    pid = int(started.group(1))
    try:
        assert done.returncode == 0, done.stderr
        assert "pid file dx.pid, log dx.log" in done.stderr
        assert int((tmp_path / "dx.pid").read_text()) == pid
    finally:
        _stop_detached(pid, tmp_path / "dx.pid")
    assert not [p for p in tmp_path.rglob("*%*")]


def test_a_pidfile_directory_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    (tmp_path / "afile").write_text("")
    for command in (["worker"], ["beat"], ["events", "--dump"]):
        done = run_cli(["-A", name, *command, "--pidfile", "afile/x.pid"], tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == (f"Error: --pidfile afile/x.pid: cannot create the "
                                       f"directory {tmp_path / 'afile'}: File exists")


def test_events_dump_stopped_by_sigterm_removes_its_pidfile(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    with WorkerProcess(tmp_path, ["-A", name, "events", "--dump", "--pidfile",
                                  "ev.pid"]) as dump:
        dump.wait_for("-> evdump: starting capture...")
        assert int((tmp_path / "ev.pid").read_text()) == dump.process.pid
        assert dump.stop() == 0, dump.output()
    assert not (tmp_path / "ev.pid").exists()


def test_detached_worker_with_a_relative_workdir(tmp_path: Path) -> None:
    """``celeriac --workdir sub -A proj worker -D`` from the parent directory: the detached
    child starts in ``sub`` already and must not look for ``sub`` inside it."""
    sub = tmp_path / "sub"
    sub.mkdir()
    name = make_project(sub)
    done = run_cli(["--workdir", "sub", "-A", name, "worker", "-D", "-P", "solo", "-n",
                    "wd@%h"], tmp_path)
    started = re.search(r"detached: pid (\d+),", done.stderr)
    assert done.returncode == 0 and started, done.stderr
    pid = int(started.group(1))
    try:
        assert int((sub / "wd.pid").read_text()) == pid
        assert (sub / "wd.log").exists() and not (tmp_path / "wd.pid").exists()
    finally:
        _stop_detached(pid, sub / "wd.pid")


def _stop_detached(pid: int, pidfile: Path) -> None:
    """SIGTERM a detached worker and wait until it removed its pid file."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while pidfile.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
