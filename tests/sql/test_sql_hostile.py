"""Hostile conditions for the ``db+`` result backend: junk written straight into its tables,
connections killed by the server, wrong credentials, missing databases, refused connections."""

from __future__ import annotations

import threading
import uuid
from contextlib import ExitStack

import orjson
import pytest
import sqlalchemy as sa

from celeriac import states
from celeriac.backends import create_backend
from celeriac.backends.sql import SQLBackend
from celeriac.exceptions import ImproperlyConfigured, TransportError
from tests.sql.conftest import MakeBackend
from tests.sql.support import MYSQL_URL, POSTGRES_URL, admin_engine

HUGE = b"\xff\x00" * (2 * 1024 * 1024)


def _insert(raw: sa.Engine, task_id: str, status: object, payload: object) -> None:
    """A row as if celeriac had written ``payload``, by hand (no id: the server's default)."""
    with raw.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO celery_taskmeta (task_id, status, payload) VALUES (:t, :s, :p)"),
            {"t": task_id, "s": status, "p": payload},
        )


def test_junk_rows_never_crash_a_reader(
    kind: str, make_backend: MakeBackend, raw: sa.Engine
) -> None:
    backend = make_backend()
    backend.get_state("create the tables")
    _insert(raw, "nulls", None, None)
    _insert(raw, "not-utf8", "SUCCESS", b"\x80\xfe\x00{not json")
    _insert(raw, "huge", "SUCCESS", HUGE)
    _insert(raw, "pickle", "SUCCESS", b"\x80\x04\x95cos\nsystem\n(S'touch /tmp/pwned'\ntR.")
    _insert(raw, "odd-state", "NOT A STATE", b"x")
    if kind == "sqlite":  # loosely typed columns: wrong types too
        _insert(raw, "int-result", b"\xff\xfe", 42)
        _insert(raw, "text-result", "SUCCESS", "caf\u00e9 as text")
    assert backend.get("nulls") is None
    assert backend.get_state("nulls") is None
    assert backend.wait("nulls", 0.05) is None
    assert backend.get("not-utf8") == b"\x80\xfe\x00{not json"
    assert backend.wait("not-utf8", 1) == b"\x80\xfe\x00{not json"
    assert backend.get("huge") == HUGE
    # Bytes are handed back as they are: nothing is unpickled or run.
    assert backend.get("pickle", ) is not None
    assert backend.get_state("odd-state") == "NOT A STATE"
    assert backend.wait("odd-state", 0.05) is None
    if kind == "sqlite":
        assert backend.get("int-result") is None
        assert backend.get_state("int-result") is None
        assert backend.get("text-result") == "caf\u00e9 as text".encode()
        assert backend.get_many(["int-result", "text-result", "huge"]) == [
            None, "caf\u00e9 as text".encode(), HUGE,
        ]


def test_rows_celery_wrote_are_read_without_unpickling(
    make_backend: MakeBackend, raw: sa.Engine
) -> None:
    backend = make_backend()
    backend.get_state("create the tables")
    marker = b"cos\nsystem\n(S'touch /tmp/celeriac-pwned'\ntR."
    with raw.begin() as conn:
        insert = sa.text(
            "INSERT INTO celery_taskmeta (task_id, status, result, traceback)"
            " VALUES (:t, :s, :r, :tb)"
        )
        conn.execute(insert, {"t": "json", "s": "SUCCESS", "r": b'{"x": [1, 2]}', "tb": None})
        conn.execute(insert, {"t": "failed", "s": "FAILURE", "r": b'{"exc_type": "ValueError",'
                              b' "exc_message": ["bad"], "exc_module": "builtins"}', "tb": "Tb"})
        conn.execute(insert, {"t": "pickled", "s": "SUCCESS", "r": marker, "tb": None})
    record = orjson.loads(backend.get("json") or b"null")
    assert (record["status"], record["result"]) == ("SUCCESS", {"x": [1, 2]})
    assert record["task_id"] == "json"
    assert orjson.loads(backend.wait("failed", 1) or b"null")["traceback"] == "Tb"
    assert backend.get("pickled") is None
    assert backend.get_state("pickled") == states.SUCCESS
    assert backend.wait("pickled", 0.05) is None
    # A group Celery saved: its result column holds the encoded member list.
    with raw.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO celery_tasksetmeta (taskset_id, result) VALUES (:g, :r)"),
            {"g": "g1", "r": b'[["json", null]]'},
        )
    group = orjson.loads(backend.get("celery-taskset-meta-g1") or b"null")
    assert group["result"] == [["json", None]]
    assert backend.get_many(["celery-taskset-meta-g1", "json"])[1] == backend.get("json")


def test_overflowing_counter_is_a_clear_error(
    kind: str, make_backend: MakeBackend, raw: sa.Engine
) -> None:
    backend = make_backend()
    assert backend.incr("c", 1, None) == 1
    with raw.begin() as conn:
        conn.execute(sa.text("UPDATE celeriac_chordcounter SET value = 9223372036854775807"))
    if kind == "sqlite":  # SQLite turns an overflowing sum into a float: still a number back
        assert isinstance(backend.incr("c", 1, None), int)
    else:
        with pytest.raises(TransportError) as info:
            backend.incr("c", 1, None)
        assert "\n" not in str(info.value)
    assert backend.incr("other", 1, None) == 1


