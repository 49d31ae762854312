"""The solo pool: runs each task in the worker's own thread, one at a time.

Time limits: the soft limit raises SoftTimeLimitExceeded inside the task (SIGALRM); the hard
limit raises TimeLimitExceeded the same way, since there is no child process to kill. An alarm
that fires after the job ended is ignored. :meth:`SoloPool.terminate` raises
:class:`~celeriac.exceptions.Terminated` into the thread running the task (asynchronously, at
its next bytecode); since that thread is the worker's own, only another thread (or a signal
handler) can call it while a task runs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.trace import Outcome
from celeriac.worker.pools._running import Running, RunningJobs
from celeriac.worker.pools.base import Job, Pool, run_job

T = TypeVar("T")


class _Alarm:
    """Soft then hard limit via SIGALRM (main thread only); raises only while a job runs."""

    def __init__(self) -> None:
        self.usable = threading.current_thread() is threading.main_thread() and hasattr(
            signal, "setitimer"
        )
        self.hard_after_s: float | None = None
        self.soft_pending = False
        #: cleared first thing when the job ends: a late alarm then raises nothing
        self.live = False
        #: a timer was set for this job (disarm costs a system call only then)
        self.armed = False

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        if not self.live:
            return
        if self.soft_pending:
            self.soft_pending = False
            if self.hard_after_s is not None:
                remaining, self.hard_after_s = self.hard_after_s, None
                signal.setitimer(signal.ITIMER_REAL, remaining)
            raise SoftTimeLimitExceeded()
        self.live = False
        raise TimeLimitExceeded()

    def arm(self, soft_s: float | None, hard_s: float | None) -> None:
        if not self.usable or (soft_s is None and hard_s is None):
            return
        signal.signal(signal.SIGALRM, self._fire)
        self.live = True
        self.armed = True
        if soft_s is not None and (hard_s is None or soft_s < hard_s):
            self.hard_after_s = (hard_s - soft_s) if hard_s is not None else None
            self.soft_pending = True
            signal.setitimer(signal.ITIMER_REAL, soft_s)
        else:
            self.hard_after_s = None
            self.soft_pending = False
            signal.setitimer(signal.ITIMER_REAL, hard_s or 0.0)

    def disarm(self) -> None:
        """Idempotent; safe to call when never armed."""
        self.live = False
        if self.armed:
            self.armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
        self.hard_after_s = None
        self.soft_pending = False


class SoloPool(Pool):
    name = "solo"
    runs_inline = True
    fixed_size = "has one process"

    def __init__(self, app: Any, limit: int = 1, **kwargs: Any) -> None:
        super().__init__(app, 1, **kwargs)
        self._done: list[tuple[Job, Outcome]] = []
        self._alarm = _Alarm()
        self._jobs = RunningJobs()
        self._job: Job | None = None
        self._ident = 0
        self._begin_cb = self._begin
        self._end_cb = self._end

    def start(self) -> None:
        pass

    def apply(self, job: Job) -> None:
        # One job at a time, in this thread: begin/end read it from here (bound methods made
        # once, not a closure per task: this is the hot path of a solo worker).
        self._job = job
        self._ident = threading.get_ident()
        outcome = run_job(self.app, job.task_name, job.request, job.args, job.kwargs,
                          begin=self._begin_cb, end=self._end_cb)
        self._done.append((job, outcome))

    def _begin(self) -> None:
        job = self._job
        assert job is not None
        self._jobs.begin(self._ident, Running(job))
        self._alarm.arm(job.soft_time_limit_s, job.time_limit_s)

    def _end(self) -> None:
        self._alarm.disarm()
        self._jobs.end(self._ident)

    def poll(self, timeout_s: float) -> list[tuple[Job, Outcome]]:
        done, self._done = self._done, []
        return done

    def stop(self, wait: bool) -> None:
        pass

    def free_slots(self) -> int:
        # The slot frees once the finished job was collected (poll): the worker then settles
        # its result before the next task runs here, in this process.
        return 0 if self._done else 1

    def terminate(self, job_id: int, signum: int) -> bool:
        """Raise Terminated into the thread running ``job_id`` (``signum`` is not used)."""
        return self._jobs.terminate(job_id)

    def running(self) -> list[Job]:
        return self._jobs.jobs()

    def while_running(self, action: Callable[[Job], T]) -> T | None:
        """``action(job)`` with ``job`` the task running now, called from another thread while
        that task cannot end: the worker's thread, leaving it, waits in ``end`` for the lock
        held here. None, without calling ``action``, when no task runs."""
        with self._jobs.lock:
            for entry in self._jobs.by_thread.values():
                if not entry.ended:
                    return action(entry.job)
        return None
