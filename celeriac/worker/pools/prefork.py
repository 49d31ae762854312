"""The prefork pool: ``limit`` forked child processes, each running one job at a time.

Each child reads pickled ``Job.wire()`` tuples from its own pipe and writes back
``(job_id, outcome)``; an empty message tells it to exit. The parent waits on every pipe at
once. Time limits: the soft limit is a SIGALRM inside the child that raises
SoftTimeLimitExceeded in the task; the hard limit is enforced by the parent, which kills the
child and reports TimeLimitExceeded. A child that dies mid-job is reported as
WorkerLostError. A child that died, was killed or retired (``max_tasks_per_child``, or
``max_memory_per_child``: its resident memory after a task was over the limit) is replaced at
once, so the pool always has ``limit`` children until it stops (plus, after a shrink, busy
children that retire when their task ends).

Resizing: :meth:`PreforkPool.grow` forks children at once. :meth:`PreforkPool.shrink` lowers
``limit`` at once, stops idle children first and marks busy ones to retire after their task:
a running task is never stopped by a shrink.

A child outlives anything its task does: every job ends in an outcome sent to the parent
(one that cannot be pickled is replaced by a FAILURE/EncodeError one).

Terminate (``revoke(terminate=True)``): the parent sends the signal to the child running the
job and, when that child dies of it while still on that job, reports the job REVOKED
(``TaskRevokedError('terminated')``) and replaces the child. Children ignore SIGINT, SIGTERM
and SIGQUIT sent by anyone else (a Ctrl-C on the terminal, a service manager signalling the
whole group: the parent coordinates shutdown), except when the parent asked for that job to
be terminated: the parent writes the job id in memory shared with that child before
signalling it.
"""

from __future__ import annotations

import functools
import logging
import mmap
import multiprocessing
import os
import pickle
import random
import resource
import signal
import struct
import sys
import time
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from celeriac import signals
from celeriac.exceptions import (
    EncodeError,
    SoftTimeLimitExceeded,
    Terminated,
    TimeLimitExceeded,
    WorkerLostError,
)
from celeriac.trace import Outcome, failure_outcome
from celeriac.worker.pools.base import Job, Pool, run_job

if TYPE_CHECKING:
    from celeriac.app.base import Celery

logger = logging.getLogger("celeriac.worker")

__all__ = ["PreforkPool", "describe_status", "failure_outcome"]

_PROTOCOL = 5
#: how long a child whose pipe closed may take to become reapable before it is killed
_EXIT_GRACE_S = 1.0
#: how long a shrink waits for the idle children it stopped to exit (the rest are reaped later)
_REAP_PATIENCE_S = 0.5
#: the signals a child ignores unless its parent asked for its job to be terminated
_STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGQUIT")
#: layout of the memory a child shares with its parent: the id of the job to terminate
_KILL_JOB = struct.Struct("q")
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


def describe_status(status: int | None) -> str:
    """Billiard's wording of how a process ended: ``signal 9 (SIGKILL)`` or ``exitcode 1``."""
    if status is None:
        return "exitcode unknown"
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = "unknown"
        return f"signal {signum} ({name})"
    return f"exitcode {os.waitstatus_to_exitcode(status)}"


# -- the child side ------------------------------------------------------------------------------
class _ChildState:
    """What the child's signal handlers need: the job it runs and the soft limit's state."""

    def __init__(self, kill_job: mmap.mmap) -> None:
        self.kill_job = kill_job
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
        if self.job_id and _KILL_JOB.unpack_from(self.kill_job)[0] == self.job_id:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def begin(self, job_id: int, soft_s: float | None) -> None:
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


def _child_main(
    app: Celery, conn: Connection, kill_job: mmap.mmap, index: int, max_tasks: int | None,
    max_memory_kib: int | None = None,
) -> NoReturn:
    exitcode = 0
    try:
        state = _ChildState(kill_job)
        for signame in _STOP_SIGNALS:
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
        _serve(app, conn, state, max_tasks, max_memory_kib)
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


def _serve(app: Celery, conn: Connection, state: _ChildState, max_tasks: int | None,
           max_memory_kib: int | None = None) -> None:
    """Run jobs until told to stop. After each job the child sends ``(job_id, outcome,
    rss_kib)``: ``rss_kib`` is its resident memory when that is over ``max_memory_kib`` (it
    exits right after; the parent replaces it), else 0."""
    recv, send, loads = conn.recv_bytes, conn.send_bytes, pickle.loads
    served = 0
    while True:
        try:
            data = recv()
        except EOFError:  # the parent is gone
            return
        if not data:
            return
        job_id, task_name, request, args, kwargs, _, soft_s = loads(data)
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
            send(_dumps_outcome(app, task_name, request, job_id, outcome, over_kib))
        except OSError:  # the parent is gone
            return
        served += 1
        if over_kib or (max_tasks and served >= max_tasks):
            return


