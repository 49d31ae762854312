"""The threads pool: N threads in the worker process.

Time limits: a watchdog raises SoftTimeLimitExceeded, then TimeLimitExceeded, inside the
task's thread (an asynchronous exception; it lands at the next Python bytecode, so a task
blocked in C code sees it when that call returns). Threads cannot be killed.
"""

from __future__ import annotations

import ctypes
import queue
import threading
import time
from typing import Any

from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.trace import Outcome
from celeriac.worker.pools.base import Job, Pool, run_job

_STOP = None


def _raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )


class ThreadsPool(Pool):
    name = "threads"

    def __init__(self, app: Any, limit: int, **kwargs: Any) -> None:
        super().__init__(app, limit, **kwargs)
        self._inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[tuple[Job, Outcome]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()
        # thread ident -> (job, soft deadline, hard deadline, soft fired)
        self._running: dict[int, list[Any]] = {}
        self._watchdog: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        for i in range(self.limit):
            thread = threading.Thread(target=self._work, name=f"celeriac-thread-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._watchdog = threading.Thread(
            target=self._watch, name="celeriac-timelimits", daemon=True
        )
        self._watchdog.start()

    def _work(self) -> None:
        ident = threading.get_ident()
        while True:
            job = self._inbox.get()
            if job is None:
                return
            now = time.monotonic()
            soft = now + job.soft_time_limit_s if job.soft_time_limit_s else None
            hard = now + job.time_limit_s if job.time_limit_s else None
            with self._lock:
                self._running[ident] = [job, soft, hard, False]
            try:
                outcome = run_job(self.app, job.task_name, job.request, job.args, job.kwargs)
            finally:
                with self._lock:
                    self._running.pop(ident, None)
            self._outbox.put((job, outcome))

    def _watch(self) -> None:
        while not self._stopping.wait(0.05):
            now = time.monotonic()
            with self._lock:
                for ident, entry in self._running.items():
                    _, soft, hard, soft_fired = entry
                    if soft is not None and not soft_fired and now >= soft:
                        entry[3] = True
                        _raise_in_thread(ident, SoftTimeLimitExceeded)
                    elif hard is not None and now >= hard:
                        entry[2] = None
                        _raise_in_thread(ident, TimeLimitExceeded)

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
        for _ in self._threads:
            self._inbox.put(_STOP)
        if wait:
            for thread in self._threads:
                thread.join()

    def free_slots(self) -> int:
        return self.limit - self._busy

    def running(self) -> list[Job]:
        with self._lock:
            return [entry[0] for entry in self._running.values()]
