"""Malformed messages written straight into a broker's storage, bypassing every check of the
publish path (what a buggy or hostile producer, or a corrupted store, leaves there)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import orjson

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
