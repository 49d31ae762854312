"""The SQLite history's queries use its indexes (EXPLAIN QUERY PLAN on a filled file), so a list
page stays fast at 100k tasks without any timing in the tests (``python -m bench dashboard``
prints the times); and what a file made by one process holds, another process reads."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac.dashboard.history import open_history
from celeriac.dashboard.history_sqlite import TABLE, SQLiteHistory
from celeriac.dashboard.task_query import Query
from tests.worker.support import REPO_ROOT

NOW = time.time()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteHistory]:
    opened = open_history(f"sqlite:///{tmp_path / 'plan.db'}")
    assert isinstance(opened, SQLiteHistory)
    events: list[dict[str, Any]] = []
    for i in range(3000):
        at = NOW - 3000 + i
        uuid = f"t{i}"
        common = {"uuid": uuid, "hostname": f"w{i % 4}"}
        events.append({"type": "task-received", "timestamp": at, "name": f"proj.t{i % 7}",
                       "args": "()", "kwargs": "{}", **common})
        kind = "succeeded" if i % 5 else "failed"
        events.append({"type": f"task-{kind}", "timestamp": at + 0.5, "runtime": 0.5,
                       "parent_id": f"t{i - 1}", **common})
    opened.record(events)
    yield opened
    opened.close()


def plan(store: SQLiteHistory, sql: str, params: list[Any] | tuple[Any, ...]) -> str:
    rows = store._conns.get().execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return " | ".join(row[3] for row in rows)


def assert_indexed(found: str, index: str) -> None:
    assert f"USING INDEX {TABLE}_{index}" in found or \
        f"USING COVERING INDEX {TABLE}_{index}" in found, found
    assert "TEMP B-TREE" not in found, found  # no sort of the matching rows
    assert f"SCAN {TABLE}" not in found.split(" | "), found  # no scan without an index


@pytest.mark.parametrize(("filters", "sort_by", "index"), [
    ({"state": "SUCCESS"}, "-received", "state"),
    ({"state": "FAILURE"}, "received", "state"),
    ({"taskname": "proj.t3"}, "-received", "name"),
    ({"workername": "w1"}, "-received", "worker"),
    ({}, "-received", "received"),
    ({}, None, "timestamp"),
    ({"received_start": NOW - 100, "received_end": NOW}, "-received", "received"),
    ({"state": "SUCCESS", "received_start": NOW - 100}, "-received", "state"),
])
def test_list_pages_use_an_index(store: SQLiteHistory, filters: dict[str, Any],
                                 sort_by: str | None, index: str) -> None:
    sql, params = store.select_sql(Query.make(sort_by, **filters), 20, 40)
    assert_indexed(plan(store, sql, params), index)
    assert len(store.tasks(limit=20, offset=40, sort_by=sort_by, **filters)) == 20


def test_counts_task_and_children_use_an_index(store: SQLiteHistory) -> None:
    where, params = store.where(Query.make(None, state="SUCCESS"))
    assert "INDEX" in plan(store, f"SELECT COUNT(*) FROM {TABLE}{where}", params)
    found = plan(store, f"SELECT data FROM {TABLE} WHERE uuid = ?", ["t1"])
    assert "USING INDEX sqlite_autoindex" in found, found
    assert_indexed(plan(store, f"SELECT parent_id, uuid FROM {TABLE} WHERE parent_id IN (?)",
                        ["t1"]), "parent")
    assert store.task("t1")["children"] == ["t2"]  # type: ignore[index]
    for field in ("succeeded", "failed", "received"):
        found = plan(store, f"SELECT {field} FROM {TABLE} WHERE {field} >= ?", [NOW - 60])
        assert f"INDEX {TABLE}_{field}" in found, found
    assert f"INDEX {TABLE}_timestamp" in plan(
        store, f"DELETE FROM {TABLE} WHERE timestamp < ?", [NOW])
    assert "COVERING INDEX" in plan(
        store, f"SELECT DISTINCT name FROM {TABLE} WHERE name IS NOT NULL ORDER BY name", [])
    assert store.task_types() == [f"proj.t{i}" for i in range(7)]


def test_the_file_is_in_wal_mode_and_shared_with_the_results(tmp_path: Path) -> None:
    """History may live in the result backend's file: its own table beside the backend's."""
    from celeriac import Celery

    url = f"sqlite:///{tmp_path / 'app.db'}"
    app = Celery("shared", broker=url, backend=url)
    app.backend.store("r1", "SUCCESS", b"{}", None)
    with open_history(url) as store:
        store.record([{"type": "task-received", "uuid": "u", "hostname": "w",
                       "timestamp": NOW, "name": "n"}])
    app.close()
    conn = sqlite3.connect(tmp_path / "app.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert TABLE in tables and len(tables) > 1
        assert conn.execute(f"SELECT uuid, name FROM {TABLE}").fetchall() == [("u", "n")]
    finally:
        conn.close()


def test_another_process_reads_what_one_wrote(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'proc.db'}"
    code = (
        "import sys, time; from celeriac.dashboard.history import open_history\n"
        "s = open_history(sys.argv[1])\n"
        "s.record([{'type': 'task-succeeded', 'uuid': 'p', 'hostname': 'w',"
        " 'timestamp': time.time(), 'result': '42'}])\n"
        "s.close()\n"
    )
    subprocess.run([sys.executable, "-c", code, url], check=True, cwd=REPO_ROOT, timeout=60)
    with open_history(url) as store:
        task = store.task("p")
    assert task is not None and task["result"] == "42" and task["state"] == "SUCCESS"
