"""Rows and notifications of the PostgreSQL broker, to and from Python: the publish statement's
column arrays, deliveries from claimed rows, and broadcast payloads as NOTIFY text.

Rules: a stored row is read on its own and never executed (``protocol.open_stored``); a bad one
becomes a malformed delivery. A notification we did not send (anyone with access to the
database can NOTIFY any channel) decodes to None and is dropped.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from typing import Any

from celeriac._utils.stored import envelope_parts
from celeriac.message import Delivery, Envelope
from celeriac.protocol import open_stored


def columns(items: Iterable[tuple[str, Envelope]], now: float) -> dict[str, list[Any]]:
    """The publish statement's parameters: one array per column."""
    cols: dict[str, list[Any]] = {k: [] for k in (
        "queue", "priority", "eta", "task_id", "headers", "properties", "body", "ctype", "cenc")}
    for queue, env in items:
        eta = env.eta_timestamp() if env.has_eta else None
        headers, props, body, ctype, cenc = envelope_parts(env)
        cols["queue"].append(queue)
        # smallint column; the contract's range is 0..9, AMQP's 0..255
        cols["priority"].append(min(max(env.priority, 0), 255))
        cols["eta"].append(eta if eta is not None and eta > now else None)
        cols["task_id"].append(env.task_id or None)
        cols["headers"].append(headers)
        cols["properties"].append(props)
        cols["body"].append(body)
        cols["ctype"].append(ctype)
        cols["cenc"].append(cenc)
    return cols


def delivery(row: tuple[Any, ...]) -> Delivery:
    tag, queue, _, headers, props, body, ctype, cenc, count = row
    # Each row is read on its own: a bad one becomes a malformed delivery (the executor
    # dead-letters it) and the rest of the batch is delivered as usual.
    envelope, problem = open_stored(headers, props, body, ctype, cenc)
    return Delivery(envelope, queue, tag, count > 1, count, problem)


def encode_broadcast(payload: bytes) -> str:
    """A NOTIFY payload: ``t`` + the text when ``payload`` is UTF-8 without NUL (a NOTIFY is
    text), else ``b`` + base64."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" not in text:
        return "t" + text
    return "b" + base64.b64encode(payload).decode("ascii")


def decode_broadcast(payload: str, stored: Callable[[int], bytes | None]) -> bytes | None:
    """The bytes NOTIFY text ``payload`` stands for: ``t`` text, ``b`` base64, or ``r`` + the id
    of a ``celeriac_broadcasts`` row, read through ``stored``; None for anything else."""
    kind, rest = payload[:1], payload[1:]
    if kind == "t":
        return rest.encode()
    if kind == "b":
        try:
            return base64.b64decode(rest, validate=True)
        except binascii.Error:
            return None
    if kind == "r" and rest.isascii() and rest.isdigit() and len(rest) < 19:
        return stored(int(rest))
    return None
