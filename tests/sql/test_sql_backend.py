"""The ``db+`` result backend on PostgreSQL, MariaDB and SQLite: Celery's table layout, Celery's
settings, URL forms, batching and fork safety (the shared contract is tests/backends)."""

from __future__ import annotations

import os
import threading
import uuid

import orjson
import pytest
import sqlalchemy as sa

from celeriac import Celery, states
from celeriac.backends import backend_class
from celeriac.backends.sql import SQLBackend, schema
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.exceptions import ImproperlyConfigured
from celeriac.result_meta import build_meta, encode_meta
from tests.sql.conftest import MakeBackend

CELERY_TASK_COLUMNS = {
    "id", "task_id", "status", "result", "date_done", "traceback", "children", "name", "args",
    "kwargs", "worker", "retries", "queue", "stamps",
}


def test_url_forms_map_to_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "_installed", lambda module: False)
    assert schema.sqlalchemy_url("db+postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert schema.sqlalchemy_url("db+postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert schema.sqlalchemy_url("db+postgresql+psycopg2://h/d") == "postgresql+psycopg://h/d"
    assert schema.sqlalchemy_url("db+mysql://root@h/db") == "mysql+pymysql://root@h/db"
    assert schema.sqlalchemy_url("db+sqlite:///r.db") == "sqlite:///r.db"
    monkeypatch.setattr(schema, "_installed", lambda module: True)
    assert schema.sqlalchemy_url("db+postgresql://h/d") == "postgresql+psycopg2://h/d"
    assert schema.sqlalchemy_url("db+postgresql+psycopg://h/d") == "postgresql+psycopg://h/d"
    assert schema.sqlalchemy_url("db+mysql://h/d") == "mysql+mysqldb://h/d"
    assert schema.sqlalchemy_url("db+mysql+pymysql://h/d") == "mysql+pymysql://h/d"
    with pytest.raises(ImproperlyConfigured, match="unknown database URL scheme"):
        schema.sqlalchemy_url("db+oracle://h/d")
    for in_memory in ("db+sqlite://", "db+sqlite:///:memory:"):
        with pytest.raises(ImproperlyConfigured, match="in-memory SQLite"):
            schema.sqlalchemy_url(in_memory)


def test_schemes_and_the_native_sqlite_backend() -> None:
    for scheme in SQLBackend.schemes:
        assert backend_class(f"{scheme}://h/d") is SQLBackend
    assert backend_class("sqlite:///r.db") is SQLiteBackend


def test_bad_options_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="unknown table 'tasks'"):
        SQLBackend("db+sqlite:///r.db", options={"database_table_names": {"tasks": "x"}})
    with pytest.raises(ImproperlyConfigured, match="must be a dict"):
        SQLBackend("db+sqlite:///r.db", options={"database_engine_options": "pool_size=3"})


def test_nothing_connects_before_first_use(make_backend: MakeBackend, raw: sa.Engine) -> None:
    backend = make_backend()
    assert not sa.inspect(raw).get_table_names()
    backend.get_state("t1")
    assert {"celery_taskmeta", "celery_tasksetmeta", "celeriac_chordcounter"} <= set(
        sa.inspect(raw).get_table_names()
    )


def test_create_tables_at_setup(make_backend: MakeBackend, raw: sa.Engine) -> None:
    make_backend(database_create_tables_at_setup=True)
    assert "celery_taskmeta" in sa.inspect(raw).get_table_names()


