"""Tests on a private PostgreSQL server (initdb into a temporary directory, its own port), for
what the shared test server must never be put through: a restart under load (a worker drains
tasks while the server restarts; nothing published is lost, the worker reconnects by itself),
and password authentication (a wrong password is one clear line)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac.brokers import create_broker
from celeriac.exceptions import BrokerConnectionError
from tests.postgres.support import IN_CI
from tests.redis.support import BACKEND_DB, drop_keys, redis_url
from tests.redis.test_worker_redis import _stop


class PrivatePostgres:
    """A throwaway cluster owned by the ``postgres`` user when run as root."""

    def __init__(self, root: Path, password: str | None = None) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found and shutil.which("pg_ctl") is None:
            reason = "no PostgreSQL server binaries (pg_ctl) on this machine"
            if IN_CI:
                pytest.fail(reason)
            pytest.skip(reason)
        self.bin = Path(found[-1]).parent if found else Path(str(shutil.which("pg_ctl"))).parent
        self.root = root
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        auth = ["-A", "trust"]
        if password is not None:
            (root / "pw").write_text(password)
            auth = ["-A", "scram-sha-256", f"--pwfile={root / 'pw'}"]
            self.url = f"postgresql://postgres:{password}@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(root / "data"), *auth, "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:  # the server refuses to run as root
            for path in (self.root, *self.root.iterdir()):
                shutil.chown(path, "postgres")
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
                   " -c fsync=off -c max_connections=50")
        self._run("pg_ctl", "-D", str(self.root / "data"), "-o", options,
                  "-l", str(self.root / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")


@pytest.fixture
def private_postgres(request: pytest.FixtureRequest) -> Iterator[PrivatePostgres]:
    # Not under pytest's tmp_path: its 0700 parents would keep the postgres user out.
    root = Path(tempfile.mkdtemp(prefix="celeriac-pg-"))
    server = PrivatePostgres(root, getattr(request, "param", None))
    yield server
    try:
        server.stop()
    except subprocess.CalledProcessError:
        pass  # already stopped
    shutil.rmtree(root, ignore_errors=True)


TASKS = textwrap.dedent(
    """
    import os
    from celeriac import Celery

    app = Celery("pr", broker=os.environ["PR_BROKER"], backend=os.environ["PR_BACKEND"])
    app.conf.worker_lease_seconds = 2.0
    app.conf.worker_prefetch_multiplier = 16

    @app.task
    def echo(i):
        return i
    """
)
WORKER = (
    "import sys; sys.path.insert(0, {root!r}); import pr_tasks; "
    "from celeriac.worker import Worker; "
    "sys.exit(Worker(pr_tasks.app, pool='threads', concurrency=4, hostname='pr@test').start())"
)


def test_a_restart_under_load_loses_nothing(
    private_postgres: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = redis_url(BACKEND_DB)
    monkeypatch.setenv("PR_BROKER", private_postgres.url)
    monkeypatch.setenv("PR_BACKEND", backend)
    (tmp_path / "pr_tasks.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import pr_tasks  # type: ignore[import-not-found]

    log = open(tmp_path / "worker.log", "ab")  # noqa: SIM115 - closed once the child has it
    worker = subprocess.Popen([sys.executable, "-c", WORKER.format(root=str(tmp_path))],
                              cwd=tmp_path, env=dict(os.environ), stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        before = pr_tasks.echo.delay_many([(i,) for i in range(2000)])
        assert before[100].get(timeout=60) == 100
        private_postgres.stop()  # every session is ended; in-flight transactions roll back
        time.sleep(0.5)
        private_postgres.start()
        after = pr_tasks.echo.delay_many([(i,) for i in range(2000, 2500)])
        results = before + after
        assert [r.get(timeout=120) for r in results] == list(range(2500))
        assert worker.poll() is None, "the worker died instead of reconnecting"
        assert pr_tasks.app.broker.queue_size("celery") == 0
    finally:
        _stop(worker)
        sys.modules.pop("pr_tasks", None)
        pr_tasks.app.close()
        drop_keys(backend)


@pytest.mark.parametrize("private_postgres", ["right-pw"], indirect=True)
def test_a_wrong_password_is_one_clear_line(private_postgres: PrivatePostgres) -> None:
    wrong = private_postgres.url.replace(":right-pw@", ":wrong-pw@")
    broker = create_broker(wrong)
    try:
        with pytest.raises(BrokerConnectionError) as info:
            broker.queue_size("q")
    finally:
        broker.close()
    message = str(info.value)
    assert "\n" not in message and "wrong-pw" not in message
    assert f"postgres:***@127.0.0.1:{private_postgres.port}/postgres" in message
    assert "wrong user name or password" in message
    right = create_broker(private_postgres.url)
    try:
        assert right.queue_size("q") == 0  # the right one connects (and creates the schema)
    finally:
        right.close()
