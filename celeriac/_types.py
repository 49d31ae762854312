"""Shared typing helpers, the UNSET sentinel, and the type variables of ``Task`` and results.

``TaskParams`` and ``TaskReturn`` carry a task function's parameters and return type from
``@app.task`` to ``Task[P, R]`` (``delay`` checks its arguments, ``__call__`` returns R) and on
to ``AsyncResult[R]`` (``get()`` returns R). Each has a default (PEP 696) so that a bare
``Task`` or ``AsyncResult`` in user code means ``Task[..., Any]`` / ``AsyncResult[Any]`` and
stays valid under ``mypy --strict``. Defaults need ``typing_extensions`` on Python < 3.13; it
is read by the type checker only (its stubs ship with mypy and pyright), so at run time the
plain ``typing`` versions are used and celeriac gains no dependency.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from typing_extensions import ParamSpec, TypeVar

    TaskParams = ParamSpec("TaskParams", default=...)
    TaskReturn = TypeVar("TaskReturn", default=Any)
    ResultT_co = TypeVar("ResultT_co", covariant=True, default=Any)
else:
    from typing import ParamSpec, TypeVar

    TaskParams = ParamSpec("TaskParams")
    TaskReturn = TypeVar("TaskReturn")
    ResultT_co = TypeVar("ResultT_co", covariant=True)

JSONDict: TypeAlias = dict[str, Any]


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET = _Unset.UNSET
Unset: TypeAlias = _Unset
