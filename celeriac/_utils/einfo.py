"""ExceptionInfo: what ``on_failure`` and ``after_return`` receive as ``einfo``."""

from __future__ import annotations

import traceback as tb_module
from types import TracebackType

from celeriac._utils.text import keep_tail

#: longest traceback text kept (logged and stored); the tail, which holds the raising frame
#: and the exception line, is what stays
MAX_TRACEBACK_CHARS = 32_768


def format_traceback(exc: BaseException) -> str:
    """``exc``'s formatted traceback, bounded by :data:`MAX_TRACEBACK_CHARS`.

    Never raises for an Exception from the exception's own ``__str__`` (the stdlib prints a
    placeholder for it) nor from formatting: the type name stands in then.
    """
    try:
        text = "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        text = f"{type(exc).__name__} (traceback could not be formatted)\n"
    return keep_tail(text, MAX_TRACEBACK_CHARS)


class ExceptionInfo:
    """An exception with its formatted traceback (Celery's ``einfo``)."""

    def __init__(self, exc: BaseException) -> None:
        self.exception = exc
        self.type: type[BaseException] = type(exc)
        self.tb: TracebackType | None = exc.__traceback__
        self.traceback = format_traceback(exc)
        self.internal = False

    @property
    def exc_info(self) -> tuple[type[BaseException], BaseException, TracebackType | None]:
        return self.type, self.exception, self.tb

    def __str__(self) -> str:
        return self.traceback

    def __repr__(self) -> str:
        try:
            return f"<ExceptionInfo: {self.exception!r}>"
        except Exception:
            return f"<ExceptionInfo: {type(self.exception).__name__}>"
