"""Reactions to a signal, run outside the signal handler.

A Python signal handler runs in the main thread between two bytecodes of whatever that thread
was doing. If the handler takes a lock the interrupted code holds (``threading.Event.set``
takes its condition's lock, which ``Event.wait``/``set`` hold for a moment), the process
deadlocks: a worker that never exits after Ctrl-C. So:

Rules:

* A handler only records plain attributes and calls :meth:`SignalRelay.call_soon`, which
  takes no lock: it appends to a deque and writes one byte to a non-blocking pipe.
* A daemon thread reads the pipe and runs the queued callables in order; anything that
  takes a lock (setting an Event, logging) happens there. A callable that raises is logged
  and the next one runs.
* The thread starts with the relay; ``close()`` ends it (the process exiting ends it too).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable

__all__ = ["SignalRelay"]

logger = logging.getLogger(__name__)


class SignalRelay:
    """One daemon thread that runs what signal handlers hand it (see the module rules)."""

    def __init__(self, name: str = "celeriac-signals") -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._pending: deque[Callable[[], object]] = deque()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_soon(self, reaction: Callable[[], object]) -> None:
        """Run ``reaction`` on the relay thread; safe inside a signal handler."""
        self._pending.append(reaction)
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write_fd, b"\0")  # a full pipe already has a wake-up in it

    def _run(self) -> None:
        while not self._closed:
            try:
                if not os.read(self._read_fd, 512):
                    return
            except OSError:
                return
            while self._pending:
                reaction = self._pending.popleft()
                try:
                    reaction()
                except Exception:
                    logger.exception("signal reaction %r raised", reaction)

    def close(self) -> None:
        """End the thread once it has run what is queued; idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            os.write(self._write_fd, b"\0")
        self._thread.join(timeout=2.0)
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
