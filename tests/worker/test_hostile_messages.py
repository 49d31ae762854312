"""Hostile messages written straight into a broker's storage never stop a worker.

Each case is raw bytes (SQLite rows, Redis stream entries and scheduled members, envelopes of the
wrong shape in the memory broker's heap) followed by a good task, with a real burst worker: the
worker returns normally, the good task succeeds, each bad message is in the rejected log
(``app.coordination.rejected()``) with its reason, and is stored FAILURE when it carries a usable
task id.
"""

from __future__ import annotations

import functools
import heapq
import logging
import sqlite3
import struct
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celeriac import Celery, states
from celeriac.brokers import memory as memory_broker
from celeriac.compression import GZIP, MAX_DECOMPRESSED_BYTES
from celeriac.message import Envelope
from celeriac.worker import Worker
from tests.redis.support import BACKEND_DB, BROKER_DB, drop_keys, redis_url

#: one raw message: headers, properties, body, content type, content encoding (bytes or not)
Raw = tuple[Any, Any, Any, Any, Any]
KINDS = ["memory", "sqlite", "redis"]


def _h(task_id: str | None, task: str = "t.add", **extra: Any) -> bytes:
    headers: dict[str, Any] = {"task": task, **extra}
    if task_id is not None:
        headers["id"] = task_id
    return orjson.dumps(headers)


@dataclass
class Case:
    label: str
    raw: Raw
    reason: str
    #: the task id a FAILURE record is stored under, if the message has a usable one
    task_id: str | None = None


def _cases() -> list[Case]:
    def tid() -> str:
        return str(uuid.uuid4())

    good_body = b"[[1, 2], {}, {}]"
    ids = [tid() for _ in range(13)]
    return [
        Case("headers not an object", (b"[1, 2]", b"{}", good_body, "application/json", "utf-8"),
             "headers"),
        Case("headers not json", (b"\x00\xff{", b"{}", good_body, "application/json", "utf-8"),
             "headers"),
        Case("properties not an object",
             (_h(ids[0]), b'"props"', good_body, "application/json", "utf-8"), "properties",
             ids[0]),
        Case("expires not a date",
             (_h(ids[1], expires="tomorrow"), b"{}", good_body, "application/json", "utf-8"),
             "expires", ids[1]),
        Case("timelimit an int",
             (_h(ids[2], timelimit=30), b"{}", good_body, "application/json", "utf-8"),
             "timelimit", ids[2]),
        Case("retries negative",
             (_h(ids[3], retries=-1), b"{}", good_body, "application/json", "utf-8"),
             "retries", ids[3]),
        Case("eta not a date",
             (_h(ids[4], eta="never"), b"{}", good_body, "application/json", "utf-8"),
             "eta", ids[4]),
        Case("priority out of range",
             (_h(ids[5]), b'{"priority": 1000}', good_body, "application/json", "utf-8"),
             "priority", ids[5]),
        Case("embed not a dict",
             (_h(ids[6]), b"{}", b"[[1, 2], {}, 5]", "application/json", "utf-8"), "embed",
             ids[6]),
        Case("callbacks not a list",
             (_h(ids[7]), b"{}", b'[[1, 2], {}, {"callbacks": "x"}]', "application/json",
              "utf-8"), "callbacks", ids[7]),
        Case("group_index a string",
             (_h(ids[8], group_index="1"), b"{}", good_body, "application/json", "utf-8"),
             "group_index", ids[8]),
        Case("content type not text",
             (_h(ids[9]), b"{}", good_body, b"\xff\xfe", "utf-8"), "content type", ids[9]),
        Case("compression unknown",
             (_h(ids[10], compression="application/x-snappy"), b"{}", good_body,
              "application/json", "utf-8"), "compressed with", ids[10]),
        Case("compressed body corrupt",
             (_h(ids[11], compression=GZIP), b"{}", b"not zlib at all", "application/json",
              "utf-8"), "does not decompress", ids[11]),
        Case("decompression bomb",
             (_h(ids[12], compression=GZIP), b"{}", _bomb(), "application/json", "utf-8"),
             "expands beyond", ids[12]),
    ]


@functools.cache
def _bomb() -> bytes:
    """A small zlib body that expands past the limit (64 MiB of zeros: about 64 KiB)."""
    return zlib.compress(b"\0" * (MAX_DECOMPRESSED_BYTES + 1), 9)


# -- per broker: an app, and a way to write raw messages into its storage ----------------------
@dataclass
class Target:
    kind: str
    app: Celery
    #: write raw messages into the "celery" queue, bypassing publish
    inject: Callable[[list[Raw]], None]
    #: broker-specific extra hostile input, with the reason fragments it must be rejected with
    extra: Callable[[], list[str]]
    #: messages left in storage (waiting or claimed)
    stored: Callable[[], int]


