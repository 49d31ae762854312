"""The envelope: what a broker stores and delivers, and the delivery handle it gives back.

Brokers see only these two types. ``protocol`` is the one place that knows what goes into
``headers``, ``properties`` and ``body`` for a task message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celeriac._utils.timeutils import iso_timestamp, to_timestamp


def schedule_timestamp(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 date (naive = UTC) or a datetime; None when absent or
    unreadable. Never raises: brokers call it at publish time, and a message with an unreadable
    date is delivered at once and rejected, with the reason, by the protocol decoder."""
    try:
        if isinstance(value, datetime):
            return to_timestamp(value)
        if isinstance(value, str) and value:
            return iso_timestamp(value)
    except (ValueError, OverflowError, TypeError):
        pass
    return None


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message as it travels: opaque body bytes plus AMQP-style headers and properties."""

    body: bytes
    headers: Mapping[str, Any]
    properties: Mapping[str, Any] = field(default_factory=dict)
    content_type: str = "application/json"
    content_encoding: str = "utf-8"

    @property
    def task_id(self) -> str:
        """The ``id`` header, else the ``correlation_id`` property; "" when neither is a
        non-empty string."""
        value = self.headers.get("id")
        if isinstance(value, str) and value:
            return value
        value = self.properties.get("correlation_id")
        return value if isinstance(value, str) else ""

    @property
    def task_name(self) -> str:
        """The ``task`` header; "" when it is not a string."""
        value = self.headers.get("task")
        return value if isinstance(value, str) else ""

    @property
    def priority(self) -> int:
        """The ``priority`` property; 0 when absent or not an integer (brokers clamp it to
        their range; the protocol decoder rejects a bad one)."""
        value = self.properties.get("priority")
        return value if type(value) is int else 0

    @property
    def has_eta(self) -> bool:
        """Whether the message carries an ``eta`` (a cheap test before :meth:`eta_timestamp`
        on the publish path)."""
        return bool(self.headers.get("eta"))

    def eta_timestamp(self) -> float | None:
        """When the message may be delivered (epoch seconds), or None for now (also when the
        ``eta`` header is unreadable: see :func:`schedule_timestamp`)."""
        return schedule_timestamp(self.headers.get("eta"))

    def expires_timestamp(self) -> float | None:
        """When the message expires (epoch seconds), or None (never, or unreadable)."""
        return schedule_timestamp(self.headers.get("expires"))


@dataclass(slots=True)
class Delivery:
    """One delivered message and the broker's handle for acking it."""

    envelope: Envelope
    queue: str
    tag: Any
    redelivered: bool = False
    delivery_count: int = 1
    #: why the stored message could not be read (set by the broker; the envelope then holds
    #: what was usable of it): the executor dead-letters such a delivery with this reason
    malformed: str | None = None

    @property
    def task_id(self) -> str:
        return self.envelope.task_id
