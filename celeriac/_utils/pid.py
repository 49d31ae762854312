"""The current process id without a system call each time it is asked.

Hot paths (every claim, settle and publish) check whether they still run in the process that
opened a connection; ``os.getpid()`` is a system call each time. :data:`PROCESS` holds the id,
set at import and again in the child after every ``os.fork()`` (``os.register_at_fork``; the
multiprocessing "fork" start method goes through ``os.fork`` too, and the "spawn" and
"forkserver" methods import this module afresh). Rule: read ``PROCESS.pid``, never cache it.
"""

from __future__ import annotations

import os

__all__ = ["PROCESS"]


class _Process:
    __slots__ = ("pid",)

    def __init__(self) -> None:
        self.pid = os.getpid()

    def _after_fork(self) -> None:
        self.pid = os.getpid()


#: ``PROCESS.pid`` is this process's id
PROCESS = _Process()
os.register_at_fork(after_in_child=PROCESS._after_fork)