def _kill_connections(kind: str, name: str, connection_ids: list[int]) -> None:
    admin = admin_engine(kind)
    try:
        with admin.begin() as conn:
            if kind == "postgresql":
                killed = conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = :name"
                    ),
                    {"name": name},
                ).fetchall()
                assert killed
            else:
                for connection_id in connection_ids:
                    conn.execute(sa.text(f"KILL {int(connection_id)}"))
    finally:
        admin.dispose()


def _connection_ids(backend: SQLBackend, kind: str) -> list[int]:
    if kind != "mysql":
        return []
    with backend.engine.connect() as conn:
        return [int(conn.execute(sa.text("SELECT CONNECTION_ID()")).scalar_one())]


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_killed_connection_is_replaced(kind: str, make_backend: MakeBackend) -> None:
    name = f"celeriac-test-{uuid.uuid4().hex[:8]}"
    connect_args = {"application_name": name} if kind == "postgresql" else {}
    backend = make_backend(database_engine_options={"connect_args": connect_args})
    backend.store("t1", states.SUCCESS, b"before", None)
    assert backend.incr("c", 1, None) == 1

    _kill_connections(kind, name, _connection_ids(backend, kind))
    # A read meets the dead connection and runs again on a fresh one.
    assert backend.get("t1") == b"before"

    _kill_connections(kind, name, _connection_ids(backend, kind))
    # incr is not run twice (the first try may have counted): it fails or counts once.
    try:
        value = backend.incr("c", 1, None)
    except TransportError:
        value = backend.incr("c", 1, None)
    assert value == 2
    backend.store("t2", states.SUCCESS, b"after", None)
    assert backend.get_many(["t1", "t2"]) == [b"before", b"after"]


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_every_pooled_connection_killed_at_once(kind: str, make_backend: MakeBackend) -> None:
    # What a server restart does to the pool: every connection in it is dead.
    backend = make_backend()
    backend.store_many([(f"t{i}", states.SUCCESS, f"r{i}".encode()) for i in range(4)], None)
    own_id = "SELECT pg_backend_pid()" if kind == "postgresql" else "SELECT CONNECTION_ID()"
    with ExitStack() as stack:
        held = [stack.enter_context(backend.engine.connect()) for _ in range(4)]
        ids = [int(conn.execute(sa.text(own_id)).scalar_one()) for conn in held]
        for conn in held:
            conn.rollback()
    admin = admin_engine(kind)
    try:
        with admin.begin() as conn:
            for connection_id in ids:
                if kind == "postgresql":
                    conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": connection_id})
                else:
                    conn.execute(sa.text(f"KILL {connection_id}"))
    finally:
        admin.dispose()
    found: list[object] = []

    def use(index: int) -> None:
        try:
            found.append(backend.get(f"t{index}"))
            backend.store(f"n{index}", states.SUCCESS, b"new", None)
        except BaseException as exc:  # collected: the assertion below names it
            found.append(exc)

    threads = [threading.Thread(target=use, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(repr, found)) == sorted(repr(f"r{i}".encode()) for i in range(4))
    assert backend.get_many([f"n{i}" for i in range(4)]) == [b"new"] * 4


def _server_part(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[-1].rsplit("/", 1)[0]


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        (f"db+postgresql://postgres:s3cret@{_server_part(POSTGRES_URL)}/no_such_db", "no_such_db"),
        (f"db+postgresql://nobody:s3cret@{_server_part(POSTGRES_URL)}/test", "nobody"),
        (f"db+mysql://root:s3cret@{_server_part(MYSQL_URL)}/test", "Access denied"),
        (f"db+mysql://root@{_server_part(MYSQL_URL)}/no_such_db", "no_such_db"),
        ("db+postgresql://postgres:s3cret@127.0.0.1:1/test", "127.0.0.1"),
        ("db+mysql://root:s3cret@127.0.0.1:1/test", "127.0.0.1"),
    ],
)
def test_connection_failures_are_one_line_naming_the_url(url: str, needle: str) -> None:
    admin_engine("postgresql" if "postgresql" in url else "mysql").dispose()
    backend = create_backend(url)
    with pytest.raises(TransportError) as info:
        backend.get("t1")
    message = str(info.value)
    assert "\n" not in message
    assert needle in message
    assert "s3cret" not in message
    assert message.startswith("result backend db+")
    backend.close()


def test_missing_directory_for_sqlite(tmp_path: object) -> None:
    backend = create_backend(f"db+sqlite:///{tmp_path}/missing/dir/r.db")
    with pytest.raises(TransportError, match="unable to open database file"):
        backend.store("t1", states.SUCCESS, b"x", None)


def test_missing_driver_names_the_extra() -> None:
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("mysqlclient is installed")
    backend = create_backend("db+mysql+mysqldb://root@127.0.0.1/test")
    with pytest.raises(ImproperlyConfigured, match=r"celeriac\[mysql\]"):
        backend.get("t1")
