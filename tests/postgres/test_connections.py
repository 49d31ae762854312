"""URLs, connection errors, fork safety and the versioned schema of the PostgreSQL transport."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from celeriac._postgres.conn import parse_url
from celeriac._postgres.schema import migrations
from celeriac.brokers import create_broker
from celeriac.brokers.postgres import PostgresBroker
from celeriac.coordination import create_store
from celeriac.coordination.postgres import PostgresCoordination
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured, TransportError
from tests.brokers.conftest import envelope
from tests.postgres.support import connect, postgres_url, server_url, unique_schema

ROOT = Path(__file__).resolve().parents[2]


def _server() -> tuple[str, int, str]:
    parts = urlsplit(server_url())
    return parts.hostname or "127.0.0.1", parts.port or 5432, parts.path.lstrip("/") or "test"


# -- URLs --------------------------------------------------------------------------------------
def test_sqlalchemy_urls_lose_their_db_and_driver_parts() -> None:
    for url in ("db+postgresql://u:pw@h:5433/d", "db+postgresql+psycopg://u:pw@h:5433/d",
                "db+postgresql+psycopg2://u:pw@h:5433/d", "postgres://u:pw@h:5433/d"):
        params = parse_url(url)
        assert params.conninfo.startswith("postgresql://u:pw@h:5433/d?"), url
        assert params.display == "postgresql://u:***@h:5433/d".replace(
            "postgresql", urlsplit(url).scheme)
        assert params.schema is None
    assert isinstance(create_store("db+postgresql+psycopg://u@h/d"), PostgresCoordination)


def test_schema_from_the_url_or_the_options_and_unknown_parameters_dropped() -> None:
    params = parse_url("postgresql://h/d?schema=jobs&sslmode=disable&pool_size=5")
    assert params.schema == "jobs"
    assert "sslmode=disable" in params.conninfo and "pool_size" not in params.conninfo
    assert parse_url("postgresql://h/d", {"schema": "other"}).schema == "other"
    with pytest.raises(ImproperlyConfigured, match="plain identifier"):
        parse_url("postgresql://h/d?schema=x;drop")
    with pytest.raises(ImproperlyConfigured, match="Not a PostgreSQL URL"):
        parse_url("mysql://u:secret@h/d")


def test_the_password_is_masked_in_the_query_too() -> None:
    params = parse_url("postgresql://h/d?password=hunter2&user=me")
    assert "hunter2" not in params.display
    assert "password=***" in params.display


# -- errors: one line naming the URL (password masked) and the fix ----------------------------
def _one_line_error(url: str) -> str:
    broker = create_broker(url)
    try:
        with pytest.raises(BrokerConnectionError) as info:
            broker.publish("q", envelope("t"))
    finally:
        broker.close()
    message = str(info.value)
    assert "\n" not in message
    assert "s3cret" not in message
    return message


def test_refused_port() -> None:
    host, _, db = _server()
    message = _one_line_error(f"postgresql://postgres:s3cret@{host}:1/{db}")
    assert f"postgresql://postgres:***@{host}:1/{db}" in message
    assert "is PostgreSQL running" in message


def test_unknown_user() -> None:
    postgres_url()  # skips without a server
    host, port, db = _server()
    message = _one_line_error(f"postgresql://nobody_here:s3cret@{host}:{port}/{db}")
    assert "nobody_here:***@" in message and "user name" in message


def test_missing_database() -> None:
    postgres_url()
    host, port, _ = _server()
    message = _one_line_error(f"postgresql://postgres:s3cret@{host}:{port}/no_such_db_here")
    assert "no_such_db_here" in message and "createdb" in message


def test_nothing_connects_before_first_use() -> None:
    broker = create_broker("postgresql://postgres@127.0.0.1:1/test")
    store = create_store("postgresql://postgres@127.0.0.1:1/test")
    broker.close()
    store.close()
    with pytest.raises(TransportError):
        store.workers()


# -- schema versions ---------------------------------------------------------------------------
STARTER = textwrap.dedent(
    """
    import sys, time
    from celeriac.brokers.postgres import PostgresBroker
    from celeriac.message import Envelope

    url, start_at = sys.argv[1], float(sys.argv[2])
    while time.time() < start_at:
        time.sleep(0.001)
    broker = PostgresBroker(url)
    broker.publish("q", Envelope(b"[[], {}, {}]", {"id": sys.argv[3], "task": "t"}))
    broker.close()
    """
)


def test_processes_starting_at_once_create_the_schema_once(pg_url: str) -> None:
    import time

    start_at = str(time.time() + 1.0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", STARTER, pg_url, start_at, f"p{i}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    with connect(pg_url) as db:
        versions = [v for (v,) in db.execute("SELECT version FROM celeriac_schema_version")]
        count = db.execute("SELECT count(*) FROM celeriac_messages").fetchone()[0]
    assert versions == [v for v, _ in migrations()]
    assert count == 4


def test_a_later_migration_is_applied_to_an_older_schema(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    PostgresBroker(pg_url).close()
    broker = PostgresBroker(pg_url)
    broker.queue_size("q")  # at version 1
    broker.close()
    from celeriac._postgres import schema as pg_schema

    newer = [*migrations(), (9999, "ALTER TABLE celeriac_messages ADD COLUMN extra_test int;")]
    monkeypatch.setattr(pg_schema, "migrations", lambda: newer)
    later = PostgresBroker(pg_url)
    later.publish("q", envelope("t"))
    later.close()
    with connect(pg_url) as db:
        versions = [v for (v,) in db.execute(
            "SELECT version FROM celeriac_schema_version ORDER BY version")]
        db.execute("SELECT extra_test FROM celeriac_messages")
    assert versions == [v for v, _ in newer]


# -- fork safety -------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_uses_or_ends_the_parents_session(broker: PostgresBroker) -> None:
    def backend_pid() -> int:
        return int(broker._pool.run(lambda c: c.execute("SELECT pg_backend_pid()").fetchone()[0]))

    before = backend_pid()
    broker.publish("q", envelope("parent"))
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            code = 0 if backend_pid() != before else 3
            broker.publish("q", envelope("child"))
            broker.close()  # closes the child's own connections only
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend_pid() == before  # the parent's pooled session survived the child
    got = broker.consume(["q"], 10, 5.0)
    assert sorted(d.task_id for d in got) == ["child", "parent"]


def test_schemas_of_two_urls_do_not_see_each_other() -> None:
    one, two = postgres_url(unique_schema()), postgres_url(unique_schema())
    first, second = PostgresBroker(one), PostgresBroker(two)
    try:
        first.publish("q", envelope("a"))
        assert second.consume(["q"], 10, 0.2) == []
        assert [d.task_id for d in first.consume(["q"], 10, 1.0)] == ["a"]
    finally:
        first.close()
        second.close()
        from tests.postgres.support import drop_schema

        drop_schema(one)
        drop_schema(two)


def test_server_errors_become_transport_errors(pg_url: str, broker: PostgresBroker) -> None:
    broker.queue_size("q")
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{urlsplit(pg_url).query.split("=")[1]}" CASCADE')
    with pytest.raises(TransportError, match="UndefinedTable"):
        broker.queue_size("q")


BAD_APP = textwrap.dedent(
    """
    from celeriac import Celery

    app = Celery("bad", broker="postgresql://postgres:s3cret@127.0.0.1:1/test",
                 backend="memory://bad")
    app.conf.task_publish_retry = False

    @app.task
    def add(x, y):
        return x + y
    """
)


def test_the_cli_says_one_line_for_an_unreachable_broker(tmp_path: Path) -> None:
    (tmp_path / "badapp.py").write_text(BAD_APP)
    done = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "badapp", "call", "badapp.add", "--args",
         "[1, 2]"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])},
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert "postgres:***@127.0.0.1:1/test" in errors[0] and "is PostgreSQL running" in errors[0]
    assert "s3cret" not in done.stderr + done.stdout


def test_a_store_on_the_result_backends_url_keeps_its_tables_there(pg_url: str) -> None:
    from urllib.parse import quote

    from tests.postgres.support import schema_of

    schema = schema_of(pg_url)
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')  # as the result backend's user made it
    base = server_url().replace("postgresql://", "db+postgresql+psycopg2://", 1)
    sep = "&" if "?" in base else "?"
    store = create_store(f"{base}{sep}options={quote('-csearch_path=' + schema)}")
    try:
        store.revoke(["t1", "t1", "t2"], 60)
        assert store.revoked(["t1", "t3"]) == {"t1"}
        assert store.add_once("k", 60) and not store.add_once("k", 60)
    finally:
        store.close()
    with connect(pg_url) as db:
        assert db.execute("SELECT count(*) FROM celeriac_revoked").fetchone() == (2,)


def test_publish_once_exists_as_the_capability_says() -> None:
    from celeriac.brokers import Broker

    implemented = PostgresBroker.publish_once is not Broker.publish_once
    assert implemented and PostgresBroker.capabilities.atomic_publish_once


def test_the_urls_own_options_are_kept_beside_the_schema(pg_url: str) -> None:
    from urllib.parse import quote

    broker = PostgresBroker(f"{pg_url}&options={quote('-c statement_timeout=4321')}")
    try:
        row = broker._pool.run(lambda c: c.execute(
            "SELECT current_setting('statement_timeout'), current_schemas(false)").fetchone())
    finally:
        broker.close()
    assert row is not None
    timeout, schemas = row
    assert timeout == "4321ms"
    assert schemas[0] == pg_url.rsplit("schema=", 1)[1]
