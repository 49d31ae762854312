"""``celeriac multi``: real detached workers started, found by their pid files, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac.cli.multi_nodes import parse_multi_args
from tests.cli.project import make_project
from tests.cli.workers import cli_env, run_cli


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    name = make_project(tmp_path)
    yield tmp_path, name
    # whatever a failed test left running
    for pidfile in tmp_path.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


def test_start_stopwait_two_named_nodes(project: tuple[Path, str]) -> None:
    root, name = project
    host = socket.gethostname()
    started = run_cli(["multi", "start", "w1", "w2", "-A", name, "-P", "solo", "-l", "info"],
                      root)
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"\t> w1@{host}: OK" in started.stdout and f"\t> w2@{host}: OK" in started.stdout
    pids = {node: int((root / f"{node}.pid").read_text()) for node in ("w1", "w2")}
    assert all(_alive(pid) for pid in pids.values())
    # the detached workers do work and answer by their node names
    done = run_cli(["-A", name, "call", f"{name}.add", "-a", "[20, 22]", "--wait"], root)
    assert done.returncode == 0 and done.stdout.strip().endswith("42"), done.stderr
    ping = run_cli(["-A", name, "status", "-t", "3"], root)
    assert f"w1@{host}" in ping.stdout and f"w2@{host}" in ping.stdout, ping.stdout
    again = run_cli(["multi", "start", "w1", "-A", name, "-P", "solo"], root)
    assert f"\t> w1@{host}: already running (pid {pids['w1']})" in again.stdout
    stopped = run_cli(["multi", "stopwait", "w1", "w2"], root)
    assert stopped.returncode == 0, stopped.stderr
    assert f"\t> w1@{host}: TERM -> {pids['w1']}" in stopped.stdout
    assert "> Waiting for 2 nodes" in stopped.stdout
    assert not any(_alive(pid) for pid in pids.values())
    assert not (root / "w1.pid").exists() and not (root / "w2.pid").exists()
    assert "ready." in (root / "w1.log").read_text()
    down = run_cli(["multi", "stop", "w1"], root)
    assert f"\t> w1@{host}: DOWN" in down.stdout


def test_stop_returns_and_the_worker_exits_warm(project: tuple[Path, str]) -> None:
    root, name = project
    assert run_cli(["multi", "start", "1", "-A", name, "-P", "solo", "--pidfile=run/%n.pid",
                    "--logfile=logs/%n%I.log"], root).returncode == 0
    pid = int((root / "run" / "celery1.pid").read_text())
    stopped = run_cli(["multi", "stop", "1", "--pidfile=run/%n.pid"], root)
    assert f"TERM -> {pid}" in stopped.stdout
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
    assert (root / "logs" / "celery1.log").exists()


def test_kill_and_restart(project: tuple[Path, str]) -> None:
    root, name = project
    args = ["w1", "-A", name, "-P", "solo"]
    assert run_cli(["multi", "start", *args], root).returncode == 0
    first = int((root / "w1.pid").read_text())
    restarted = run_cli(["multi", "restart", *args], root)
    assert restarted.returncode == 0, restarted.stdout
    second = int((root / "w1.pid").read_text())
    assert second != first and not _alive(first) and _alive(second)
    killed = run_cli(["multi", "kill", "w1"], root)
    assert f"KILL -> {second}" in killed.stdout
    assert not (root / "w1.pid").exists()


def test_nodes_with_a_workdir_are_found_there(project: tuple[Path, str]) -> None:
    root, name = project
    sub = root / "sub"
    sub.mkdir()
    (root / f"{name}.py").rename(sub / f"{name}.py")
    args = ["mw", "-A", name, "-P", "solo", "--workdir", "sub"]
    started = run_cli(["multi", "start", *args], root)
    assert started.returncode == 0 and "mw@" in started.stdout, started.stdout
    pid = int((sub / "mw.pid").read_text())
    assert _alive(pid) and (sub / "mw.log").exists()
    stopped = run_cli(["multi", "stopwait", *args], root)
    assert f"TERM -> {pid}" in stopped.stdout and not _alive(pid)
    assert not (sub / "mw.pid").exists()


def test_a_node_that_cannot_start_fails(project: tuple[Path, str]) -> None:
    root, _ = project
    done = run_cli(["multi", "start", "bad", "-A", "no_such_module_here"], root)
    assert done.returncode == 1
    assert "bad@" in done.stdout and "FAILED" in done.stdout and "see bad.log" in done.stdout


def test_show_names_and_node_options(tmp_path: Path) -> None:
    host = socket.gethostname()
    shown = run_cli(["multi", "show", "3", "-A", "proj", "-c", "3", "-c:1", "10",
                     "-Q:2-3", "images", "--range-prefix", "w"], tmp_path)
    lines = shown.stdout.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith(f"worker -n w1@{host} --pidfile w1.pid --logfile w1.log "
                             "-A proj -c 10")
    assert lines[2].endswith(f"worker -n w3@{host} --pidfile w3.pid --logfile w3.log "
                             "-A proj -c 3 -Q images")
    names = run_cli(["multi", "names", "image", "video@%h", "--hostname", "h.example"],
                    tmp_path)
    assert names.stdout.split() == ["image@h.example", "video@h.example"]
    celery5 = run_cli(["-A", "proj", "-b", "redis://h/1", "multi", "show", "w1", "-l", "info"],
                      tmp_path)
    assert celery5.stdout.strip().endswith("--logfile w1.log -l info -A proj -b redis://h/1")
    expanded = run_cli(["multi", "expand", "/run/%n.pid", "w1", "w2@h.example.com"], tmp_path)
    assert expanded.stdout.split() == ["/run/w1.pid", "/run/w2.pid"]
    got = run_cli(["multi", "get", "w2", "w1", "w2", "-c", "2"], tmp_path)
    assert got.stdout.strip().endswith(f"worker -n w2@{host} --pidfile w2.pid --logfile w2.log "
                                       "-c 2")
    assert "Start and stop several detached workers" in run_cli(["multi", "help"],
                                                                 tmp_path).stdout
    missing = run_cli(["multi", "start"], tmp_path)
    assert missing.returncode == 2 and "name the nodes" in missing.stderr


def test_parse_by_name_selector() -> None:
    parsed = parse_multi_args(["image", "video", "-c", "3", "-c:image", "10", "-E"])
    nodes = parsed.nodes("host")
    assert [n.argv for n in nodes] == [["-E", "-c", "10"], ["-c", "3", "-E"]]


# -- worker -D / beat --detach (the same launcher as multi) ------------------------------------


def test_worker_detach_runs_in_the_background(project: tuple[Path, str]) -> None:
    root, name = project
    wrapper = root / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\ntouch "{root}/used-wrapper"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    done = run_cli(["-A", name, "worker", "-D", "-n", "dw1@%h", "-P", "solo", "-l", "info",
                    "--executable", str(wrapper)], root)
    assert done.returncode == 0, done.stdout + done.stderr
    pid = int((root / "dw1.pid").read_text())
    assert done.stderr.strip() == (f"celeriac worker detached: pid {pid}, pid file dw1.pid, "
                                   "log dw1.log")
    assert (root / "used-wrapper").exists()
    call = run_cli(["-A", name, "call", f"{name}.add", "-a", "[4, 5]", "--wait"], root)
    assert call.returncode == 0 and call.stdout.strip().endswith("9"), call.stderr
    # the pid file is where `multi stop` looks for node dw1
    again = run_cli(["-A", name, "worker", "-D", "-n", "dw1@%h"], root)
    assert again.returncode == 1 and f"is held by running process {pid}" in again.stderr
    stopped = run_cli(["multi", "stopwait", "dw1"], root)
    assert f"TERM -> {pid}" in stopped.stdout and not _alive(pid)
    assert "ready." in (root / "dw1.log").read_text()


def test_a_detached_worker_that_cannot_start_says_so(project: tuple[Path, str]) -> None:
    root, _ = project
    done = run_cli(["-A", "no_such_module_x", "worker", "--detach", "-n", "bad@%h"], root)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("celeriac worker: the detached process ended "
                                          "before it started")
    assert done.stderr.strip().endswith("see bad.log")


def test_beat_detach(project: tuple[Path, str]) -> None:
    root, name = project
    done = run_cli(["-A", name, "beat", "--detach", "-s", str(root / "sched")], root)
    assert done.returncode == 0, done.stderr
    pid = int((root / "celerybeat.pid").read_text())
    assert _alive(pid)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
    assert "celeriac beat is starting." in (root / "celerybeat.log").read_text()


def test_worker_main_cannot_detach(project: tuple[Path, str]) -> None:
    root, name = project
    script = root / "start_it.py"
    script.write_text(f"from {name} import app\napp.worker_main(['worker', '--detach'])\n")
    done = subprocess.run([sys.executable, str(script)], cwd=root, capture_output=True,
                          text=True, env=cli_env(), timeout=60, check=False)
    assert "--detach needs the app named on the command line" in done.stderr
    assert not list(root.glob("*.pid"))
