"""Time helpers: everything is an aware UTC datetime or a float epoch."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, tzinfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_timestamp(value: datetime | float | int) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def from_timestamp(ts: float, tz: tzinfo = UTC) -> datetime:
    return datetime.fromtimestamp(ts, tz)


def parse_iso(value: str | datetime | None) -> datetime | None:
    """Parse an ISO 8601 string; a naive result is taken as UTC."""
    if value is None or isinstance(value, datetime):
        return value
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def iso_timestamp(value: str | datetime | None) -> float | None:
    dt = parse_iso(value)
    return None if dt is None else dt.timestamp()


def maybe_delta(value: float | int | timedelta | None) -> float | None:
    """Seconds from a number or timedelta."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def now_s() -> float:
    return time.time()
