"""Remote control on the wire: requests broadcast to every worker, replies broadcast back.

Both directions ride the broker's broadcast primitive (:meth:`Broker.broadcast` /
:meth:`Broker.subscribe`), so remote control works on every transport that declares
``Capabilities.broadcast``. Rules:

* A request is one JSON object on the channel :data:`CONTROL_CHANNEL`::

      {"method": "rate_limit", "arguments": {"task_name": "t.add", "rate_limit": "10/s"},
       "destination": ["w1@host"] | null, "pattern": "w.*" | null,
       "ticket": "<uuid>", "reply_to": "celeriac.reply.<uuid>" | null}

  The field names are those of Celery's pidbox messages. A worker acts on it when its
  hostname is in ``destination`` (or ``destination`` is empty) and matches ``pattern`` (a
  regular expression, matched in full) when one is given.
* A worker replies only when ``reply_to`` is set, on that channel, with one JSON object
  ``{"ticket": ..., "hostname": ..., "reply": <the command's answer>}``. An answer is plain
  JSON data: Celery's reply shapes (``{"ok": ...}``, ``{"error": ...}``, lists, dicts).
* The client subscribes to its ``reply_to`` channel before it broadcasts, so no reply is
  missed, and keeps only replies carrying its own ticket.
* Everything is JSON: nothing read from the channel is ever executed, imported or unpickled.
  A request larger than :data:`MAX_REQUEST_BYTES`, not JSON, or not shaped as above is refused
  by :func:`decode_request` with :class:`BadRequest` (the worker then answers with an error
  when it can read a ticket and a reply channel, and otherwise logs and drops it).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "CONTROL_CHANNEL",
    "MAX_REQUEST_BYTES",
    "REPLY_PREFIX",
    "BadRequest",
    "Reply",
    "Request",
    "decode_reply",
    "decode_request",
    "encode_reply",
    "encode_request",
    "new_request",
]

#: the broadcast channel every worker listens on for control requests
CONTROL_CHANNEL = "celeriac.pidbox"
#: reply channels are this prefix plus a fresh id per request
REPLY_PREFIX = "celeriac.reply."
#: a request above this size is refused unread
MAX_REQUEST_BYTES = 1 << 20
#: a reply above this size is dropped by the client (a worker's answers are far smaller)
MAX_REPLY_BYTES = 16 << 20
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")


class BadRequest(ValueError):
    """A control request that cannot be acted on. ``ticket`` and ``reply_to`` are set when
    they could be read, so the worker can say what was wrong."""

    def __init__(self, message: str, ticket: str | None = None, reply_to: str | None = None):
        super().__init__(message)
        self.ticket = ticket
        self.reply_to = reply_to


@dataclass(frozen=True, slots=True)
class Request:
    """One control request, as the worker reads it."""

    method: str
    arguments: dict[str, Any] = field(default_factory=dict)
    destination: tuple[str, ...] = ()
    pattern: str | None = None
    ticket: str = ""
    reply_to: str | None = None

    def addressed_to(self, hostname: str) -> bool:
        """Whether the worker ``hostname`` should act on this request."""
        if self.destination and hostname not in self.destination:
            return False
        if self.pattern is not None:
            try:
                return re.fullmatch(self.pattern, hostname) is not None
            except re.error:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Reply:
    """One worker's answer to one request."""

    ticket: str
    hostname: str
    reply: Any


def new_request(
    method: str,
    arguments: Mapping[str, Any] | None = None,
    *,
    destination: Sequence[str] | None = None,
    pattern: str | None = None,
    reply: bool = False,
) -> Request:
    """A request with a fresh ticket (and a fresh reply channel when ``reply``)."""
    ticket = uuid.uuid4().hex
    return Request(
        method=method,
        arguments=dict(arguments or {}),
        destination=tuple(destination or ()),
        pattern=pattern,
        ticket=ticket,
        reply_to=REPLY_PREFIX + ticket if reply else None,
    )


def encode_request(request: Request) -> bytes:
    """The request's wire form (raises TypeError when an argument is not JSON data)."""
    return orjson.dumps(
        {
            "method": request.method,
            "arguments": request.arguments,
            "destination": list(request.destination) or None,
            "pattern": request.pattern,
            "ticket": request.ticket,
            "reply_to": request.reply_to,
        },
        option=orjson.OPT_NON_STR_KEYS,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= 512 else None


def decode_request(payload: bytes) -> Request:
    """Read a request from the wire, checking its shape (see the module rules)."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise BadRequest(f"control request of {len(payload)} bytes refused (limit "
                         f"{MAX_REQUEST_BYTES})")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"control request is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("control request is not a JSON object")
    ticket = _text(body.get("ticket")) or ""
    reply_to = _text(body.get("reply_to"))
    if reply_to is not None and not reply_to.startswith(REPLY_PREFIX):
        reply_to = None  # never answer onto a channel that is not a reply channel
    method = body.get("method")
    if not isinstance(method, str) or not _NAME.match(method):
        raise BadRequest(f"malformed control method {str(method)[:80]!r}", ticket, reply_to)
    arguments = body.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise BadRequest("control arguments must be an object", ticket, reply_to)
    destination = body.get("destination") or ()
    if isinstance(destination, str):
        destination = (destination,)
    if not isinstance(destination, (list, tuple)) or not all(
        isinstance(d, str) for d in destination
    ):
        raise BadRequest("control destination must be a list of node names", ticket, reply_to)
    pattern = body.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str) or len(pattern) > 256:
            raise BadRequest("control pattern must be a string of at most 256 characters",
                             ticket, reply_to)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise BadRequest(f"control pattern is not a regular expression: {exc}", ticket,
                             reply_to) from None
    return Request(
        method=method,
        arguments=arguments,
        destination=tuple(destination),
        pattern=pattern,
        ticket=ticket,
        reply_to=reply_to,
    )


def encode_reply(ticket: str, hostname: str, reply: Any) -> bytes:
    """A worker's answer on the wire; values JSON cannot hold are sent as their ``repr``."""
    return orjson.dumps(
        {"ticket": ticket, "hostname": hostname, "reply": reply},
        default=repr,
        option=orjson.OPT_NON_STR_KEYS,
    )


def decode_reply(payload: bytes) -> Reply | None:
    """A reply read from the wire, or None when it is not one (never raises)."""
    if len(payload) > MAX_REPLY_BYTES:
        return None
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    ticket, hostname = body.get("ticket"), body.get("hostname")
    if not isinstance(ticket, str) or not isinstance(hostname, str):
        return None
    return Reply(ticket, hostname, body.get("reply"))
