"""Which thread runs which job, and raising into a job only while it is the one running.

Used by the pools that run tasks in this process's threads (threads, solo). Exceptions are
raised into a thread asynchronously (``PyThreadState_SetAsyncExc``): they land at the thread's
next Python bytecode. The discipline, under one lock:

- something is raised into a thread only while its entry is registered and not ended;
- :meth:`RunningJobs.end` marks the entry ended first (after that nothing new is raised),
  then, under the lock, forgets it and clears whatever was raised but has not landed yet;
- so once ``end`` returned, nothing can land in that thread until its next job begins. An
  exception landing inside ``end`` before it marked the entry is caught by ``run_job``'s net,
  which calls ``end`` again.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from celeriac.exceptions import Terminated

if TYPE_CHECKING:
    from celeriac.worker.pools.base import Job


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> bool:
    """Have ``exc_type`` raised in thread ``thread_id`` at its next bytecode (replacing one
    raised there that has not landed yet); False when there is no such thread.

    Never "clear" with NULL instead: CPython (3.11 at least) then leaves its eval breaker set
    for good, and every later bytecode of the process pays for it (measured: the solo drain
    rate fell by a tenth, and a process under cProfile spun)."""
    changed = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )
    return bool(changed)


class _Absorbed(BaseException):
    """Raised by a thread into itself to take the place of a pending asynchronous exception,
    and caught at once (see :meth:`RunningJobs.end`)."""


#: bytecodes a thread runs at most waiting for its own _Absorbed to land (it lands at the
#: first backward jump)
_ABSORB_SPINS = 100_000


@dataclass(slots=True)
class Running:
    """One job running in one thread."""

    job: Job
    #: monotonic deadlines of the soft and hard time limits (None: none, or already fired)
    soft_deadline_s: float | None = None
    hard_deadline_s: float | None = None
    ended: bool = False
    terminated: bool = False
    #: something was raised into the thread for this job (it may not have landed yet)
    raised: bool = False


class RunningJobs:
    """The jobs running in this process's threads, by thread ident."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_thread: dict[int, Running] = {}

    def begin(self, ident: int, entry: Running) -> None:
        with self.lock:
            self.by_thread[ident] = entry

    def end(self, ident: int) -> None:
        """The job in thread ``ident`` is over: nothing more is raised into it (idempotent).
        Called in that thread. When something was raised into it, whatever may still be
        pending is replaced by an exception of our own that lands and is caught right here,
        so nothing is left to land later."""
        entry = self.by_thread.get(ident)
        if entry is not None:
            entry.ended = True
        with self.lock:
            self.by_thread.pop(ident, None)
            if entry is None or not entry.raised:
                return
            entry.raised = False
            try:  # it may land as soon as it is raised: inside the try
                if ident == threading.get_ident() and raise_in_thread(ident, _Absorbed):
                    for _ in range(_ABSORB_SPINS):
                        pass
            except _Absorbed:
                pass

    def raise_into(self, ident: int, entry: Running, exc_type: type[BaseException]) -> None:
        """Raise ``exc_type`` into ``entry``'s thread; call with :attr:`lock` held."""
        if not entry.ended and self.by_thread.get(ident) is entry:
            entry.raised = True
            raise_in_thread(ident, exc_type)

    def terminate(self, job_id: int) -> bool:
        """Raise :class:`Terminated` into the thread running ``job_id`` (once per job)."""
        with self.lock:
            for ident, entry in self.by_thread.items():
                if entry.job.id == job_id and not entry.ended and not entry.terminated:
                    entry.terminated = True
                    self.raise_into(ident, entry, Terminated)
                    return True
        return False

    def jobs(self) -> list[Job]:
        with self.lock:
            return [entry.job for entry in self.by_thread.values()]