def test_rows_in_celerys_layout(make_backend: MakeBackend, raw: sa.Engine) -> None:
    backend = make_backend()
    backend.store("t1", states.SUCCESS, b'{"status": "SUCCESS", "result": 4}', 60)
    backend.store("celery-taskset-meta-g1", states.SUCCESS, b'{"result": [["t1", null]]}', 60)
    columns = {c["name"] for c in sa.inspect(raw).get_columns("celery_taskmeta")}
    assert columns >= CELERY_TASK_COLUMNS
    with raw.connect() as conn:
        task = conn.execute(
            sa.text("SELECT task_id, status, result, payload, date_done FROM celery_taskmeta")
        ).one()
        group = conn.execute(
            sa.text("SELECT taskset_id, result, payload FROM celery_tasksetmeta")
        ).one()
    assert (task.task_id, task.status) == ("t1", "SUCCESS")
    # Celery's column holds the value, as Celery writes it; payload the record as stored.
    assert bytes(task.result) == b"4"
    assert bytes(task.payload) == b'{"status": "SUCCESS", "result": 4}'
    assert task.date_done is not None
    assert (group.taskset_id, bytes(group.result)) == ("g1", b'[["t1",null]]')
    assert backend.get("celery-taskset-meta-g1") == b'{"result": [["t1", null]]}'
    assert backend.get_state("celery-taskset-meta-g1") == states.SUCCESS
    backend.forget("celery-taskset-meta-g1")
    assert backend.get_many(["celery-taskset-meta-g1", "t1"]) == [None, task.payload]


def test_table_names(make_backend: MakeBackend, raw: sa.Engine) -> None:
    names = {"task": "my_results", "group": "my_groups", "counter": "my_counters"}
    backend = make_backend(database_table_names=names)
    backend.store("t1", states.SUCCESS, b"r", None)
    backend.incr("c", 1, None)
    assert set(names.values()) <= set(sa.inspect(raw).get_table_names())
    assert "celery_taskmeta" not in sa.inspect(raw).get_table_names()
    other = make_backend()
    assert other.get("t1") is None


@pytest.mark.parametrize("kind", ["postgresql"])  # schemas are PostgreSQL's namespaces
def test_table_schemas_on_postgresql(kind: str, make_backend: MakeBackend, raw: sa.Engine) -> None:
    name = f"results_{uuid.uuid4().hex[:8]}"
    with raw.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        backend = make_backend(database_table_schemas={"task": name, "group": name})
        backend.store("t1", states.SUCCESS, b"r", None)
        backend.incr("c", 1, None)
        tables = set(sa.inspect(raw).get_table_names(schema=name))
        assert {"celery_taskmeta", "celery_tasksetmeta", "celeriac_chordcounter"} <= tables
        backend.close()
    finally:
        with raw.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


def test_celery_settings_reach_the_backend(url: str, raw: sa.Engine) -> None:
    app = Celery("t", broker="memory://", backend=url)
    app.conf.CELERY_RESULT_DB_TABLENAMES = {"task": "old_name_tasks"}
    app.conf.database_short_lived_sessions = True
    try:
        backend = app.backend
        assert isinstance(backend, SQLBackend)
        backend.store("t1", states.SUCCESS, b"r", None)
        assert "old_name_tasks" in sa.inspect(raw).get_table_names()
        # Short-lived sessions: no pool, so nothing stays connected between operations.
        assert isinstance(backend.engine.pool, sa.pool.NullPool)
    finally:
        app.close()


def test_engine_callback_is_called_with_each_new_engine(url: str) -> None:
    seen: list[sa.Engine] = []
    app = Celery("t", broker="memory://", backend=url)
    app.conf.database_engine_callback = seen.append
    try:
        backend = app.backend
        assert isinstance(backend, SQLBackend)
        assert seen == []  # nothing connects before first use
        backend.store("t1", states.SUCCESS, b"r", None)
        assert seen == [backend.engine]
    finally:
        app.close()


def test_store_many_and_get_many_are_one_statement(make_backend: MakeBackend) -> None:
    backend = make_backend()
    backend.store("warm", states.SUCCESS, b"w", None)
    statements: list[str] = []
    sa.event.listen(
        backend.engine, "before_cursor_execute", lambda *a: statements.append(a[2])
    )
    items = [(f"t{i}", states.SUCCESS, f"r{i}".encode()) for i in range(300)]
    backend.store_many([*items, ("t0", states.FAILURE, b"last wins")], 60)
    assert len([s for s in statements if "celery_taskmeta" in s]) == 1
    statements.clear()
    found = backend.get_many([f"t{i}" for i in range(300)])
    assert len(statements) == 1
    assert found[0] == b"last wins" and found[299] == b"r299"