def _dumps_outcome(
    app: Celery, task_name: str, request: dict[str, Any], job_id: int, outcome: Outcome,
    over_kib: int = 0,
) -> bytes:
    try:
        return pickle.dumps((job_id, outcome.portable(), over_kib), _PROTOCOL)
    except Exception as exc:  # e.g. a str subclass in the summary that cannot be pickled
        error = EncodeError(f"Cannot send the outcome to the worker: {type(exc).__name__}")
        failed = failure_outcome(app, task_name, request, error, outcome.runtime_s)
        return pickle.dumps((job_id, failed.portable(), over_kib), _PROTOCOL)


# -- the parent side -----------------------------------------------------------------------------
class _Child:
    __slots__ = ("conn", "index", "job", "kill_job", "pid", "retiring", "served", "terminating")

    def __init__(self, index: int, pid: int, conn: Connection, kill_job: mmap.mmap) -> None:
        self.index = index
        self.pid = pid
        self.conn = conn
        self.kill_job = kill_job
        self.job: Job | None = None
        self.served = 0
        #: the signal terminate() sent for the current job, if any
        self.terminating: int | None = None
        #: a shrink asked for this busy child to stop once its job ends
        self.retiring = False


class PreforkPool(Pool):
    name = "prefork"
    fixed_size = None
    checks_memory = True

    def __init__(self, app: Celery, limit: int, **kwargs: Any) -> None:
        super().__init__(app, limit, **kwargs)
        self._by_conn: dict[Connection, _Child] = {}
        self._conns: list[Connection] = []
        self._idle: list[_Child] = []
        self._deadlines: dict[_Child, float] = {}
        #: outcomes produced outside poll() (cold stop, unsendable jobs), handed out by poll()
        self._pending: list[tuple[Job, Outcome]] = []
        #: pids of children that exit by themselves and are not reaped yet
        self._retired: list[int] = []
        self._spawned = 0
        self._stopping = False

    # -- children ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._spawn_missing()

    def _spawn_missing(self) -> None:
        if self._stopping:
            return
        staying = sum(1 for child in self._by_conn.values() if not child.retiring)
        for _ in range(self.limit - staying):
            self._spawn()

    def grow(self, n: int) -> int:
        """Add ``n`` children: busy children marked to retire by a shrink stay instead, the
        rest are forked now."""
        if n <= 0 or self._stopping:
            return self.limit
        self.limit += n
        for child in self._by_conn.values():
            if child.retiring and n:
                child.retiring = False
                n -= 1
        self._spawn_missing()
        return self.limit

    def shrink(self, n: int) -> int:
        """Remove ``n`` children (never below 1): idle ones stop now, then busy ones are marked
        to stop after their job (see :meth:`_read`)."""
        retire = max(0, min(n, self.limit - 1))
        if not retire or self._stopping:
            return self.limit
        self.limit -= retire
        stopped = False
        while retire and self._idle:
            self._retire(self._idle.pop())
            retire -= 1
            stopped = True
        for child in self._by_conn.values():
            if retire and child.job is not None and not child.retiring:
                child.retiring = True
                retire -= 1
        if stopped:  # they exit at once; reap them now, as the worker may be idle for long
            self._reap_retired(patience_s=_REAP_PATIENCE_S)
        return self.limit

    def maintain(self) -> None:
        """Reap children that exited by themselves (retired after a task)."""
        if self._retired:
            self._reap_retired()

    def _retire(self, child: _Child) -> None:
        """Tell an idle child to exit; it is reaped later."""
        self._send_stop(child)
        self._forget(child)
        self._retired.append(child.pid)

    def _spawn(self) -> None:
        parent_end, child_end = Pipe()
        kill_job = mmap.mmap(-1, _KILL_JOB.size)  # anonymous and shared with the child
        self._spawned += 1
        index = self._spawned
        pid = os.fork()
        if pid == 0:
            try:
                parent_end.close()
                # Siblings' pipes must close here too, or their death would never read as EOF.
                for conn in self._conns:
                    conn.close()
                _child_main(self.app, child_end, kill_job, index, self.max_tasks_per_child,
                            self.max_memory_per_child)
            finally:
                os._exit(1)
        child_end.close()
        child = _Child(index, pid, parent_end, kill_job)
        self._by_conn[parent_end] = child
        self._conns.append(parent_end)
        self._idle.append(child)

    def _forget(self, child: _Child) -> None:
        self._by_conn.pop(child.conn, None)
        self._conns = list(self._by_conn)
        self._deadlines.pop(child, None)
        if child in self._idle:
            self._idle.remove(child)
        child.conn.close()
        child.kill_job.close()

    def _wait_exit(self, pid: int, kill_after_s: float = _EXIT_GRACE_S) -> int | None:
        deadline = time.monotonic() + kill_after_s
        while True:
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if reaped:
                return status
            if time.monotonic() >= deadline:
                self._kill(pid)
                try:
                    return os.waitpid(pid, 0)[1]
                except ChildProcessError:
                    return None
            time.sleep(0.001)

    @staticmethod
    def _kill(pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _reap_retired(self, block: bool = False, patience_s: float = 0.0) -> None:
        """Reap retired children: ``block`` waits for each (killing one that takes longer than
        the exit grace); ``patience_s`` waits that long at most for them to exit by
        themselves, then leaves the rest for a later call."""
        deadline = time.monotonic() + patience_s
        while True:
            still: list[int] = []
            for pid in self._retired:
                if block:
                    self._wait_exit(pid)
                    continue
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == 0:
                        still.append(pid)
                except ChildProcessError:
                    pass
            self._retired = still
            if not still or time.monotonic() >= deadline:
                return
            time.sleep(0.002)

    # -- jobs -------------------------------------------------------------------------------------
    def apply(self, job: Job) -> None:
        try:
            data = pickle.dumps(job.wire(), _PROTOCOL)
        except Exception as exc:
            self._pending.append(
                (job, failure_outcome(self.app, job.task_name, job.request, exc, 0.0))
            )
            return
        for _ in range(self.limit + 2):
            if not self._idle:  # every idle child died while we tried to send
                self._spawn_missing()
            child = self._idle.pop()
            child.job = job
            if job.time_limit_s:
                self._deadlines[child] = time.monotonic() + job.time_limit_s
            try:
                child.conn.send_bytes(data)
                return
            except OSError:  # the child died while idle: the job never started, so retry it
                child.job = None
                self._lost(child, [])
        lost = WorkerLostError(f"Worker exited prematurely: no child accepted Job: {job.id}.")
        self._pending.append((job, self._lost_outcome(job, lost)))

    def _failed(self, job: Job, exc: BaseException, *, store: bool = True) -> Outcome:
        runtime_s = time.monotonic() - job.started_s if job.started_s else 0.0
        return failure_outcome(self.app, job.task_name, job.request, exc, runtime_s, store=store)

    def _read(self, child: _Child, done: list[tuple[Job, Outcome]]) -> None:
        try:
            data = child.conn.recv_bytes()
        except (EOFError, OSError):
            self._lost(child, done)
            return
        job_id, outcome, over_kib = pickle.loads(data)
        job, child.job, child.terminating = child.job, None, None
        self._deadlines.pop(child, None)
        if job is not None and job.id == job_id:
            done.append((job, outcome))
        else:
            logger.error("ForkPoolWorker-%d sent an outcome for unknown job %r",
                         child.index, job_id)
        child.served += 1
        if over_kib:
            logger.warning("ForkPoolWorker-%d pid:%d is over the memory limit (%d KiB > %d KiB) "
                           "after its task: replacing it", child.index, child.pid, over_kib,
                           self.max_memory_per_child or 0)
        if over_kib or (self.max_tasks_per_child and child.served >= self.max_tasks_per_child):
            # It exits by itself after this outcome; reaped later, replaced now (unless a
            # shrink wanted it gone).
            self._forget(child)
            self._retired.append(child.pid)
            self._spawn_missing()
        elif self._stopping:
            self._send_stop(child)
        elif child.retiring:
            self._retire(child)
        else:
            self._idle.append(child)

    def _lost(self, child: _Child, done: list[tuple[Job, Outcome]]) -> None:
        """The child's pipe closed: reap it, report its job, replace it."""
        self._forget(child)
        reason = describe_status(self._wait_exit(child.pid))
        job = child.job
        if job is not None and child.terminating is not None:
            logger.info("Terminated %s[%s] (ForkPoolWorker-%d pid:%d exited with '%s')",
                        job.task_name, job.request.get("id"), child.index, child.pid, reason)
            done.append((job, self._failed(job, Terminated(reason))))
        elif job is not None or not self._stopping:
            logger.error("Process 'ForkPoolWorker-%d' pid:%d exited with '%s'",
                         child.index, child.pid, reason)
        if job is not None and child.terminating is None:
            exc = WorkerLostError(f"Worker exited prematurely: {reason} Job: {job.id}.")
            done.append((job, self._lost_outcome(job, exc)))
        self._spawn_missing()

    def _lost_outcome(self, job: Job, exc: WorkerLostError) -> Outcome:
        # A message that goes back to the queue runs again: record no failure for it (Celery's).
        return self._failed(job, exc, store=not (job.acks_late and job.reject_on_worker_lost))

    def _enforce_deadlines(self, done: list[tuple[Job, Outcome]]) -> None:
        now = time.monotonic()
        for child, deadline in list(self._deadlines.items()):
            job = child.job
            if deadline > now or job is None:
                continue
            if child.conn.poll():  # it finished (or died) just in time
                self._read(child, done)
                continue
            self._kill(child.pid)
            self._forget(child)
            self._wait_exit(child.pid)
            limit = job.time_limit_s
            logger.error("Hard time limit (%ss) exceeded for %s[%s]",
                         limit, job.task_name, job.request["id"])
            done.append((job, self._failed(job, TimeLimitExceeded(f"TimeLimitExceeded({limit},)"))))
            self._spawn_missing()

    def poll(self, timeout_s: float) -> list[tuple[Job, Outcome]]:
        done = self._pending
        self._pending = []
        self._collect(0.0 if done else timeout_s, done)
        return done

    def _collect(self, timeout_s: float, done: list[tuple[Job, Outcome]]) -> None:
        if self._deadlines:
            nearest = min(self._deadlines.values())
            timeout_s = max(0.0, min(timeout_s, nearest - time.monotonic()))
        if self._conns:
            by_conn = self._by_conn
            for conn in wait(self._conns, timeout_s):
                child = by_conn.get(conn)  # type: ignore[call-overload]
                if child is not None:
                    self._read(child, done)
        elif timeout_s > 0:
            time.sleep(timeout_s)
        if self._deadlines:
            self._enforce_deadlines(done)
        if self._retired:
            self._reap_retired()

    # -- shutdown ---------------------------------------------------------------------------------
    def _send_stop(self, child: _Child) -> None:
        try:
            child.conn.send_bytes(b"")
        except OSError:  # already gone: its EOF is handled like any other
            pass

    def stop(self, wait: bool) -> None:
        self._stopping = True
        if not wait:
            for child in list(self._by_conn.values()):
                self._kill(child.pid)
            for child in list(self._by_conn.values()):
                self._forget(child)
                reason = describe_status(self._wait_exit(child.pid))
                job = child.job
                if job is not None:
                    lost = WorkerLostError(f"Worker exited prematurely: {reason} Job: {job.id}.")
                    self._pending.append((job, self._lost_outcome(job, lost)))
            self._reap_retired(block=True)
            return
        idle, self._idle = self._idle, []
        for child in idle:
            self._send_stop(child)
        while any(child.job is not None for child in self._by_conn.values()):
            self._collect(0.5, self._pending)
        for child in list(self._by_conn.values()):
            self._forget(child)
            self._wait_exit(child.pid, kill_after_s=10.0)
        self._reap_retired(block=True)

    # -- terminate --------------------------------------------------------------------------------
    def terminate(self, job_id: int, signum: int) -> bool:
        """Send ``signum`` to the child running ``job_id``. If the child dies of it while still
        on that job, the job's outcome is REVOKED and the child is replaced; if the job
        finishes first, its own outcome stands. A signal a child survives (one its task
        handles) leaves the job running. Returns False when no child runs ``job_id``."""
        for child in self._by_conn.values():
            job = child.job
            if job is None or job.id != job_id:
                continue
            if child.terminating is not None:
                return False
            child.terminating = signum
            _KILL_JOB.pack_into(child.kill_job, 0, job_id)
            try:
                os.kill(child.pid, signum)
            except ProcessLookupError:  # already gone: its EOF reports the job
                pass
            return True
        return False

    # -- introspection ----------------------------------------------------------------------------
    def free_slots(self) -> int:
        return 0 if self._stopping else len(self._idle)

    def running(self) -> list[Job]:
        return [child.job for child in self._by_conn.values() if child.job is not None]

    def info(self) -> dict[str, Any]:
        """Safe from another thread (the heartbeat): reads a copy of the children."""
        info = super().info()
        info["processes"] = [child.pid for child in list(self._by_conn.values())]
        info["max-tasks-per-child"] = self.max_tasks_per_child or "N/A"
        return info
