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


_PLAIN = frozenset({list, tuple, dict, str, int, float, bool, type(None)})


def saferepr(value: Any, maxlen: int = 1024) -> str:
    """A repr that never raises and never exceeds ``maxlen`` characters much."""
    if type(value) in _PLAIN:
        # Task arguments must be serializable, so these hold plain data whose repr costs about
        # what encoding it did; reprlib's element-by-element walk would cost several times more.
        try:
            text = repr(value)
        except Exception:  # a broken __repr__: reprlib's guarded path below
            pass
        else:
            return text if len(text) <= maxlen else text[: maxlen - 3] + "..."
    try:
        text = _repr.repr(value)
    except Exception:  # a broken __repr__ must not break logging
        # Only type names here: the exception's own repr may hold the broken object again.
        text = f"<unrepresentable {type(value).__name__}>"
    if len(text) > maxlen:
        text = text[: maxlen - 3] + "..."
    return text


def keep_tail(text: str, max_chars: int) -> str:
    """``text`` cut to about its last ``max_chars`` characters, the cut marked at the start.

    For tracebacks, whose last lines hold the raising frame and the exception.
    """
    if len(text) <= max_chars:
        return text
    cut = len(text) - max_chars
    return f"[... {cut} characters cut ...]\n{text[cut:]}"


def keep_head(text: str, max_chars: int) -> str:
    """``text`` cut to about its first ``max_chars`` characters, the cut marked at the end."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}[... {len(text) - max_chars} characters cut]"


def closest(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in candidates}
        matches = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        return lowered[matches[0]] if matches else None
    return matches[0]