def _as_bytes(value: Any) -> Any:
    return value.encode() if isinstance(value, str) else value


@contextmanager
def _target(kind: str, workdir: Path) -> Iterator[Target]:
    if kind == "memory":
        url = f"memory://hostile-{uuid.uuid4().hex}"
        app = Celery("t", broker=url, backend=url)
        state = memory_broker._states.get(url)

        def inject(raws: list[Raw]) -> None:
            with state.lock:
                for h, p, b, t, e in raws:
                    headers = orjson.loads(h) if _loads_ok(h) else h
                    props = orjson.loads(p) if _loads_ok(p) else p
                    env = Envelope(body=b, headers=headers, properties=props, content_type=t,
                                   content_encoding=e)
                    heapq.heappush(state.ready.setdefault("celery", []),
                                   (0, next(state.seq), env))

        def extra() -> list[str]:
            inject([(["not", "a", "mapping"], {}, b"[[], {}, {}]", "application/json", "utf-8"),
                    ({"task": "t.add", "id": "m1"}, "props", "a str body", 5, None)])
            return ["headers", "properties"]

        def stored() -> int:
            with state.lock:
                return sum(len(h) for h in state.ready.values()) + len(state.claimed)

        try:
            yield Target(kind, app, inject, extra, stored)
        finally:
            app.close()
            memory_broker.reset(url)
        return
    if kind == "sqlite":
        path = workdir / f"hostile-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"
        app = Celery("t", broker=url, backend=url)
        app.broker.queue_size("celery")  # creates the schema

        def inject(raws: list[Raw]) -> None:
            with closing(sqlite3.connect(path)) as db, db:
                db.executemany(
                    "INSERT INTO messages (queue, headers, properties, body, content_type,"
                    " content_encoding) VALUES ('celery', ?, ?, ?, ?, ?)",
                    raws,
                )

        def extra() -> list[str]:
            with closing(sqlite3.connect(path)) as db, db:
                # text and numbers where blobs belong, and a priority that is not a number
                db.execute(
                    "INSERT INTO messages (queue, priority, headers, properties, body,"
                    " content_type, content_encoding) VALUES ('celery', 'high', ?, 5, 7, 1, 2)",
                    (_h("s1").decode(),),
                )
            return ["properties"]

        def stored() -> int:
            with closing(sqlite3.connect(path)) as db, db:
                return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])

        try:
            yield Target(kind, app, inject, extra, stored)
        finally:
            app.close()
        return
    assert kind == "redis"
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    broker_url, backend_url = redis_url(BROKER_DB, prefix), redis_url(BACKEND_DB, prefix)
    app = Celery("t", broker=broker_url, backend=backend_url)
    import redis

    raw_client = redis.Redis.from_url(broker_url.partition("?")[0])
    stream, eta_key = f"{prefix}celeriac:q:celery:0", f"{prefix}celeriac:eta:celery"

    def inject(raws: list[Raw]) -> None:
        for h, p, b, t, e in raws:
            fields = {"h": h, "p": p, "b": b, "t": t, "e": e}
            raw_client.xadd(stream, {k: _as_bytes(v) for k, v in fields.items() if v is not None})

    def extra() -> list[str]:
        good = _h("r-ok")
        # missing the body; then a good message with its fields in another order (runs)
        raw_client.xadd(stream, {"h": _h("r1"), "p": b"{}", "t": b"application/json"})
        raw_client.execute_command(
            "XADD", stream, "*", "e", "utf-8", "t", "application/json", "b", b"[[2, 3], {}, {}]",
            "p", "{}", "h", good,
        )
        frame = b"".join(struct.pack(">I", len(x)) + x for x in
                         (good, b"{}", b"[[1, 1], {}, {}]", b"application/json", b"utf-8"))
        due = time.time() - 5
        raw_client.zadd(eta_key, {
            b"x": due,  # too short
            b"5" + b"n" * 8 + struct.pack(">I", 10_000) + b"short": due,  # length past the end
            b"z" + b"n" * 8 + frame: due,  # not a priority digit
            b"3" + b"n" * 8 + frame[:-3]: due,  # cut short
        })
        return ["missing", "scheduled", "scheduled", "scheduled", "scheduled"]

    def stored() -> int:
        return int(raw_client.xlen(stream)) + int(raw_client.zcard(eta_key))

    try:
        yield Target(kind, app, inject, extra, stored)
    finally:
        app.close()
        raw_client.close()
        drop_keys(broker_url)
        drop_keys(backend_url)


