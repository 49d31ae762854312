"""Time zones by name, with a clear error for a misspelt one.

``zone('Asia/Shangai', 'timezone')`` raises :class:`ImproperlyConfigured` naming the setting,
the value and the closest IANA name (``did you mean 'Asia/Shanghai'?``), where ``ZoneInfo``
alone raises ``ZoneInfoNotFoundError`` from deep inside a scheduler.
"""

from __future__ import annotations

import difflib
import functools
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celeriac.exceptions import ImproperlyConfigured

__all__ = ["zone"]


def zone(name: str, setting: str = "timezone") -> tzinfo:
    """The zone called ``name``; ``setting`` is what the user set (for the error message)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        pass
    hint = _closest(name) if isinstance(name, str) else None
    did_you_mean = f"; did you mean {hint!r}?" if hint else ""
    raise ImproperlyConfigured(
        f"{setting}={name!r} is not a known time zone{did_you_mean} (use an IANA name such as "
        "'Europe/London' or 'UTC'; the tzdata package provides them where the system has none)"
    ) from None


def _closest(name: str) -> str | None:
    names = _names()
    matches = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if not matches:
        lowered = {n.lower(): n for n in names}
        matches = [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), 1)]
    return matches[0] if matches else None


@functools.cache
def _names() -> list[str]:
    return sorted(available_timezones())