def test_existing_celery_table_gains_expires_at(make_backend: MakeBackend, raw: sa.Engine) -> None:
    # The table as Celery 5.7 creates it, with a row Celery wrote (JSON-encoded value).
    metadata = sa.MetaData()
    sa.Table(
        "celery_taskmeta", metadata,
        sa.Column(
            "id", sa.Integer,
            sa.Sequence("task_id_sequence"),
            primary_key=True,
        ),
        sa.Column("task_id", sa.String(155), unique=True),
        sa.Column("status", sa.String(50)),
        sa.Column("result", sa.LargeBinary),
        sa.Column("date_done", sa.DateTime),
        sa.Column("traceback", sa.Text),
        sa.Column("children", sa.LargeBinary),
    )
    metadata.create_all(raw)
    with raw.begin() as conn:
        # Celery's ORM inserts the id from the sequence itself.
        conn.execute(sa.insert(metadata.tables["celery_taskmeta"]).values(
            task_id="celery-task", status="SUCCESS", result=b"42"
        ))
    backend = make_backend()
    assert backend.get_state("celery-task") == states.SUCCESS
    assert orjson.loads(backend.get("celery-task") or b"null")["result"] == 42
    backend.store("mine", states.SUCCESS, b'{"status": "SUCCESS", "result": 1}', 60)
    columns = {c["name"] for c in sa.inspect(raw).get_columns("celery_taskmeta")}
    assert {"expires_at", "payload", "name", "args", "worker", "queue"} <= columns
    assert backend.get("mine") == b'{"status": "SUCCESS", "result": 1}'


def test_celery_reads_our_rows_and_we_read_celerys(kind: str, url: str) -> None:
    from celery import Celery as CeleryApp

    ours = make_app(url)
    celery_url = url.replace("db+mysql://", "db+mysql+pymysql://").replace(
        "db+postgresql://", "db+postgresql+psycopg://"
    )
    theirs = CeleryApp("celery-side", broker="memory://", backend=celery_url)
    theirs.conf.result_extended = True
    try:
        meta = build_meta("t-ours", states.SUCCESS, {"x": [1, "two"]})
        meta.update(name="proj.add", args=[1, 2], kwargs={"k": "v"}, worker="w1", retries=3)
        ours.backend.store("t-ours", states.SUCCESS, encode_meta(meta), None)
        got = theirs.backend.get_task_meta("t-ours")
        assert (got["status"], got["result"]) == ("SUCCESS", {"x": [1, "two"]})
        assert (got["name"], got["args"], got["kwargs"], got["retries"]) == (
            "proj.add", [1, 2], {"k": "v"}, 3,
        )
        theirs.backend.store_result("t-theirs", {"y": 2}, states.SUCCESS)
        record = orjson.loads(ours.backend.get("t-theirs") or b"null")
        assert (record["status"], record["result"]) == ("SUCCESS", {"y": 2})
        assert ours.AsyncResult("t-theirs").get(timeout=5) == {"y": 2}
    finally:
        ours.close()
        theirs.backend.ResultSession().get_bind().dispose()


def make_app(url: str) -> Celery:
    return Celery("celeriac-side", broker="memory://", backend=url)


def test_forked_child_uses_its_own_connections(make_backend: MakeBackend) -> None:
    backend = make_backend()
    backend.store("parent", states.SUCCESS, b"p", None)
    assert backend.incr("c", 1, None) == 1
    pid = os.fork()
    if pid == 0:  # the child: exit code says whether its calls worked
        code = 1
        try:
            backend.store("child", states.SUCCESS, b"c", None)
            code = 0 if backend.incr("c", 1, None) == 2 and backend.get("parent") == b"p" else 1
            backend.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's pooled connection was not closed under it by the child.
    assert backend.get("child") == b"c"
    assert backend.incr("c", 1, None) == 3


def test_many_first_users_create_the_tables_at_once(make_backend: MakeBackend) -> None:
    backends = [make_backend() for _ in range(6)]
    barrier = threading.Barrier(len(backends))
    errors: list[BaseException] = []

    def first_use(index: int) -> None:
        barrier.wait()
        try:
            backends[index].store(f"t{index}", states.SUCCESS, b"r", None)
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(i,)) for i in range(len(backends))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert backends[0].get_many([f"t{i}" for i in range(6)]) == [b"r"] * 6
