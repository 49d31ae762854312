"""What the README says about sharing a Redis with Celery: the message is the same, the queue
layout is not. A task a Celery 5 client sends is a protocol v2 message celeriac decodes, but it
sits in kombu's list where no celeriac worker looks (celeriac's queues are streams)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import pytest

from celeriac import Celery
from celeriac.message import Envelope
from celeriac.protocol import decode_task_message
from celeriac.serialization import accepted_types
from tests.redis.support import REDIS_BROKER_DB, drop_keys, redis_url

celery = pytest.importorskip("celery")


@pytest.fixture
def url() -> Iterator[str]:
    value = redis_url(REDIS_BROKER_DB)
    yield value
    drop_keys(value)


def test_a_celery_clients_task_is_not_in_celeriacs_queue(url: str) -> None:
    import redis

    base, _, prefix = url.partition("?global_keyprefix=")
    queue = f"layout-{uuid.uuid4().hex[:8]}"
    sender = celery.Celery("layout", broker=base, set_as_current=False)
    sender.conf.broker_transport_options = {"global_keyprefix": prefix}
    sender.send_task("proj.add", args=(2, 3), queue=queue)
    sender.close()

    ours = Celery("layout", broker=url)
    try:
        # celeriac's queue of that name is empty: the task is not where its workers read.
        assert ours.broker.queue_size(queue) == 0
    finally:
        ours.close()
    raw = redis.Redis.from_url(base)
    try:
        # It is in kombu's list, and the message itself is one celeriac understands.
        assert raw.type(f"{prefix}{queue}") == b"list"
        payload = raw.lindex(f"{prefix}{queue}", 0)
    finally:
        raw.close()
    assert isinstance(payload, bytes)
    envelope = kombu_envelope(payload)
    message = decode_task_message(envelope, accepted_types(["json"]))
    assert (message.name, list(message.args)) == ("proj.add", [2, 3])


def kombu_envelope(payload: bytes) -> Envelope:
    """The Envelope of a message as kombu's Redis transport stores it (JSON, body base64)."""
    stored = json.loads(payload)
    return Envelope(
        body=base64.b64decode(stored["body"]),
        headers=stored["headers"],
        properties=stored["properties"],
        content_type=stored["content-type"],
        content_encoding=stored["content-encoding"],
    )
