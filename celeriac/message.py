"""The envelope: what a broker stores and delivers, and the delivery handle it gives back.

Brokers see only these two types. ``protocol`` is the one place that knows what goes into
``headers``, ``properties`` and ``body`` for a task message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celeriac._utils.timeutils import iso_timestamp


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
        return str(self.headers.get("id") or self.properties.get("correlation_id") or "")

    @property
    def task_name(self) -> str:
        return str(self.headers.get("task") or "")

    @property
    def priority(self) -> int:
        value = self.properties.get("priority")
        return int(value) if value is not None else 0

    def eta_timestamp(self) -> float | None:
        """When the message may be delivered (epoch seconds), or None for now."""
        eta = self.headers.get("eta")
        return iso_timestamp(eta) if eta else None

    def expires_timestamp(self) -> float | None:
        expires = self.headers.get("expires")
        return iso_timestamp(expires) if expires else None


@dataclass(slots=True)
class Delivery:
    """One delivered message and the broker's handle for acking it."""

    envelope: Envelope
    queue: str
    tag: Any
    redelivered: bool = False
    delivery_count: int = 1

    @property
    def task_id(self) -> str:
        return self.envelope.task_id
