"""What only the SQLite result backend promises: several processes on one file, persistence."""

from __future__ import annotations

import json
import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from celeriac import states
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.exceptions import TransportError

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"db+sqlite:///{tmp_path / 'results.db'}"


def _bump(url: str, out_path: str, start: Barrier) -> None:
    """Child process: increment one counter 500 times and write down the values it got."""
    backend = SQLiteBackend(url)
    backend.get_state("warm-up")  # connect before the barrier, so both children start level
    start.wait(60)
    values = [backend.incr("chord", 1, 60) for _ in range(500)]
    backend.close()
    Path(out_path).write_text(json.dumps(values))


def test_incr_is_atomic_across_processes(url: str, tmp_path: Path) -> None:
    outs = [tmp_path / f"values{i}.json" for i in range(2)]
    start = SPAWN.Barrier(len(outs) + 1)
    children = [SPAWN.Process(target=_bump, args=(url, str(out), start)) for out in outs]
    for child in children:
        child.start()
    start.wait(60)
    for child in children:
        child.join(90)
    for child in children:
        if child.is_alive():
            child.kill()
            child.join()
    assert [child.exitcode for child in children] == [0, 0]
    values = [v for out in outs for v in json.loads(out.read_text())]
    assert sorted(values) == list(range(1, 1001))
    backend = SQLiteBackend(url)
    assert backend.incr("chord", 0, 60) == 1000
    backend.close()


def test_results_survive_a_restart(url: str) -> None:
    first = SQLiteBackend(url)
    first.store("t1", states.SUCCESS, b"done", 60)
    first.close()
    second = SQLiteBackend(url)
    assert second.get("t1") == b"done"
    assert second.wait("t1", 0) == b"done"
    second.close()


def test_sqlite_url_scheme_is_accepted(tmp_path: Path) -> None:
    backend = SQLiteBackend(f"sqlite:///{tmp_path / 'r.db'}")
    backend.store("t1", states.SUCCESS, b"done", None)
    assert (tmp_path / "r.db").exists()
    backend.close()


def test_unusable_path_raises_transport_error(tmp_path: Path) -> None:
    backend = SQLiteBackend(f"db+sqlite:///{tmp_path / 'missing-dir' / 'r.db'}")
    with pytest.raises(TransportError, match="missing-dir"):
        backend.get("t1")
    backend.close()
