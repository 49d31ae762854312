"""Pid files: written whole, never removed by a reader that catches one being written.

The CI failure this guards: ``multi restart`` read the new worker's pid file between its
creation and its write, took the empty file for a stale one, removed it, and then waited
60 s for a pid file that was gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import click
import pytest

from celeriac.cli.pidfile import hold_pidfile, read_pid


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


def test_a_reader_removes_a_file_naming_a_dead_process(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    path.write_text(f"{_dead_pid()}\n")
    assert read_pid(str(path)) is None
    assert not path.exists()
    path.write_text(f"{os.getpid()}\n")
    assert read_pid(str(path)) == os.getpid()


def test_hold_writes_replaces_stale_refuses_live_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "w1.pid"
    path.write_text(f"{_dead_pid()}\n")
    with hold_pidfile(str(path)):
        assert path.read_text() == f"{os.getpid()}\n"
        assert [p.name for p in tmp_path.iterdir()] == ["w1.pid"]
    assert not path.exists()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        path.write_text(f"{live.pid}\n")
        refused = pytest.raises(click.ClickException,
                                match=f"held by running process {live.pid}")
        with refused, hold_pidfile(str(path)):
            pass
        assert path.read_text() == f"{live.pid}\n"
    finally:
        live.kill()
        live.wait()


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
