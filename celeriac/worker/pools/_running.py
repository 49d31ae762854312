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


def raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Have ``exc_type`` raised in thread ``thread_id`` at its next bytecode; None clears
    what was raised there and has not landed yet."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type is not None else None
    )


@dataclass(slots=True)
class Running:
    """One job running in one thread."""

    job: Job
    #: monotonic deadlines of the soft and hard time limits (None: none, or already fired)
    soft_deadline_s: float | None = None
    hard_deadline_s: float | None = None
    ended: bool = False
    terminated: bool = False


class RunningJobs:
    """The jobs running in this process's threads, by thread ident."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_thread: dict[int, Running] = {}

    def begin(self, ident: int, entry: Running) -> None:
        with self.lock:
            self.by_thread[ident] = entry

    def end(self, ident: int) -> None:
        """The job in thread ``ident`` is over: nothing more is raised into it (idempotent)."""
        entry = self.by_thread.get(ident)
        if entry is not None:
            entry.ended = True
        with self.lock:
            self.by_thread.pop(ident, None)
            raise_in_thread(ident, None)

    def raise_into(self, ident: int, entry: Running, exc_type: type[BaseException]) -> None:
        """Raise ``exc_type`` into ``entry``'s thread; call with :attr:`lock` held."""
        if not entry.ended and self.by_thread.get(ident) is entry:
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
