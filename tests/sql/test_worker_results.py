"""A real worker process storing into the db+ backends (MariaDB, SQLite through SQLAlchemy;
PostgreSQL runs in tests/pairs) and into memcached: results, failures with their type, a chord
counted by the backend, a saved group, and Celery's columns filled on the SQL ones."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType

import orjson
import pytest
import sqlalchemy as sa

from celeriac import chord, group
from celeriac.backends.sql.schema import sqlalchemy_url
from celeriac.result import GroupResult
from tests.memcached.support import drop_keys, memcached_url
from tests.sql.support import isolated_url
from tests.support.workers import WorkerProcess

TIMEOUT_S = 30
KINDS = ["mysql", "sqlite", "memcached"]


@pytest.fixture(params=KINDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind: str = request.param
    if kind == "memcached":
        url = memcached_url()
        yield url
        drop_keys(url)
    else:
        with isolated_url(kind, tmp_path) as url:
            yield url


@pytest.fixture
def tasks(backend_url: str, tmp_path: Path) -> Iterator[ModuleType]:
    shutil.copy(Path(__file__).with_name("worker_tasks.py"), tmp_path / "resulttasks.py")
    env = {"RESULTS_BROKER": f"sqlite:///{tmp_path / 'broker.db'}", "RESULTS_BACKEND": backend_url}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        spec = importlib.util.spec_from_file_location("resulttasks", tmp_path / "resulttasks.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    with ExitStack() as stack:
        worker = WorkerProcess(tmp_path, "resulttasks", env=env, pool="threads", concurrency=2)
        stack.callback(worker.kill)
        stack.callback(module.app.close)
        worker.ready()
        yield module
        assert worker.stop() == 0, worker.output()


def test_results_failures_chords_and_groups(tasks: ModuleType, backend_url: str) -> None:
    assert tasks.add.delay(2, 3).get(timeout=TIMEOUT_S) == 5
    failed = tasks.boom.delay("no such key")
    with pytest.raises(KeyError, match="no such key"):
        failed.get(timeout=TIMEOUT_S)
    assert failed.state == "FAILURE"

    header = [tasks.add.s(i, i) for i in range(10)]
    assert chord(header)(tasks.tsum.s()).get(timeout=TIMEOUT_S) == 90

    saved = group(tasks.add.s(i, 1) for i in range(3)).apply_async()
    saved.save()
    restored = GroupResult.restore(saved.id, app=tasks.app)
    assert restored is not None
    assert restored.get(timeout=TIMEOUT_S) == [1, 2, 3]

    if backend_url.startswith("db+"):
        # Celery's columns, as a Celery process or a SQL tool reads them.
        engine = sa.create_engine(sqlalchemy_url(backend_url), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    sa.text("SELECT status, result, name, worker FROM celery_taskmeta"
                            " WHERE task_id = :t"),
                    {"t": failed.id},
                ).one()
        finally:
            engine.dispose()
        assert row.status == "FAILURE"
        assert orjson.loads(row.result)["exc_type"] == "KeyError"
        assert row.name == "resulttasks.boom"
        assert row.worker
