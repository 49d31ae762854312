"""Envelope <-> AMQP message.

Rules: the body travels as is; ``content_type``/``content_encoding`` and the AMQP basic
properties of the envelope (``correlation_id``, ``reply_to``, ``priority``, ``expiration``,
...) become the message's properties and its headers the ``application_headers``. Messages are
persistent (``delivery_mode`` 2) unless the envelope says 1 (or ``transient``), or says
nothing and the broker's default is 1 (``task_default_delivery_mode``). An envelope property
AMQP has no slot for (or one of the wrong type), and an explicit ``delivery_mode``, ride in the
:data:`STASH_HEADER` header and are restored on delivery, so a round trip gives back the same
envelope. Headers RabbitMQ or the delay path add (``x-death``, ``x-first-death-*``,
``x-last-death-*``, the delay bucket) are dropped on delivery. Nothing from the message is
executed: only plain values are read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from celeriac._amqp.topology import DELAY_HEADER
from celeriac.message import Envelope

STASH_HEADER = "celeriac-props"
#: set when the headers travel at the front of the body (its value: their length in bytes)
PACKED_HEADER = "celeriac-packed-headers"
#: AMQP headers must fit in one frame (RabbitMQ's frame_max is 128 KiB): larger ones are
#: packed into the body, so a task with huge ``argsrepr`` still travels
MAX_HEADER_CHARS = 64 * 1024
_STRING_PROPS = frozenset(
    {"correlation_id", "reply_to", "expiration", "message_id", "type", "user_id", "app_id",
     "cluster_id"}
)
_DROPPED = frozenset({"x-death", "x-delivery-count", DELAY_HEADER, STASH_HEADER, PACKED_HEADER})


def _fits(key: str, value: Any) -> bool:
    """Whether ``key: value`` has a basic-property slot of the right type."""
    if key in _STRING_PROPS:
        return isinstance(value, str)
    if key == "priority":
        return type(value) is int and 0 <= value <= 255
    return key == "timestamp" and type(value) is int and value >= 0


def delivery_mode_of(value: Any, default: int = 2) -> int:
    """1 for ``1``/``"transient"``, 2 for ``2``/``"persistent"``, else ``default``."""
    if value in (1, "transient"):
        return 1
    if value in (2, "persistent"):
        return 2
    return default


def to_message(
    envelope: Envelope, extra_headers: Mapping[str, Any] | None = None, default_mode: int = 2
) -> Any:
    """An ``amqp.Message`` carrying ``envelope`` (plus ``extra_headers``)."""
    import amqp

    props: dict[str, Any] = {}
    stash: dict[str, Any] = {}
    for key, value in envelope.properties.items():
        if _fits(key, value):
            props[key] = value
        else:
            stash[key] = value
    props["delivery_mode"] = delivery_mode_of(stash.get("delivery_mode"), default_mode)
    headers = dict(envelope.headers)
    if stash:
        headers[STASH_HEADER] = stash
    body = envelope.body
    if _size(headers, MAX_HEADER_CHARS) >= MAX_HEADER_CHARS:
        packed = json.dumps(headers, separators=(",", ":")).encode()
        body = packed + body
        headers = {PACKED_HEADER: len(packed)}
    if extra_headers:
        headers.update(extra_headers)
    return amqp.Message(
        body,
        content_type=envelope.content_type,
        content_encoding=envelope.content_encoding,
        application_headers=headers,
        **props,
    )


def to_envelope(message: Any) -> Envelope:
    """The envelope a delivered ``amqp.Message`` carries (see the module docstring)."""
    props: Mapping[str, Any] = message.properties
    raw_headers = props.get("application_headers") or {}
    body = message.body
    body = body if isinstance(body, bytes) else _as_bytes(body)
    packed = raw_headers.get(PACKED_HEADER)
    if type(packed) is int and 0 < packed <= len(body):
        try:
            unpacked = json.loads(body[:packed])
        except ValueError:  # hostile or damaged: delivered as is, the decoder rejects it
            unpacked = None
        if isinstance(unpacked, dict):
            raw_headers = {**raw_headers, **unpacked}
            body = body[packed:]
    headers = {
        key: value for key, value in raw_headers.items()
        if key not in _DROPPED and not key.startswith(("x-first-death", "x-last-death"))
    }
    properties = {
        key: value for key, value in props.items()
        if key in _STRING_PROPS or key in ("priority", "timestamp")
    }
    stash = raw_headers.get(STASH_HEADER)
    if isinstance(stash, Mapping):
        properties.update(stash)
    return Envelope(
        body=body,
        headers=headers,
        properties=properties,
        content_type=str(props.get("content_type") or "application/json"),
        content_encoding=str(props.get("content_encoding") or "utf-8"),
    )


def _as_bytes(body: Any) -> bytes:
    return body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)


def _size(value: Any, limit: int) -> int:
    """Roughly how many characters ``value`` takes encoded; stops counting past ``limit``."""
    if isinstance(value, (str, bytes)):
        return len(value)
    total = 0
    if isinstance(value, Mapping):
        for key, item in value.items():
            total += len(key) + _size(item, limit)
            if total >= limit:
                break
    elif isinstance(value, (list, tuple)):
        for item in value:
            total += _size(item, limit)
            if total >= limit:
                break
    else:
        total = 8
    return total


def message_priority(message: Any) -> int:
    """The priority an ``amqp.Message`` was published with (0 when none or not an int)."""
    props: Mapping[str, Any] = message.properties
    value = props.get("priority")
    return value if type(value) is int else 0


def delivery_count(message: Any, redelivered: bool) -> int:
    """How many times an ``amqp.Message`` has been delivered, this time included: quorum
    queues count in ``x-delivery-count``; elsewhere a redelivered message counts as 2."""
    props: Mapping[str, Any] = message.properties
    headers = props.get("application_headers") or {}
    count = headers.get("x-delivery-count") if isinstance(headers, Mapping) else None
    return count + 1 if type(count) is int else (2 if redelivered else 1)

