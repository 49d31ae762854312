"""Compressed task messages (``task_compression``, ``apply_async(compression=...)``, a task's
``compression``): kombu's names and wire types, read both ways, and never trusted."""

from __future__ import annotations

import bz2
import lzma
import zlib

import kombu.compression
import orjson
import pytest

from celeriac import Celery
from celeriac.compression import (
    BZ2,
    GZIP,
    LZMA,
    MAX_DECOMPRESSED_BYTES,
    compress,
    content_type_of,
    decompress,
)
from celeriac.exceptions import DecodeError, ImproperlyConfigured
from celeriac.protocol import build_task_message, decode_task_message
from tests.conftest import RunWorker

BODY = orjson.dumps([[1, 2], {"k": "v" * 200}, {}])


@pytest.mark.parametrize(("name", "wire"), [("zlib", GZIP), ("gzip", GZIP), ("bzip2", BZ2),
                                            ("bzip", BZ2), ("lzma", LZMA), ("xz", LZMA)])
def test_kombus_names_and_types_both_ways(name: str, wire: str) -> None:
    ours, ours_type = compress(BODY, name)
    theirs, theirs_type = kombu.compression.compress(BODY, name)
    assert ours_type == theirs_type == wire
    assert len(ours) < len(BODY)
    assert kombu.compression.decompress(ours, ours_type) == BODY
    assert decompress(theirs, theirs_type) == BODY
    assert content_type_of(wire) == wire


def test_an_unknown_name_is_refused_at_send() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"Unknown compression 'snappy'.*zlib"):
        compress(BODY, "snappy")


@pytest.mark.parametrize("wire", [GZIP, BZ2, LZMA])
def test_hostile_bodies_are_decode_errors(wire: str) -> None:
    good, _ = compress(BODY, wire)
    with pytest.raises(DecodeError, match=r"truncated|does not decompress"):
        decompress(good[: len(good) // 2], wire)
    with pytest.raises(DecodeError, match=r"does not decompress|truncated"):
        decompress(b"\x00garbage" * 10, wire)
    with pytest.raises(DecodeError, match="expands beyond 1000 bytes"):
        decompress(compress(b"\0" * 5000, wire)[0], wire, max_bytes=1000)
    assert decompress(compress(b"\0" * 1000, wire)[0], wire, max_bytes=1000) == b"\0" * 1000
    with pytest.raises(DecodeError, match="not bytes"):
        decompress("text", wire)  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="does not read"):
        decompress(good, "application/x-snappy")
    with pytest.raises(DecodeError, match="does not read"):
        decompress(good, ["not", "a", "type"])


def test_a_bomb_stops_at_the_limit() -> None:
    bomb = zlib.compress(b"\0" * (MAX_DECOMPRESSED_BYTES + 1), 9)
    assert len(bomb) < 100_000
    with pytest.raises(DecodeError, match="expands beyond"):
        decompress(bomb, GZIP)
    for wire, module in ((BZ2, bz2), (LZMA, lzma)):
        with pytest.raises(DecodeError, match="expands beyond"):
            decompress(module.compress(b"\0" * 20_000), wire, max_bytes=10_000)


def test_the_message_carries_the_header_and_decodes() -> None:
    envelope = build_task_message(task_id="t1", name="t.add", args=(1, 2),
                                  kwargs={"k": "v" * 200}, compression="bzip2")
    assert envelope.headers["compression"] == BZ2
    assert bz2.decompress(envelope.body) == orjson.dumps([[1, 2], {"k": "v" * 200}, {
        "callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    message = decode_task_message(envelope, {"application/json"})
    assert message.args == [1, 2] and message.kwargs == {"k": "v" * 200}
    plain = build_task_message(task_id="t2", name="t.add", args=(1, 2))
    assert "compression" not in plain.headers


def test_setting_option_and_task_attribute_each_compress(app: Celery,
                                                         run_worker: RunWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(compression="lzma")
    def mul(x: int, y: int) -> int:
        return x * y

    app.conf.task_compression = "zlib"
    sent = [add.delay(1, 2), add.apply_async((3, 4), compression="bzip2"), mul.delay(5, 6),
            *add.delay_many([(7, 8), (9, 10)])]
    deliveries = app.broker.consume(["celery"], 10, 1)
    by_id = {d.task_id: d.envelope.headers.get("compression") for d in deliveries}
    assert [by_id[r.id] for r in sent] == [GZIP, BZ2, LZMA, GZIP, GZIP]
    app.broker.requeue(deliveries)
    run_worker()
    assert [r.get(timeout=5) for r in sent] == [3, 7, 30, 15, 19]
