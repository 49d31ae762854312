"""Celery-format events on the wire: the event dict, the batch payload, and reading it back.

Wire rules (every sender and receiver of :data:`EVENTS_CHANNEL` keeps them):

- a payload is JSON (UTF-8) of a LIST of event dicts, so one broadcast carries many events;
- every event dict has Celery's fields: ``type`` (``task-succeeded``, ``worker-heartbeat``...),
  ``hostname``, ``timestamp`` (epoch seconds, float), ``utcoffset`` (hours), ``pid`` and
  ``clock`` (the sender's Lamport clock); task events carry ``uuid``; receivers add
  ``local_received`` (epoch seconds);
- a receiver drops, with a debug log line, a payload that is larger than
  :data:`MAX_PAYLOAD_BYTES`, is not JSON or is not a list, and each item that is not a dict
  with a string ``type``, a string ``hostname``, a number ``timestamp`` (and, for task events,
  a string ``uuid``). It never raises for what arrives on the channel.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = [
    "EVENTS_CHANNEL",
    "MAX_PAYLOAD_BYTES",
    "Event",
    "LamportClock",
    "decode_events",
    "encode_events",
    "group_from",
    "utcoffset",
]

logger = logging.getLogger("celeriac.events")

#: the broadcast channel every celeriac event travels on
EVENTS_CHANNEL = "celeriac.events"
#: a payload larger than this is dropped unread (a worker's batch stays far below it)
MAX_PAYLOAD_BYTES = 32 * 1024 * 1024


def utcoffset() -> int:
    """This machine's offset from UTC in whole hours, as Celery's events carry it (a positive
    value is east of Greenwich)."""
    if time.daylight and time.localtime().tm_isdst > 0:
        return -time.altzone // 3600
    return -time.timezone // 3600


def group_from(type_: str) -> str:
    """The group of an event type: ``task`` for ``task-sent``, ``worker`` for
    ``worker-online``."""
    return type_.partition("-")[0]


def Event(type_: str, _fields: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An event dict of type ``type_`` with ``fields`` and a ``timestamp`` (now, unless given)."""
    event: dict[str, Any] = dict(_fields or {}, type=type_, **fields)
    if "timestamp" not in event:
        event["timestamp"] = time.time()
    return event


class LamportClock:
    """A Lamport clock: :meth:`forward` for each event sent, :meth:`adjust` with each clock
    value received. Thread-safe."""

    def __init__(self, initial: int = 0) -> None:
        self.value = initial
        self._lock = threading.Lock()

    def forward(self) -> int:
        with self._lock:
            self.value += 1
            return self.value

    def adjust(self, other: int) -> int:
        with self._lock:
            self.value = max(self.value, other) + 1
            return self.value


def _fallback(value: Any) -> str:
    """What a field that JSON cannot carry becomes: its repr (events are for display)."""
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def encode_events(events: list[dict[str, Any]]) -> bytes:
    """The payload of one broadcast carrying ``events``. A field JSON cannot carry is sent as
    its repr."""
    try:
        return orjson.dumps(events, default=_fallback)
    except orjson.JSONEncodeError:  # a dict with keys that are not strings (half the speed)
        return orjson.dumps(events, default=_fallback, option=orjson.OPT_NON_STR_KEYS)


def _valid(event: object) -> bool:
    if not isinstance(event, dict):
        return False
    type_ = event.get("type")
    if not isinstance(type_, str) or not type_:
        return False
    if not isinstance(event.get("hostname"), str):
        return False
    timestamp = event.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        return False
    if not math.isfinite(timestamp):
        return False
    if type_.startswith("task-") and not isinstance(event.get("uuid"), str):
        return False
    clock = event.get("clock")
    if clock is not None and (isinstance(clock, bool) or not isinstance(clock, int)):
        event["clock"] = 0
    return True


def decode_events(payload: object) -> list[dict[str, Any]]:
    """The valid events of one payload (see the module rules); [] for a payload that is not a
    JSON list. Never raises."""
    if not isinstance(payload, bytes | bytearray | memoryview | str):
        logger.debug("events: dropped a payload of type %s", type(payload).__name__)
        return []
    if len(payload) > MAX_PAYLOAD_BYTES:
        logger.debug("events: dropped a payload of %d bytes", len(payload))
        return []
    try:
        items = orjson.loads(payload)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        logger.debug("events: dropped a payload that is not JSON")
        return []
    if not isinstance(items, list):
        logger.debug("events: dropped a payload that is a %s, not a list", type(items).__name__)
        return []
    events = [item for item in items if _valid(item)]
    if len(events) != len(items):
        logger.debug("events: dropped %d malformed event(s)", len(items) - len(events))
    return events
