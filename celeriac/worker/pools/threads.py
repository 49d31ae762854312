"""The threads pool: N threads in the worker process.

Time limits: a watchdog raises SoftTimeLimitExceeded, then TimeLimitExceeded, inside the
task's thread (an asynchronous exception; it lands at the next Python bytecode, so a task
blocked in C code sees it when that call returns). Threads cannot be killed, so
:meth:`ThreadsPool.terminate` raises :class:`~celeriac.exceptions.Terminated` the same way:
stopping is cooperative (a task that catches it goes on).

A pool thread never dies: every job yields one outcome and frees its slot whatever the task
did, and nothing raised into a job can land after it ended (see ``_running``).

Resizing: :meth:`ThreadsPool.grow` starts threads at once; :meth:`ThreadsPool.shrink` lowers
the limit at once and queues one stop per thread to retire, which an idle thread takes at once
and a busy one after its task (the executor never queues more jobs than free slots, so no job
waits behind a stop for longer than a running task).
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from typing import Any

from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.trace import Outcome, failure_outcome
from celeriac.worker.pools._running import Running, RunningJobs
from celeriac.worker.pools.base import Job, Pool, run_job

_STOP = None
#: how often the watchdog checks time limits
_WATCH_INTERVAL_S = 0.05


class ThreadsPool(Pool):
    name = "threads"
    fixed_size = None

    def __init__(self, app: Any, limit: int, **kwargs: Any) -> None:
        super().__init__(app, limit, **kwargs)
        self._inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        # Not a SimpleQueue: the worker's main thread waits on it, and CPython 3.11's
        # SimpleQueue.get(timeout=...) can block forever when a signal (Ctrl-C, SIGTERM) lands
        # during the wait; Queue waits on a lock whose timed acquire survives signals.
        self._outbox: queue.Queue[tuple[Job, Outcome]] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._jobs = RunningJobs()
        self._lock = self._jobs.lock
        self._watchdog: threading.Thread | None = None
        self._stopping = threading.Event()
        self._started = 0

    def start(self) -> None:
        self._start_threads(self.limit)
        self._watchdog = threading.Thread(
            target=self._watch, name="celeriac-timelimits", daemon=True
        )
        self._watchdog.start()

    def _start_threads(self, n: int) -> None:
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        for _ in range(n):
            thread = threading.Thread(target=self._work, name=f"celeriac-thread-{self._started}",
                                      daemon=True)
            self._started += 1
            thread.start()
            self._threads.append(thread)

    def grow(self, n: int) -> int:
        if n > 0 and not self._stopping.is_set():
            self._start_threads(n)
            with self._lock:
                self.limit += n
        return self.limit

    def shrink(self, n: int) -> int:
        retire = max(0, min(n, self.limit - 1))
        if retire and not self._stopping.is_set():
            with self._lock:
                self.limit -= retire
            for _ in range(retire):
                self._inbox.put(_STOP)
        return self.limit

    def _work(self) -> None:
        ident = threading.get_ident()
        end = functools.partial(self._jobs.end, ident)
        while True:
            job: Job | None = None
            try:
                job = self._inbox.get()
                if job is None:
                    return
                begin = functools.partial(self._begin, ident, job)
                outcome = run_job(self.app, job.task_name, job.request, job.args, job.kwargs,
                                  begin=begin, end=end)
                self._outbox.put((job, outcome))
            except BaseException as exc:
                # What missed every net (an interruption landing in run_job's own handler, a
                # ColdShutdown a task raised itself): the job still reports, the thread lives.
                end()
                if job is not None:
                    self._outbox.put(
                        (job, failure_outcome(self.app, job.task_name, job.request, exc, 0.0))
                    )

    def _begin(self, ident: int, job: Job) -> None:
        now = time.monotonic()
        self._jobs.begin(ident, Running(
            job,
            now + job.soft_time_limit_s if job.soft_time_limit_s else None,
            now + job.time_limit_s if job.time_limit_s else None,
        ))

    def _watch(self) -> None:
        while not self._stopping.wait(_WATCH_INTERVAL_S):
            now = time.monotonic()
            with self._lock:
                for ident, entry in self._jobs.by_thread.items():
                    soft, hard = entry.soft_deadline_s, entry.hard_deadline_s
                    if soft is not None and now >= soft:
                        entry.soft_deadline_s = None
                        self._jobs.raise_into(ident, entry, SoftTimeLimitExceeded)
                    elif hard is not None and now >= hard:
                        entry.hard_deadline_s = None
                        self._jobs.raise_into(ident, entry, TimeLimitExceeded)

    def apply(self, job: Job) -> None:
        with self._lock:
            self._busy += 1
        self._inbox.put(job)

    def poll(self, timeout_s: float) -> list[tuple[Job, Outcome]]:
        done: list[tuple[Job, Outcome]] = []
        try:
            done.append(
                self._outbox.get(timeout=timeout_s) if timeout_s > 0 else self._outbox.get_nowait()
            )
        except queue.Empty:
            return done
        while True:
            try:
                done.append(self._outbox.get_nowait())
            except queue.Empty:
                break
        with self._lock:
            self._busy -= len(done)
        return done

    def stop(self, wait: bool) -> None:
        self._stopping.set()
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        for _ in self._threads:
            self._inbox.put(_STOP)
        if wait:
            for thread in self._threads:
                thread.join()

    def free_slots(self) -> int:
        return max(0, self.limit - self._busy)  # below 0 after a shrink while busy

    def terminate(self, job_id: int, signum: int) -> bool:
        """Raise Terminated into the thread running ``job_id`` (``signum`` is not used: a
        thread cannot be signalled). Cooperative: lands at the task's next bytecode."""
        return self._jobs.terminate(job_id)

    def running(self) -> list[Job]:
        return self._jobs.jobs()

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["threads"] = sum(1 for thread in list(self._threads) if thread.is_alive())
        return info