def _loads_ok(value: Any) -> bool:
    try:
        return isinstance(orjson.loads(value), dict)
    except (orjson.JSONDecodeError, TypeError):
        return False


def _worker(app: Celery) -> Worker:
    worker = Worker(app, burst=True, pool="solo", install_signal_handlers=False)
    worker.start()
    return worker


def _register(app: Celery) -> Any:
    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    return add


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_rows_then_a_good_task(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cases = _cases()
    with _target(kind, tmp_path) as target:
        app = target.app
        add = _register(app)
        target.inject([case.raw for case in cases])
        extra_reasons = target.extra()
        good = add.delay(2, 2)
        with caplog.at_level(logging.INFO, logger="celeriac.worker"):
            worker = _worker(app)

        assert worker.exitcode == 0
        assert good.get(timeout=5) == 4
        rejected = app.coordination.rejected(limit=1000)
        reasons = [reason for _, reason in rejected]
        expected = len(cases) + len(extra_reasons)
        assert len(reasons) == expected, reasons
        for case in cases:
            assert any(case.reason in r for r in reasons), (case.label, reasons)
            if case.task_id is not None:
                assert app.AsyncResult(case.task_id).state == states.FAILURE, case.label
        for fragment in extra_reasons:
            assert any(fragment in r for r in reasons), (fragment, reasons)
        if kind == "redis":  # the good message with reordered fields ran
            assert app.AsyncResult("r-ok").get(timeout=5) == 5
        assert target.stored() == 0
        # counted, and logged once each: one line, no traceback
        assert worker.executor is not None
        assert worker.executor.rejected_messages == len(cases) + (
            len(extra_reasons) - extra_reasons.count("scheduled")
        )
        lines = [r for r in caplog.records if "malformed" in r.getMessage()]
        assert len(lines) == worker.executor.rejected_messages
        assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)


@pytest.mark.parametrize("kind", KINDS)
def test_a_poison_body_makes_a_bounded_record(kind: str, tmp_path: Path) -> None:
    with _target(kind, tmp_path) as target:
        app = target.app
        add = _register(app)
        huge = b"[" * 10 + b"x" * 5_000_000
        target.inject([(_h("poison", argsrepr="a" * 2_000_000), b"{}", huge, "application/json",
                        "utf-8")])
        good = add.delay(1, 2)
        worker = _worker(app)
        assert worker.exitcode == 0
        assert good.get(timeout=5) == 3
        [(envelope, reason)] = app.coordination.rejected()
        assert len(envelope.body) <= 64 * 1024
        assert envelope.body == huge[: len(envelope.body)]
        assert "truncated" in reason
        assert len(orjson.dumps(dict(envelope.headers))) <= 16 * 1024
        assert envelope.headers["id"] == "poison"


# -- property: arbitrary raw messages at a running worker, on every broker ----------------------
_scalars = st.none() | st.booleans() | st.integers(-5, 2**40) | st.text(max_size=8)
_values = st.recursive(
    _scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                  max_size=2),
    max_leaves=6,
)
_header_maps = st.fixed_dictionaries(
    {"task": st.just("t.add") | _values, "id": st.uuids().map(str) | _values},
    optional={k: _values for k in ("retries", "eta", "expires", "timelimit", "group",
                                   "group_index", "root_id", "parent_id", "ignore_result")},
)
_raw_json = st.binary(max_size=20) | _values.map(orjson.dumps) | _header_maps.map(orjson.dumps)
_raw_messages = st.tuples(
    _header_maps.map(orjson.dumps) | _raw_json,
    _raw_json | st.just(b"{}"),
    st.binary(max_size=30) | _values.map(orjson.dumps)
    | st.tuples(_values, _values, _values).map(lambda t: orjson.dumps(list(t))),
    st.sampled_from(["application/json", "application/x-msgpack", "text/x"])
    | st.binary(max_size=4),
    st.sampled_from(["utf-8", "binary"]),
)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=8, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raws=st.lists(_raw_messages, min_size=1, max_size=3))
def test_arbitrary_messages_never_stop_a_worker(kind: str, raws: list[Raw]) -> None:
    with tempfile.TemporaryDirectory() as tmp, _target(kind, Path(tmp)) as target:
        app = target.app
        add = _register(app)
        target.inject(raws)
        good = add.delay(3, 4)
        worker = _worker(app)
        assert worker.exitcode == 0
        assert good.get(timeout=5) == 7
        assert target.stored() == 0
        assert len(app.coordination.rejected(limit=100)) <= len(raws)
