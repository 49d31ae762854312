"""ExceptionInfo: what ``on_failure`` and ``after_return`` receive as ``einfo``."""

from __future__ import annotations

import traceback as tb_module
from types import TracebackType


class ExceptionInfo:
    """An exception with its formatted traceback (Celery's ``einfo``)."""

    def __init__(self, exc: BaseException) -> None:
        self.exception = exc
        self.type: type[BaseException] = type(exc)
        self.tb: TracebackType | None = exc.__traceback__
        self.traceback = "".join(tb_module.format_exception(self.type, exc, self.tb))
        self.internal = False

    @property
    def exc_info(self) -> tuple[type[BaseException], BaseException, TracebackType | None]:
        return self.type, self.exception, self.tb

    def __str__(self) -> str:
        return self.traceback

    def __repr__(self) -> str:
        return f"<ExceptionInfo: {self.exception!r}>"
