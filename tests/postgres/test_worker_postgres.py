"""Workers on real PostgreSQL: tasks, countdowns and results through one database (broker
``postgresql://``, results ``db+postgresql://``), a prefork pool, and SIGKILLs of the worker
under acks_late load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import pytest

from tests.postgres.support import connect, schema_of, server_url
from tests.redis.test_worker_redis import _stop

TASKS = textwrap.dedent(
    """
    import os
    import psycopg
    from celeriac import Celery

    SCHEMA = os.environ["PW_SCHEMA"]
    app = Celery("pw", broker=os.environ["PW_BROKER"], backend=os.environ["PW_BACKEND"])
    app.conf.worker_lease_seconds = 1.0
    app.conf.worker_prefetch_multiplier = 8

    @app.task
    def echo(i):
        return i

    @app.task(bind=True, acks_late=True)
    def counted(self, i):
        with psycopg.connect(os.environ["PW_SERVER"], autocommit=True) as db:
            db.execute(f"INSERT INTO {SCHEMA}.runs (task_id) VALUES (%s)", (self.request.id,))
        return i
    """
)

WORKER = (
    "import sys; sys.path.insert(0, {root!r}); import pw_tasks; "
    "from celeriac.worker import Worker; "
    "sys.exit(Worker(pw_tasks.app, pool={pool!r}, concurrency=2, hostname={name!r}).start())"
)


@pytest.fixture
def tasks(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    schema = schema_of(pg_url)
    base = server_url().replace("postgresql://", "db+postgresql+psycopg://", 1)
    sep = "&" if "?" in base else "?"
    monkeypatch.setenv("PW_BROKER", pg_url)
    monkeypatch.setenv("PW_BACKEND", f"{base}{sep}options={quote('-csearch_path=' + schema)}")
    monkeypatch.setenv("PW_SCHEMA", schema)
    monkeypatch.setenv("PW_SERVER", server_url())
    (tmp_path / "pw_tasks.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import pw_tasks  # type: ignore[import-not-found]

    pw_tasks.echo.delay(0).forget()  # creates the schema and its tables
    with connect(pg_url) as db:
        db.execute("CREATE TABLE runs (task_id text NOT NULL)")
    yield pw_tasks
    sys.modules.pop("pw_tasks", None)
    pw_tasks.app.close()


def _worker(root: Path, name: str, pool: str = "prefork") -> subprocess.Popen[bytes]:
    log = open(root / f"{name}.log", "ab")  # noqa: SIM115 - closed once the child has it
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER.format(root=str(root), name=name, pool=pool)],
        cwd=root, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return proc


def test_tasks_countdowns_and_results_through_one_database(
    tasks: ModuleType, tmp_path: Path
) -> None:
    now = tasks.echo.delay_many([(i,) for i in range(200)])
    later = [tasks.echo.apply_async((1000 + i,), countdown=0.5) for i in range(5)]
    sent_at = time.time()
    worker = _worker(tmp_path, "pg-prefork")
    try:
        assert [r.get(timeout=60) for r in now] == list(range(200))
        assert [r.get(timeout=60) for r in later] == [1000 + i for i in range(5)]
        assert time.time() >= sent_at + 0.5
        assert worker.poll() is None
    finally:
        _stop(worker)
    assert tasks.app.broker.queue_size("celery") == 0


def _runs(count_distinct: bool, url: str) -> int:
    with connect(url) as db:
        what = "count(DISTINCT task_id)" if count_distinct else "count(*)"
        row = db.execute(f"SELECT {what} FROM runs").fetchone()
    return int(row[0]) if row else 0


def test_sigkilled_workers_lose_no_acks_late_task(
    tasks: ModuleType, pg_url: str, tmp_path: Path
) -> None:
    total = 600
    results = tasks.counted.delay_many([(i,) for i in range(total)])
    for kill in range(3):
        seen = _runs(True, pg_url)
        worker = _worker(tmp_path, f"pg-victim{kill}", pool="threads")
        deadline = time.monotonic() + 60
        while _runs(True, pg_url) < seen + 60 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    assert _runs(True, pg_url) < total, "the kills came too late to matter"
    survivor = _worker(tmp_path, "pg-survivor", pool="threads")
    try:
        assert [r.get(timeout=120) for r in results] == list(range(total))
    finally:
        _stop(survivor)
    assert _runs(True, pg_url) == total
