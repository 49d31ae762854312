"""Logging the way Celery's worker logs: ``celery.utils.log`` import path, same formats.

* :func:`get_logger` is ``logging.getLogger``.
* :func:`get_task_logger` returns a logger whose records carry ``task_name`` and ``task_id``
  (from the task running in this thread, or ``'???'`` outside a task), so the worker's formatter
  can print them with ``worker_task_log_format``.
* :func:`setup_logging` is what ``celeriac worker`` calls: one handler on the root logger
  (stderr or ``--logfile``), Celery's formats, optional colour.
* :func:`redirected_stdouts` sends ``print()`` output of tasks to a logger, as Celery does with
  ``worker_redirect_stdouts``.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from celeriac import _state, signals

__all__ = [
    "LOG_FORMAT",
    "TASK_LOG_FORMAT",
    "LoggingProxy",
    "TaskFormatter",
    "get_logger",
    "get_task_logger",
    "level_number",
    "redirected_stdouts",
    "setup_logging",
]

LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
TASK_LOG_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"
)
UNKNOWN = "???"

_COLORS = {
    logging.DEBUG: "\x1b[34m",  # blue
    logging.WARNING: "\x1b[33m",  # yellow
    logging.ERROR: "\x1b[31m",  # red
    logging.CRITICAL: "\x1b[35m",  # magenta
}
_RESET = "\x1b[0m"


def level_number(level: int | str) -> int:
    """``'info'``/``'INFO'``/``20`` -> 20. ``FATAL`` is accepted as Celery accepts it."""
    if isinstance(level, int):
        return level
    text = level.strip().upper()
    if text.isdigit():
        return int(text)
    number = logging.getLevelNamesMapping().get(text)
    if number is None:
        raise ValueError(f"Unknown log level {level!r} (use DEBUG, INFO, WARNING, ERROR, CRITICAL)")
    return number


def get_logger(name: str) -> logging.Logger:
    """The logger called ``name`` (Celery's ``celery.utils.log.get_logger``)."""
    return logging.getLogger(name)


class _TaskContext(logging.Filter):
    """Adds ``task_name`` and ``task_id`` of the task running in this thread to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = _state.current_task()
        name = task_id = None
        if task is not None:
            request = task.request
            name = request.task or task.name
            task_id = request.id
        record.task_name = name or UNKNOWN
        record.task_id = task_id or UNKNOWN
        return True


_TASK_CONTEXT = _TaskContext()


def get_task_logger(name: str) -> logging.Logger:
    """A logger for task modules (``logger = get_task_logger(__name__)``): records it emits
    name the running task, so the worker prints them in ``worker_task_log_format``."""
    logger = logging.getLogger(name)
    if _TASK_CONTEXT not in logger.filters:
        logger.addFilter(_TASK_CONTEXT)
    return logger


class TaskFormatter(logging.Formatter):
    """Formats records of task loggers with the task format and all others with the plain
    one; colours whole lines by level when ``use_color``."""

    def __init__(
        self,
        fmt: str = LOG_FORMAT,
        task_fmt: str = TASK_LOG_FORMAT,
        datefmt: str | None = None,
        task_datefmt: str | None = None,
        use_color: bool = False,
    ) -> None:
        super().__init__(fmt, datefmt)
        self._task_formatter = logging.Formatter(task_fmt, task_datefmt or datefmt)
        self.use_color = use_color

    def format(self, record: logging.LogRecord) -> str:
        if hasattr(record, "task_id") and hasattr(record, "task_name"):
            text = self._task_formatter.format(record)
        else:
            text = super().format(record)
        color = _COLORS.get(record.levelno) if self.use_color else None
        return f"{color}{text}{_RESET}" if color else text


def setup_logging(
    loglevel: int | str = logging.WARNING,
    logfile: str | None = None,
    *,
    fmt: str | None = None,
    task_fmt: str | None = None,
    datefmt: str | None = None,
    task_datefmt: str | None = None,
    colorize: bool | None = None,
    hijack_root: bool = True,
) -> logging.Logger:
    """Configure the root logger for a worker and return it.

    When a receiver is connected to the ``setup_logging`` signal, it configures logging
    instead (Celery's rule) and nothing here touches the handlers.
    """
    level = level_number(loglevel)
    root = logging.getLogger()
    if signals.setup_logging.receivers:
        signals.setup_logging.send(
            sender=None, loglevel=level, logfile=logfile, format=fmt, colorize=colorize
        )
        return root
    stream: IO[str] | None = None
    handler: logging.Handler
    if logfile:
        handler = logging.FileHandler(logfile, encoding="utf-8")
    else:
        stream = sys.stderr
        handler = logging.StreamHandler(stream)
    if colorize is None:
        colorize = stream is not None and _isatty(stream)
    handler.setFormatter(
        TaskFormatter(
            fmt or LOG_FORMAT, task_fmt or TASK_LOG_FORMAT, datefmt, task_datefmt, colorize
        )
    )
    if hijack_root:
        for old in list(root.handlers):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    signals.after_setup_logger.send(
        sender=None, logger=root, loglevel=level, logfile=logfile, format=fmt, colorize=colorize
    )
    signals.after_setup_task_logger.send(
        sender=None, logger=root, loglevel=level, logfile=logfile, format=task_fmt,
        colorize=colorize,
    )
    return root


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class LoggingProxy:
    """A text stream that writes each line to ``logger`` at ``level`` (for ``print()``)."""

    encoding = "utf-8"
    errors = "replace"
    closed = False

    def __init__(self, logger: logging.Logger, level: int | str = logging.WARNING) -> None:
        self.logger = logger
        self.level = level_number(level)
        self._local = threading.local()

    @property
    def name(self) -> str:
        return f"<logging proxy: {self.logger.name}>"

    def _buffer(self) -> list[str]:
        buffer: list[str] | None = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = self._local.buffer = []
        return buffer

    def write(self, text: str) -> int:
        # A logging error handler that prints to stderr would come back here: drop it.
        if getattr(self._local, "busy", False):
            return len(text)
        buffer = self._buffer()
        buffer.append(text)
        if "\n" in text:
            pending = "".join(buffer)
            buffer.clear()
            *lines, rest = pending.split("\n")
            if rest:
                buffer.append(rest)
            self._emit(lines)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        buffer = self._buffer()
        if buffer:
            pending = "".join(buffer)
            buffer.clear()
            self._emit([pending])

    def _emit(self, lines: list[str]) -> None:
        self._local.busy = True
        try:
            for line in lines:
                if line.strip():
                    self.logger.log(self.level, line.rstrip())
        finally:
            self._local.busy = False

    def isatty(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.flush()


@contextmanager
def redirected_stdouts(
    logger: logging.Logger, level: int | str = logging.WARNING
) -> Iterator[LoggingProxy]:
    """Send ``sys.stdout`` and ``sys.stderr`` to ``logger`` until the block ends."""
    proxy = LoggingProxy(logger, level)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = proxy
    try:
        yield proxy
    finally:
        proxy.flush()
        sys.stdout, sys.stderr = saved
