"""Shared typing helpers and the UNSET sentinel."""

from __future__ import annotations

import enum
from typing import Any, TypeAlias

JSONDict: TypeAlias = dict[str, Any]


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET = _Unset.UNSET
Unset: TypeAlias = _Unset
