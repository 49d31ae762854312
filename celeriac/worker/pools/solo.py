"""The solo pool: runs each task in the worker's own thread, one at a time.

Time limits: the soft limit raises SoftTimeLimitExceeded inside the task (SIGALRM); the hard
limit raises TimeLimitExceeded the same way, since there is no child process to kill.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.trace import Outcome
from celeriac.worker.pools.base import Job, Pool, run_job


class _Alarm:
    """Soft then hard limit via SIGALRM (main thread only)."""

    def __init__(self) -> None:
        self.usable = threading.current_thread() is threading.main_thread() and hasattr(
            signal, "setitimer"
        )
        self.hard_after_s: float | None = None
        self.soft_pending = False

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        if self.soft_pending:
            self.soft_pending = False
            if self.hard_after_s is not None:
                remaining, self.hard_after_s = self.hard_after_s, None
                signal.setitimer(signal.ITIMER_REAL, remaining)
            raise SoftTimeLimitExceeded()
        raise TimeLimitExceeded()

    def arm(self, soft_s: float | None, hard_s: float | None) -> bool:
        if not self.usable or (soft_s is None and hard_s is None):
            return False
        signal.signal(signal.SIGALRM, self._fire)
        if soft_s is not None and (hard_s is None or soft_s < hard_s):
            self.hard_after_s = (hard_s - soft_s) if hard_s is not None else None
            self.soft_pending = True
            signal.setitimer(signal.ITIMER_REAL, soft_s)
        else:
            self.hard_after_s = None
            self.soft_pending = False
            signal.setitimer(signal.ITIMER_REAL, hard_s or 0.0)
        return True

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.hard_after_s = None
        self.soft_pending = False


class SoloPool(Pool):
    name = "solo"
    runs_inline = True

    def __init__(self, app: Any, limit: int = 1, **kwargs: Any) -> None:
        super().__init__(app, 1, **kwargs)
        self._done: list[tuple[Job, Outcome]] = []
        self._alarm = _Alarm()

    def start(self) -> None:
        pass

    def apply(self, job: Job) -> None:
        armed = self._alarm.arm(job.soft_time_limit_s, job.time_limit_s)
        try:
            outcome = run_job(self.app, job.task_name, job.request, job.args, job.kwargs)
        finally:
            if armed:
                self._alarm.disarm()
        self._done.append((job, outcome))

    def poll(self, timeout_s: float) -> list[tuple[Job, Outcome]]:
        done, self._done = self._done, []
        return done

    def stop(self, wait: bool) -> None:
        pass

    def free_slots(self) -> int:
        return 1
