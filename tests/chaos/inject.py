"""Malformed messages written straight into a broker's storage, bypassing every check of the
publish path (what a buggy or hostile producer, or a corrupted store, leaves there)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import orjson

#: task numbers of the hostile messages' bodies start here (see :func:`good`)
POISON_BASE = 1_000_000

#: (headers, properties, body) as raw bytes: each one is wrong in its own way
BAD_PARTS: list[tuple[bytes, bytes, bytes]] = [
    (b"not json", b"{}", b"[[], {}, {}]"),
    (b"[1, 2]", b"{}", b"[[], {}, {}]"),
    (orjson.dumps({"task": "chaosapp.work", "id": "p-1"}), b'"props"', b"[[], {}, {}]"),
    (orjson.dumps({"task": "chaosapp.work", "id": "p-2", "expires": "soon"}), b"{}",
     b"[[1, 0], {}, {}]"),
    (orjson.dumps({"task": "chaosapp.work", "id": "p-3", "timelimit": 5}), b"{}",
     b"[[1, 0], {}, {}]"),
    (orjson.dumps({"task": "chaosapp.work", "id": "p-4", "eta": "tomorrow"}), b"{}",
     b"[[1, 0], {}, {}]"),
    (orjson.dumps({"task": "chaosapp.work", "id": "p-5"}), b"{}", b"\xff\xfe\x00garbage"),
    (orjson.dumps({"task": "chaosapp.work", "id": "p-6", "retries": "many"}), b"{}",
     b"[[1, 0], {}, {}]"),
]


def into_sqlite(app: Any, queue: str = "celery") -> int:
    path = app.broker.path
    with closing(sqlite3.connect(path)) as db, db:
        db.executemany(
            "INSERT INTO messages (queue, priority, task_id, headers, properties, body,"
            " content_type, content_encoding) VALUES (?, 0, NULL, ?, ?, ?, ?, 'utf-8')",
            [(queue, h, p, b, "application/json") for h, p, b in BAD_PARTS],
        )
    return len(BAD_PARTS)


def into_redis(app: Any, queue: str = "celery") -> int:
    broker = app.broker
    stream = broker.stream_key(queue, broker.steps_desc[-1])
    client = broker._conn.client
    count = 0
    for h, p, b in BAD_PARTS:
        client.execute_command("XADD", stream, "*", "h", h, "p", p, "b", b,
                               "t", b"application/json", "e", b"utf-8")
        count += 1
    # entries of the wrong shape: fields missing, or in another order
    client.execute_command("XADD", stream, "*", "h", b"{}")
    client.execute_command("XADD", stream, "*", "e", b"utf-8", "b", b"[[], {}, {}]",
                           "t", b"application/json", "p", b"{}",
                           "h", orjson.dumps({"task": "chaosapp.nope", "id": "p-7"}))
    return count + 2


def good(n: int) -> bytes:
    """A well-formed body for ``chaosapp.work``: task number ``POISON_BASE + n``, far from the
    good tasks' numbers, so a hostile message that is valid after all and runs is told apart
    (and counted as a duplicate should it run twice)."""
    return orjson.dumps([[POISON_BASE + n, 0], {}, {}])


def _amqp_messages() -> list[Any]:
    """Messages no celeriac producer sends, as RabbitMQ would carry them: bodies, headers,
    content types and properties each wrong in their own way."""
    import amqp

    from celeriac._amqp.wire import PACKED_HEADER, STASH_HEADER

    work = {"task": "chaosapp.work", "lang": "py"}

    def message(body: bytes, headers: dict[str, Any] | None = None, **props: Any) -> Any:
        props.setdefault("content_type", "application/json")
        props.setdefault("content_encoding", "utf-8")
        return amqp.Message(body, application_headers=headers, delivery_mode=2, **props)

    return [
        amqp.Message(b"\xff\xfe\x00garbage"),  # no properties at all
        message(b"not json", {**work, "id": "a-1"}),
        message(good(1), {**work, "id": "a-2", "expires": "soon"}),
        message(good(2), {**work, "id": "a-3", "timelimit": 5}),
        message(good(3), {**work, "id": "a-4", "eta": "tomorrow"}),
        message(good(4), {**work, "id": "a-5", "retries": "many"}),
        message(good(5), {"task": 42, "id": ["a-6"]}),
        message(good(6), {**work, "id": "a-7"}, content_type="application/x-python-serialize"),
        message(good(7), {**work, "id": "a-8"}, content_type="application/x-yaml",
                content_encoding="rot13"),
        message(good(8), {**work, "id": "a-9", "compression": "application/x-gzip"}),
        message(b"junk" + good(9), {**work, "id": "a-10", PACKED_HEADER: 4}),
        message(good(10), {**work, "id": "a-11", PACKED_HEADER: 10**9}),
        message(b"{not json}" + good(11), {PACKED_HEADER: 10}),
        message(good(12), {**work, "id": "a-12", STASH_HEADER: "not a table"}),
        message(good(13), {**work, "id": "a-13", STASH_HEADER: {"priority": "high",
                                                             "delivery_mode": "x"}}),
        message(good(14), {**work, "id": "a-14", "x-delivery-count": "lots"}),
        message(good(15), {**work, "id": "a-15"}, priority=255),
        message(good(16), {"task": "chaosapp.nope", "id": "a-16"}),
        message(b"[" * 100_000 + b"]" * 100_000, {**work, "id": "a-17"}),
        message(good(17), {**work, "id": "a-18", "argsrepr": "x" * 100_000}),
    ]


def into_amqp(app: Any, queue: str = "celery") -> int:
    """Publish :func:`_amqp_messages` with py-amqp straight into ``queue`` (declared already by
    the good messages sent before)."""
    from celeriac._amqp.connection import close_quietly, open_connection, parse_url

    messages = _amqp_messages()
    conn = open_connection(parse_url(app.broker.url))
    try:
        channel = conn.channel()
        channel.confirm_select()
        for message in messages:
            channel.basic_publish(message, "", queue, mandatory=True)
    finally:
        close_quietly(conn)
    return len(messages)


def into_postgres(app: Any, queue: str = "celery") -> int:
    """INSERT the rows of :data:`BAD_PARTS`, and rows whose other columns hold what no
    publish writes, straight into the broker's table."""
    import psycopg

    from tests.postgres.support import schema_of, server_url

    def headers(task_id: str) -> bytes:
        return orjson.dumps({"task": "chaosapp.work", "id": task_id})

    rows: list[dict[str, Any]] = [
        {"headers": h, "properties": p, "body": b} for h, p, b in BAD_PARTS]
    rows += [
        # a delivery count at the column's limit: the claim adds one
        {"headers": headers("q-1"), "delivery_count": 2**31 - 1},
        {"headers": headers("q-2"), "priority": -32768},
        {"headers": headers("q-3"), "eta": float("-inf")},
        {"headers": headers("q-4"), "eta": float("nan")},
        {"headers": headers("q-5"), "lease_until": float("-inf"), "owner": "nobody"},
        {"headers": headers("q-6"), "lease_until": float("nan")},
        {"headers": headers("q-7"), "content_type": "application/x-python-serialize"},
        {"headers": headers("q-8"), "content_type": "", "content_encoding": "rot13"},
        {"headers": headers("q-9"), "ready_at": float("nan"), "task_id": "not-q-9"},
        {"headers": b"", "properties": b"", "body": b""},
    ]
    columns = ("queue", "priority", "eta", "lease_until", "owner", "delivery_count", "ready_at",
               "task_id", "headers", "properties", "body", "content_type", "content_encoding")
    defaults = {"queue": queue, "priority": 0, "eta": None, "lease_until": None, "owner": None,
                "delivery_count": 0, "ready_at": 0.0, "task_id": None, "properties": b"{}",
                "content_type": "application/json", "content_encoding": "utf-8"}
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema_of(app.broker.url)}")
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO celeriac_messages ({', '.join(columns)})"
                f" VALUES ({', '.join(['%s'] * len(columns))})",
                [tuple({**defaults, "body": good(100 + n), **row}[c] for c in columns)
                 for n, row in enumerate(rows)])
    return len(rows)
