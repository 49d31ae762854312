"""Pid files: held by a lock, never removed by a reader.

The CI failure this guards: ``multi restart`` read the new worker's pid file between its
creation and its write, took the empty file for a stale one, removed it, and then waited
60 s for a pid file that was gone. And (found in review) two processes starting at once on a
stale pid file could both believe they held it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import pytest

from celeriac.cli.pidfile import alive, hold_pidfile, read_pid
from tests.cli.workers import cli_env


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_reader_leaves_a_file_without_a_number(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    path.write_text("")
    assert read_pid(str(path)) is None
    assert path.exists()
    path.write_text("not a pid\n")
    assert read_pid(str(path)) is None
    assert path.read_text() == "not a pid\n"


def test_a_reader_leaves_a_file_naming_a_dead_process(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    path.write_text(f"{_dead_pid()}\n")
    assert read_pid(str(path)) is None
    assert path.exists()  # the next holder takes it over
    path.write_text(f"{os.getpid()}\n")
    assert read_pid(str(path)) == os.getpid()


HOLDER = """
import os, sys, time
from celeriac.cli.pidfile import hold_pidfile
with hold_pidfile(sys.argv[1]):
    print("held", flush=True)
    time.sleep(30)
"""


def test_hold_takes_over_stale_refuses_a_live_holder_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    path.write_text(f"{_dead_pid()}\n")
    with hold_pidfile(str(path)):
        assert path.read_text() == f"{os.getpid()}\n"
        assert [p.name for p in tmp_path.iterdir()] == ["w1.pid"]
    assert not path.exists()
    live = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE,
                            text=True, env=cli_env())
    try:
        assert live.stdout is not None and live.stdout.readline().strip() == "held"
        refused = pytest.raises(click.ClickException,
                                match=f"held by running process {live.pid}")
        with refused, hold_pidfile(str(path)):
            pass
        assert path.read_text() == f"{live.pid}\n"
    finally:
        live.kill()
        live.wait()
        live.stdout.close()
    with hold_pidfile(str(path)):  # its holder died: taken over
        assert path.read_text() == f"{os.getpid()}\n"


def _contender(path: str, start: Any, results: Any) -> None:
    start.wait()
    try:
        with hold_pidfile(path):
            results.put("held")
            time.sleep(0.5)
    except click.ClickException:
        results.put("refused")


def test_of_several_starting_at_once_on_a_stale_file_exactly_one_holds(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(10):
        path = str(tmp_path / f"r{round_}.pid")
        Path(path).write_text(f"{_dead_pid()}\n")
        start, results = context.Event(), context.Queue()
        procs = [context.Process(target=_contender, args=(path, start, results))
                 for _ in range(4)]
        for proc in procs:
            proc.start()
        start.set()
        outcomes = sorted(results.get(timeout=30) for _ in procs)
        for proc in procs:
            proc.join(10)
            proc.close()
        results.close()
        results.join_thread()
        assert outcomes == ["held", "refused", "refused", "refused"], round_


FORKING_HOLDER = """
import os, signal, sys, time
from celeriac.cli.pidfile import hold_pidfile
with hold_pidfile(sys.argv[1]):
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(ready_w, b"x")  # running Python: its at-fork hooks have run
        time.sleep(30)
        os._exit(0)
    os.read(ready_r, 1)
    print(child, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_forked_child_does_not_keep_the_lock(tmp_path: Path) -> None:
    """A prefork child outliving its SIGKILLed worker must not hold the worker's pid file."""
    path = tmp_path / "w1.pid"
    holder = subprocess.Popen([sys.executable, "-c", FORKING_HOLDER, str(path)],
                              stdout=subprocess.PIPE, text=True, env=cli_env())
    assert holder.stdout is not None
    orphan = int(holder.stdout.readline())
    holder.wait()
    holder.stdout.close()
    try:
        assert alive(orphan)
        with hold_pidfile(str(path)):
            assert path.read_text() == f"{os.getpid()}\n"
    finally:
        os.kill(orphan, signal.SIGKILL)


def test_the_holder_leaves_a_file_that_names_someone_else(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    with hold_pidfile(str(path)):
        path.write_text("12345678\n")
    assert path.read_text() == "12345678\n"


def test_a_polling_reader_never_removes_a_file_being_written(tmp_path: Path) -> None:
    path = str(tmp_path / "w1.pid")
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            read_pid(path)

    reader = threading.Thread(target=poll)
    reader.start()
    lost = 0
    try:
        for _ in range(2000):
            with hold_pidfile(path):
                if read_pid(path) != os.getpid():
                    lost += 1
    finally:
        stop.set()
        reader.join()
    assert lost == 0
