"""``django-db`` with real worker processes: the worker stores through the ORM (prefork
children and threads), ``AsyncResult`` in this process reads the rows back, a chord completes on the
ORM counter, and the ``result_extended`` columns are filled."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery, chord, states
from celeriac.contrib.django.results.models import ChordCounter, GroupResult, TaskResult
from celeriac.exceptions import TimeoutError as ResultTimeout
from tests.cli.workers import WorkerProcess
from tests.django.conftest import subprocess_env

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "postgres"])

# The worker's project: configured from Django's settings the way Celery's Django docs do it;
# the broker and backend come from the environment so one module serves every test.
PROJECT = textwrap.dedent(
    """
    import os

    from celeriac import Celery

    app = Celery("resultsproj")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(
        broker_url=os.environ["RESULTS_TEST_BROKER"],
        result_backend=os.environ["RESULTS_TEST_BACKEND"],
        result_extended=True,
    )


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def xsum(values):
        return sum(values)


    @app.task
    def boom(message):
        raise ValueError(message)
    """
)

BACKENDS = {"sqlite": "django-db", "postgres": "django-db://postgres"}


@pytest.fixture(params=sorted(BACKENDS))
def backend_url(request: pytest.FixtureRequest) -> str:
    return BACKENDS[request.param]


@pytest.fixture(params=["prefork", "threads"])
def pool(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def worker(
    tmp_path: Path, backend_url: str, pool: str
) -> Iterator[tuple[Celery, WorkerProcess]]:
    """A worker (two prefork children or two threads, each with its own connection) on a
    SQLite broker, and a client app on the same broker and backend."""
    (tmp_path / "resultsproj.py").write_text(PROJECT)
    broker = f"sqlite:///{tmp_path / 'broker.sqlite3'}"
    env = subprocess_env(RESULTS_TEST_BROKER=broker, RESULTS_TEST_BACKEND=backend_url)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    client = Celery("client", broker=broker, backend=backend_url, set_as_current=False)
    with WorkerProcess(
        tmp_path,
        ["-A", "resultsproj", "worker", "-l", "info", "--pool", pool, "-c", "2",
         "-n", "results@%h"],
        env=env,
    ) as proc:
        try:
            proc.wait_for("ready.", timeout_s=60)
            yield client, proc
        finally:
            proc.stop()
            client.close()


def _db(backend_url: str) -> str:
    return "postgres" if backend_url.endswith("postgres") else "default"


def test_worker_stores_results_asyncresult_reads_them(
    worker: tuple[Celery, WorkerProcess], backend_url: str
) -> None:
    client, proc = worker
    results = [client.send_task("resultsproj.add", (i, i), queue="celery") for i in range(6)]
    try:
        assert [r.get(timeout=30) for r in results] == [2 * i for i in range(6)]
    except ResultTimeout:
        raise AssertionError(proc.output()) from None
    assert results[0].state == states.SUCCESS
    row = TaskResult.objects.using(_db(backend_url)).get(task_id=results[3].id)
    # result_extended: the decoded record, column by column, for the admin.
    assert row.status == states.SUCCESS
    assert row.task_name == "resultsproj.add"
    assert row.result == "6"
    assert row.task_args is not None and "3" in row.task_args
    assert row.worker is not None and row.worker.startswith("results@")
    assert row.queue == "celery"
    assert row.retries == 0
    assert row.date_done is not None and row.date_created <= row.date_done
    assert row.expires_at is not None  # result_expires defaults to a day


def test_failure_traceback_is_stored_and_raised(
    worker: tuple[Celery, WorkerProcess], backend_url: str
) -> None:
    client, _ = worker
    failed = client.send_task("resultsproj.boom", ("no luck",))
    with pytest.raises(Exception, match="no luck") as info:
        failed.get(timeout=30)
    assert type(info.value).__name__ == "ValueError"
    assert failed.state == states.FAILURE
    assert failed.traceback is not None and "ValueError: no luck" in failed.traceback
    row = TaskResult.objects.using(_db(backend_url)).get(task_id=failed.id)
    assert row.status == states.FAILURE
    assert row.traceback is not None and "no luck" in row.traceback
    assert row.result is not None and "ValueError" in row.result


def test_chord_completes_on_the_orm_counter(
    worker: tuple[Celery, WorkerProcess], backend_url: str
) -> None:
    client, proc = worker
    header = [client.signature("resultsproj.add", (i, i)) for i in range(8)]
    result = chord(header)(client.signature("resultsproj.xsum"))
    try:
        assert result.get(timeout=60) == sum(2 * i for i in range(8))
    except ResultTimeout:
        raise AssertionError(proc.output()) from None
    db = _db(backend_url)
    group_id = result.parent.id if result.parent is not None else None
    assert group_id is not None
    saved = GroupResult.objects.using(db).get(group_id=group_id)
    assert saved.result is not None and all(sig.id in saved.result for sig in result.parent.results)
    # The last member deleted the counter when it ran the body.
    assert not ChordCounter.objects.using(db).filter(key__contains=group_id).exists()
    assert TaskResult.objects.using(db).filter(task_name="resultsproj.add").count() == 8
