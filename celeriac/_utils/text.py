"""Text helpers: safe reprs and closest-name suggestions."""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable
from typing import Any

_repr = reprlib.Repr()
_repr.maxstring = 1024
_repr.maxother = 1024
_repr.maxlist = 64
_repr.maxdict = 64
_repr.maxlevel = 8


_SCALARS = (int, float, bool, type(None))


def _small(value: Any) -> bool:
    """A short container of scalars or short strings: plain repr() is safe and faster."""
    if type(value) in (list, tuple) and len(value) <= 16:
        items: Any = value
    elif type(value) is dict and len(value) <= 16:
        items = [*value.keys(), *value.values()]
    else:
        return False
    for item in items:
        if type(item) is str:
            if len(item) > 64:
                return False
        elif not isinstance(item, _SCALARS) or (type(item) is int and abs(item) > 10**18):
            return False
    return True


def saferepr(value: Any, maxlen: int = 1024) -> str:
    """A repr that never raises and never exceeds ``maxlen`` characters much."""
    if _small(value):
        return repr(value)
    try:
        text = _repr.repr(value)
    except Exception as exc:  # a broken __repr__ must not break logging
        text = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    if len(text) > maxlen:
        text = text[: maxlen - 3] + "..."
    return text


def closest(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in candidates}
        matches = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        return lowered[matches[0]] if matches else None
    return matches[0]
