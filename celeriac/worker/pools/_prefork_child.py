"""The child side of the prefork pool: a forked process that runs the jobs its parent sends.

The child reads frames (:mod:`celeriac.worker.pools._frames`) from its pipe: each one a pickled
list of ``Job.wire()`` tuples, or the stop frame. It runs its jobs in order and, after each one and
before it begins the next, writes one ``(job_id, outcome, over_kib)`` frame: so every job that
ended has its outcome in the pipe even if the child dies right after, and the job id it writes
into the memory it shares with the parent (:data:`SHARED`, the "begun" slot) before a job
begins names the only job a death can interrupt.

A child outlives anything its task does: every job ends in an outcome sent to the parent
(one that cannot be pickled is replaced by a FAILURE/EncodeError one).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import logging
import mmap
import multiprocessing
import operator
import os
import pickle
import random
import resource
import signal
import struct
import sys
import time
from collections import deque
from multiprocessing.synchronize import Lock
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from celeriac import signals
from celeriac.exceptions import EncodeError, SoftTimeLimitExceeded, Terminated
from celeriac.trace import Outcome, failure_outcome
from celeriac.worker.pools._frames import FrameReader, frame, write_all
from celeriac.worker.pools.base import run_job

if TYPE_CHECKING:
    from celeriac.app.base import Celery

logger = logging.getLogger("celeriac.worker")

PROTOCOL = 5
#: the memory a child shares with its parent: the id of the job to terminate, the id of the
#: job it began last, and the sequence number (1 for the first job sent to it) up to which the
#: parent took back the jobs it had not begun
SHARED = struct.Struct("qqq")
KILL_OFFSET, BEGUN_OFFSET, WITHDRAWN_OFFSET = 0, 8, 16
#: one job id in :data:`SHARED`
JOB_ID = struct.Struct("q")
#: the signals a child ignores unless its parent asked for its job to be terminated
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGQUIT")
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


#: prctl option: the signal a process gets when its parent dies (linux/prctl.h)
_PR_SET_PDEATHSIG = 1


def kill_target(shared: mmap.mmap) -> int:
    """The id of the job the parent asked to terminate (0: none)."""
    value: int = JOB_ID.unpack_from(shared, KILL_OFFSET)[0]
    return value


def begun_job(shared: mmap.mmap) -> int:
    """The id of the job the child began last (0: none yet)."""
    value: int = JOB_ID.unpack_from(shared, BEGUN_OFFSET)[0]
    return value


def may_begin(shared: mmap.mmap, lock: Lock, job_id: int, sequence: int) -> bool:
    """The child's side of a take-back: under ``lock``, either mark job ``job_id`` (the
    ``sequence``-th sent to this child) begun, or find the parent took it back (False: skip
    it). The lock makes the two sides' read-then-write atomic, so a job is either begun here
    or taken back, never both."""
    with lock:
        if JOB_ID.unpack_from(shared, WITHDRAWN_OFFSET)[0] >= sequence:
            return False
        JOB_ID.pack_into(shared, BEGUN_OFFSET, job_id)
        return True


class ChildState:
    """What the child's signal handlers need: the job it runs and the soft limit's state."""

    def __init__(self, shared: mmap.mmap) -> None:
        self.shared = shared
        #: the id of the job running now (0: idle)
        self.job_id = 0
        #: the soft limit raises only while this is set (a late alarm is ignored)
        self.soft_armed = False
        self.timer_set = False

    def on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.soft_armed:
            self.soft_armed = False
            raise SoftTimeLimitExceeded()

    def on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only the parent's terminate for the job running now kills: die of the signal itself,
        # so the parent reads the same status as from any other kill.
        if self.job_id and kill_target(self.shared) == self.job_id:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def begin(self, job_id: int, soft_s: float | None) -> None:
        """Raises Terminated when the parent asked to terminate this job before it began."""
        if job_id and kill_target(self.shared) == job_id:
            raise Terminated("terminated before it began")
        self.job_id = job_id
        if soft_s:
            self.soft_armed = self.timer_set = True
            signal.setitimer(signal.ITIMER_REAL, soft_s)

    def end(self) -> None:
        """Idempotent: after it, no alarm or stop signal acts on the job that ran."""
        self.soft_armed = False
        self.job_id = 0
        if self.timer_set:
            self.timer_set = False
            signal.setitimer(signal.ITIMER_REAL, 0)


def resident_kib() -> int:
    """This process's resident memory now, in KiB (Linux: /proc; elsewhere the peak, from
    getrusage, which only grows)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_KIB
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak


def die_with_parent(parent_pid: int) -> None:
    """On Linux, have the kernel SIGKILL this child when the worker process ends
    (``prctl(PR_SET_PDEATHSIG)``): an orphan would go on running a task the broker delivers
    again to the next worker, and keep holding what the worker held. Elsewhere, nothing (the
    child still ends at its next read of the closed pipe)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        done = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if done == 0 and os.getppid() != parent_pid:
        os._exit(1)  # the worker died before the prctl: nobody is left to serve


def child_main(
    app: Celery, fd: int, shared: mmap.mmap, lock: Lock, index: int, max_tasks: int | None,
    max_memory_kib: int | None = None,
) -> NoReturn:
    """The whole life of a child, from fork to ``os._exit``."""
    exitcode = 0
    try:
        state = ChildState(shared)
        for signame in STOP_SIGNALS:
            if hasattr(signal, signame):
                signal.signal(getattr(signal, signame), state.on_stop_signal)
        signal.signal(signal.SIGALRM, state.on_alarm)
        random.seed()
        # Log records take processName from multiprocessing: without this every child's
        # lines read "MainProcess" (Celery names them ForkPoolWorker-N too).
        multiprocessing.current_process().name = f"ForkPoolWorker-{index}"
        try:
            from setproctitle import setproctitle

            setproctitle(f"celeriac: ForkPoolWorker-{index}")
        except ImportError:
            pass
        signals.worker_process_init.send(sender=None)
        serve(app, fd, state, lock, max_tasks, max_memory_kib)
    except BaseException:
        exitcode = 1
        logger.exception("ForkPoolWorker-%d crashed", index)
    finally:
        try:
            signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=exitcode)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(exitcode)


def serve(app: Celery, fd: int, state: ChildState, lock: Lock, max_tasks: int | None,
          max_memory_kib: int | None = None) -> None:
    """Run jobs until told to stop. After each job the child sends ``(job_id, outcome,
    rss_kib)``: ``rss_kib`` is its resident memory when that is over ``max_memory_kib`` (it
    exits right after; the parent replaces it and gives its other jobs to another child),
    else 0."""
    reader = FrameReader(fd)
    loads, shared = pickle.loads, state.shared
    queue: deque[tuple[Any, ...] | None] = deque()
    served = received = 0
    while True:
        if not queue:
            try:
                frames = reader.next_frames()
            except (EOFError, OSError):  # the parent is gone
                return
            for data in frames:
                queue.extend(loads(data) if data else (None,))  # a list of jobs, or stop
        item = queue.popleft()
        if item is None:
            return
        job_id, task_name, request, args, kwargs, _, soft_s = item
        received += 1
        if not may_begin(shared, lock, job_id, received):
            continue  # taken back by the parent (it runs elsewhere): no outcome from here
        started = time.perf_counter()
        try:
            outcome = run_job(app, task_name, request, args, kwargs,
                              begin=functools.partial(state.begin, job_id, soft_s),
                              end=state.end)
        except BaseException as exc:  # missed every net: run_job passes only ColdShutdown
            state.end()
            outcome = failure_outcome(app, task_name, request, exc,
                                      time.perf_counter() - started)
        rss_kib = resident_kib() if max_memory_kib else 0
        over_kib = rss_kib if max_memory_kib and rss_kib > max_memory_kib else 0
        try:
            write_all(fd, frame(dumps_outcome(app, task_name, request, job_id, outcome,
                                              over_kib)))
        except OSError:  # the parent is gone
            return
        served += 1
        if over_kib or (max_tasks and served >= max_tasks):
            return


#: an outcome's fields in the order Outcome() takes them: a plain tuple crosses the pipe,
#: ~4x cheaper to pickle and unpickle than the dataclass (no class to look up)
_OUTCOME_FIELDS = operator.attrgetter(*(field.name for field in dataclasses.fields(Outcome)))


def dumps_outcome(
    app: Celery, task_name: str, request: dict[str, Any], job_id: int, outcome: Outcome,
    over_kib: int = 0,
) -> bytes:
    """What the child sends after a job (read back with :func:`loads_outcome`)."""
    try:
        return pickle.dumps((job_id, _OUTCOME_FIELDS(outcome.portable()), over_kib), PROTOCOL)
    except Exception as exc:  # e.g. a str subclass in the summary that cannot be pickled
        error = EncodeError(f"Cannot send the outcome to the worker: {type(exc).__name__}")
        failed = failure_outcome(app, task_name, request, error, outcome.runtime_s)
        return pickle.dumps((job_id, _OUTCOME_FIELDS(failed.portable()), over_kib), PROTOCOL)


def loads_outcome(data: bytes) -> tuple[int, Outcome, int]:
    """``(job_id, outcome, over_kib)`` from what :func:`dumps_outcome` made."""
    job_id, fields, over_kib = pickle.loads(data)
    return job_id, Outcome(*fields), over_kib
