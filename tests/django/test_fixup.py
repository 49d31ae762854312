"""The Django fix-up: the CLI sets Django up for a Django project's app (the pattern of
Celery's Django docs, no ``django.setup()`` in celery.py), the worker closes stale connections
around tasks, ``delay_on_commit`` waits for the commit."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from celeriac import Celery, signals
from celeriac.contrib.django import fixup
from celeriac.exceptions import ImproperlyConfigured
from tests.conftest import RunWorker
from tests.django.conftest import REPO, subprocess_env

DEMO = REPO / "examples" / "django_demo"


def demo_env(data_dir: Path, settings: str = "celery_demo.settings") -> dict[str, str]:
    return subprocess_env(
        DJANGO_SETTINGS_MODULE=settings,
        CELERY_DEMO_DATA_DIR=str(data_dir),
        CELERY_DEMO_BROKER_URL=f"sqlite:///{data_dir / 'broker.sqlite3'}",
    )


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=DEMO, env=env, check=True,
        timeout=90,
    )


def start(
    args: list[str], env: dict[str, str], log: Path, cwd: Path = DEMO
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 40) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in the output:\n{log.read_text(errors='replace')}")


@pytest.fixture
def client_app(tmp_path: Path) -> Iterator[Celery]:
    app = Celery("client", broker=f"sqlite:///{tmp_path / 'broker.sqlite3'}", set_as_current=False)
    yield app
    app.close()


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_worker_runs_a_django_project_set_up_the_celery_docs_way(
    tmp_path: Path, client_app: Celery, pool: str
) -> None:
    """``celeriac -A celery_demo worker``: tasks.py imports a model at module level and a task
    queries the database, in a prefork child too (connections dropped after fork)."""
    env = demo_env(tmp_path)
    migrate(env)
    log = tmp_path / "worker.log"
    worker = start(
        ["celeriac", "-A", "celery_demo", "worker", "-l", "info", "--pool", pool, "-c", "2"],
        env, log,
    )
    try:
        output = wait_for(log, "ready.", worker)
        assert "AppRegistryNotReady" not in output
        assert "celery_app.tasks.user_count" in output  # autodiscovered over INSTALLED_APPS
        count = client_app.send_task("celery_app.tasks.user_count")
        assert count.get(timeout=30) == 0
        assert client_app.send_task("celery_app.tasks.add", (2, 3)).get(timeout=30) == 5
    finally:
        stop(worker)


def test_install_does_nothing_outside_a_django_process(
    monkeypatch: pytest.MonkeyPatch, app: Celery
) -> None:
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    assert fixup.install(app) is False
    assert not app.conf.get("worker_middleware")


def test_install_adds_the_middleware_once(monkeypatch: pytest.MonkeyPatch, app: Celery) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.django.settings")
    app.conf.worker_middleware = ["celeriac.middleware:StartedMiddleware"]
    assert fixup.install(app) is True
    assert fixup.install(app) is True
    assert app.conf.worker_middleware == ["celeriac.middleware:StartedMiddleware", fixup.MIDDLEWARE]
    assert any(isinstance(m, fixup.DjangoMiddleware) for m in app.middleware)


@pytest.mark.django_db(transaction=True)
def test_middleware_closes_an_obsolete_connection_before_the_task(
    monkeypatch: pytest.MonkeyPatch, app: Celery, run_worker: RunWorker
) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.django.settings")
    fixup.install(app)
    seen: list[Any] = []

    @app.task
    def probe() -> None:
        seen.append(connection.connection)

    connection.ensure_connection()
    opened = connection.connection
    assert opened is not None
    connection.close_at = time.monotonic() - 1  # past CONN_MAX_AGE
    probe.delay()
    run_worker()
    assert seen == [None]  # closed before the task ran; its first query reconnects


@pytest.mark.django_db(transaction=True)
def test_middleware_keeps_a_healthy_connection_across_tasks(
    monkeypatch: pytest.MonkeyPatch, app: Celery, run_worker: RunWorker
) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.django.settings")
    fixup.install(app)
    seen: list[Any] = []

    @app.task
    def probe() -> None:
        connection.ensure_connection()
        connection.close_at = None  # persistent (CONN_MAX_AGE=None): never obsolete
        seen.append(connection.connection)

    probe.delay()
    probe.delay()
    run_worker()
    assert len(seen) == 2 and seen[0] is not None
    assert seen[1] is seen[0]


@pytest.mark.django_db(transaction=True)
def test_delay_on_commit_sends_after_commit_and_never_after_rollback(
    monkeypatch: pytest.MonkeyPatch, app: Celery, run_worker: RunWorker
) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.django.settings")
    fixup.install(app)
    ran: list[int] = []

    @app.task
    def record(n: int) -> None:
        ran.append(n)

    sent: list[Any] = []

    def on_publish(sender: Any = None, **_: Any) -> None:
        sent.append(sender)

    signals.after_task_publish.connect(on_publish)
    try:
        with transaction.atomic():
            record.delay_on_commit(1)
            record.apply_async_on_commit((2,), countdown=0)
            assert sent == []  # nothing sent before the commit
        assert len(sent) == 2
    finally:
        signals.after_task_publish.disconnect(on_publish)
    with pytest.raises(RuntimeError), transaction.atomic():
        record.delay_on_commit(3)
        raise RuntimeError("roll back")
    run_worker()
    assert sorted(ran) == [1, 2]


def test_delay_on_commit_without_an_integration_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, app: Celery
) -> None:
    from celeriac import _state

    monkeypatch.setattr(_state, "_on_commit", None)

    @app.task
    def noop() -> None:
        return None

    with pytest.raises(ImproperlyConfigured, match=r"celeriac\.contrib\.django"):
        noop.delay_on_commit()


def test_the_django_app_installs_the_on_commit_hook_in_every_process() -> None:
    """CeleriacConfig.ready ran at django.setup() (a web process has no CLI fix-up)."""
    from celeriac import _state

    assert _state._on_commit is transaction.on_commit


def test_install_when_configured_from_django_settings_without_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    app = Celery("from_settings", set_as_current=False)
    try:
        app.config_from_object("django.conf:settings", namespace="CELERY")
        assert fixup.is_django_process(app)
        assert fixup.install(app) is True
        assert fixup.MIDDLEWARE in app.conf.worker_middleware
    finally:
        app.close()


@pytest.mark.django_db(transaction=True)
def test_a_forked_child_drops_inherited_connections_without_closing_them(
    monkeypatch: pytest.MonkeyPatch, app: Celery
) -> None:
    """worker_process_init (sent in each prefork child): the child forgets the connection it
    inherited; closing it would end the parent's session on the shared socket."""
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.django.settings")
    fixup.install(app)
    connection.ensure_connection()
    inherited = connection.connection
    try:
        signals.worker_process_init.send(sender=None)
        assert connection.connection is None
        assert inherited.execute("select 1").fetchone() == (1,)  # still open for the parent
        connection.ensure_connection()
        assert connection.connection is not inherited
    finally:
        inherited.close()
