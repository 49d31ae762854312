"""The prefork pool: ``limit`` forked child processes, each running one job at a time.

Each child has a short queue of jobs (see "Batches" below): the parent writes pickled
``Job.wire()`` tuples to its pipe, several in one write, and the child writes back one
``(job_id, outcome, over_kib)`` frame after each job, before it begins the next (so the
parent always knows which job a dead child had started); a stop frame tells it to exit once
the jobs before it are done. The parent waits on every pipe at once and takes every outcome
that has arrived in one read. Time limits: the soft limit is a SIGALRM inside the child that raises
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

Batches: how many jobs a child may hold (its depth) follows how long tasks take: enough for
about :data:`_QUEUED_WORK_S` of work, at most :data:`_MAX_DEPTH`, and 1 (one job at a time,
nothing waiting in a child) until the first outcomes say tasks are short, and again as soon as
they are not. Each child writes the id of the job it begins into memory shared with the
parent: when a child dies, the job it had begun is reported (WorkerLostError, or REVOKED when
it was being terminated) and those it had not begun go to another child. A job bigger than
:data:`_BUSY_SEND_MAX_BYTES` only goes to an idle child, so a parent writing a job and a child
writing an outcome never wait on each other.

Terminate (``revoke(terminate=True)``): the parent sends the signal to the child running the
job and, when that child dies of it while still on that job, reports the job REVOKED
(``TaskRevokedError('terminated')``) and replaces the child. Children ignore SIGINT, SIGTERM
and SIGQUIT sent by anyone else (a Ctrl-C on the terminal, a service manager signalling the
whole group: the parent coordinates shutdown), except when the parent asked for that job to
be terminated: the parent writes the job id in memory shared with that child before
signalling it. A job terminated while it waits in a child's queue is marked there the same
way: the child ends it REVOKED when it comes to it, without running it (and the parent
signals the child once that job is at the head of its queue, in case it had begun it).
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from multiprocessing.synchronize import Lock
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import Terminated, TimeLimitExceeded, WorkerLostError
from celeriac.trace import Outcome, failure_outcome
from celeriac.worker.pools._frames import STOP, FrameReader, frame, write_all
from celeriac.worker.pools._prefork_child import (
    JOB_ID,
    KILL_OFFSET,
    PROTOCOL,
    SHARED,
    WITHDRAWN_OFFSET,
    begun_job,
    child_main,
    die_with_parent,
    loads_outcome,
    resident_kib,
)
from celeriac.worker.pools._prefork_child import dumps_outcome as _dumps_outcome
from celeriac.worker.pools._prefork_child import loads_outcome as _loads_outcome
from celeriac.worker.pools.base import Job, Pool

if TYPE_CHECKING:
    from celeriac.app.base import Celery

logger = logging.getLogger("celeriac.worker")

__all__ = ["PreforkPool", "_dumps_outcome", "_loads_outcome", "describe_status", "failure_outcome",
           "resident_kib"]

#: how long a child whose pipe closed may take to become reapable before it is killed
_EXIT_GRACE_S = 1.0
#: how long a shrink waits for the idle children it stopped to exit (the rest are reaped later)
_REAP_PATIENCE_S = 0.5
#: how much work (by the tasks' average run time) a child may hold: enough to keep it busy
#: while the parent is away claiming or storing, little enough that a crash costs little
_QUEUED_WORK_S = 0.002
#: the most jobs a child may hold (its depth)
_MAX_DEPTH = 32
#: weight of the newest run time in the moving average that sets the depth
_RUNTIME_WEIGHT = 0.05
#: a job waiting behind one that has run this long is taken back (see _take_back_behind_long)
_TAKE_BACK_AFTER_S = 0.05
#: how long the parent waits for a child's lock to take jobs back
_TAKE_BACK_LOCK_S = 0.05
#: a job's frame bigger than this goes only to an idle child (one blocked reading its pipe):
#: kept well under a pipe's buffer, so a write to a busy child never blocks
_BUSY_SEND_MAX_BYTES = 32 * 1024


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


# -- the parent side -----------------------------------------------------------------------------
class _Child:
    __slots__ = ("conn", "fd", "frames", "head_since_s", "index", "inflight_bytes", "jobs", "lock",
                 "pid", "reader", "retiring", "sent", "served", "shared", "terminating")

    def __init__(self, index: int, pid: int, conn: Connection, shared: mmap.mmap,
                 lock: Lock) -> None:
        self.index = index
        #: held by the child while it decides to begin a job, by the parent taking jobs back
        self.lock = lock
        #: when the first of :attr:`jobs` became the first (monotonic seconds)
        self.head_since_s = 0.0
        self.pid = pid
        self.conn = conn
        self.fd = conn.fileno()
        self.reader = FrameReader(self.fd)
        self.shared = shared
        #: jobs sent and not finished, in the order the child runs them: the first one is
        #: running (or about to), the others wait in the child's queue
        self.jobs: deque[Job] = deque()
        #: the frames written and not all run yet: (id of the last job in it, its size)
        self.frames: deque[tuple[int, int]] = deque()
        #: their total size: at most what the child has not read yet
        self.inflight_bytes = 0
        #: jobs sent (max_tasks_per_child counts them: never send more than it will serve)
        self.sent = 0
        self.served = 0
        #: the signal terminate() sent for the job at the head of :attr:`jobs`, if any
        self.terminating: int | None = None
        #: a shrink asked for this busy child to stop once its jobs end
        self.retiring = False

    @property
    def job(self) -> Job | None:
        """The job running now (or about to begin)."""
        return self.jobs[0] if self.jobs else None


class PreforkPool(Pool):
    name = "prefork"
    fixed_size = None
    checks_memory = True

    def __init__(self, app: Celery, limit: int, **kwargs: Any) -> None:
        super().__init__(app, limit, **kwargs)
        self._by_conn: dict[Connection, _Child] = {}
        self._conns: list[Connection] = []
        #: jobs accepted and not sent to a child yet (or given back by a child that died
        #: before it began them), with their frames
        self._backlog: deque[Job] = deque()
        self._deadlines: dict[_Child, float] = {}
        #: outcomes produced outside poll() (cold stop, unsendable jobs), handed out by poll()
        self._pending: list[tuple[Job, Outcome]] = []
        #: pids of children that exit by themselves and are not reaped yet
        self._retired: list[int] = []
        #: jobs terminate() asked to stop while they waited in a child's queue: signal
        self._terminate_queued: dict[int, int] = {}
        self._spawned = 0
        self._stopping = False
        #: jobs taken back from children that had not begun them, for the executor
        self._taken_back: list[Job] = []
        #: how long a job runs before the jobs waiting behind it are taken back
        self.take_back_after_s = _TAKE_BACK_AFTER_S
        #: how many jobs a child may hold; follows the tasks' run time (see the module doc)
        self.depth = 1
        self._runtime_s = _QUEUED_WORK_S  # moving average of the tasks' run time

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
        to stop after their jobs (see :meth:`_after_outcomes`); they get no new ones."""
        retire = max(0, min(n, self.limit - 1))
        if not retire or self._stopping:
            return self.limit
        self.limit -= retire
        stopped = False
        for child in list(self._by_conn.values()):
            if retire and not child.jobs:
                self._retire(child)
                retire -= 1
                stopped = True
        for child in self._by_conn.values():
            if retire and child.jobs and not child.retiring:
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
        shared = mmap.mmap(-1, SHARED.size)  # anonymous and shared with the child
        lock = multiprocessing.Lock()
        self._spawned += 1
        index = self._spawned
        parent_pid = os.getpid()
        # Linux ties a parent-death signal to the thread that forked: only ask for it when
        # that thread lives as long as the worker.
        by_main = threading.current_thread() is threading.main_thread()
        pid = os.fork()
        if pid == 0:
            try:
                if by_main:
                    die_with_parent(parent_pid)
                parent_end.close()
                # Siblings' pipes must close here too, or their death would never read as EOF.
                for conn in self._conns:
                    conn.close()
                child_main(self.app, child_end.fileno(), shared, lock, index,
                           self.max_tasks_per_child, self.max_memory_per_child)
            finally:
                os._exit(1)
        child_end.close()
        child = _Child(index, pid, parent_end, shared, lock)
        self._by_conn[parent_end] = child
        self._conns.append(parent_end)

    def _forget(self, child: _Child) -> None:
        self._by_conn.pop(child.conn, None)
        self._conns = list(self._by_conn)
        self._deadlines.pop(child, None)
        child.conn.close()
        child.shared.close()

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
        self.apply_many([job])

    def apply_many(self, jobs: Sequence[Job]) -> None:
        """Queue ``jobs`` and send them to children: one frame and one write per child."""
        self._backlog.extend(jobs)
        self._send_backlog()

    def _room(self, child: _Child) -> int:
        """How many more jobs ``child`` may be sent now."""
        if child.retiring:
            return 0
        room = self.depth - len(child.jobs)
        if self.max_tasks_per_child:
            room = min(room, self.max_tasks_per_child - child.sent)
        return room

    def _send_backlog(self) -> None:
        """Hand the backlog out, in order, to the children with room, the least busy first
        (an idle child gets work before a busy one queues more)."""
        backlog = self._backlog
        for _ in range(self.limit + 2):  # a child that dies meanwhile gives its jobs back
            if not backlog:
                return
            if not self._by_conn:
                if self._stopping:  # a warm stop: the jobs it was given must run (acked)
                    self._spawn()
                else:
                    self._spawn_missing()
            room = {child: self._room(child) for child in self._by_conn.values()}
            load = {child: len(child.jobs) for child in room}
            plan: dict[_Child, list[Job]] = {}
            while backlog:
                open_ = [child for child, n in room.items() if n > 0]
                if not open_:
                    break
                child = min(open_, key=load.__getitem__)
                plan.setdefault(child, []).append(backlog.popleft())
                room[child] -= 1
                load[child] += 1
            lost: list[_Child] = []
            returned: list[Job] = []
            for child, jobs in plan.items():
                data = self._frame(jobs)
                if not data:
                    continue
                if child.jobs and child.inflight_bytes + len(data) > _BUSY_SEND_MAX_BYTES:
                    returned.extend(jobs)  # too big for a busy child: wait for an idle one
                    continue
                try:
                    write_all(child.fd, data)
                except OSError:  # it died: what it had not begun goes back to the backlog
                    lost.append(child)
                    returned.extend(jobs)
                    continue
                child.frames.append((jobs[-1].id, len(data)))
                child.inflight_bytes += len(data)
                for job in jobs:
                    self._queue_on(child, job)
            backlog.extendleft(reversed(returned))
            if not lost:
                return
            for child in lost:
                self._lost(child, self._pending)
        while backlog:
            job = backlog.popleft()
            lost_exc = WorkerLostError(
                f"Worker exited prematurely: no child accepted Job: {job.id}.")
            self._pending.append((job, self._lost_outcome(job, lost_exc)))

    def _frame(self, jobs: list[Job]) -> bytes:
        """One frame carrying ``jobs`` (a pickled list of their wire tuples: the request's keys
        are pickled once). A job that cannot be pickled gets its FAILURE outcome here and is
        left out of ``jobs``."""
        try:
            return frame(pickle.dumps([job.wire() for job in jobs], PROTOCOL))
        except Exception:
            pass
        kept: list[Job] = []
        for job in jobs:
            try:
                pickle.dumps(job.wire(), PROTOCOL)
            except Exception as exc:
                self._pending.append(
                    (job, failure_outcome(self.app, job.task_name, job.request, exc, 0.0)))
            else:
                kept.append(job)
        jobs[:] = kept
        return frame(pickle.dumps([job.wire() for job in kept], PROTOCOL)) if kept else b""

    def _queue_on(self, child: _Child, job: Job) -> None:
        child.jobs.append(job)
        child.sent += 1
        if len(child.jobs) == 1:
            self._at_head(child)

    def _at_head(self, child: _Child) -> None:
        """The first job of ``child`` is running now (or about to): arm its hard time limit,
        and stop it if it was terminated while it waited."""
        job = child.jobs[0]
        child.terminating = None
        child.head_since_s = time.monotonic()
        if job.time_limit_s:
            self._deadlines[child] = time.monotonic() + job.time_limit_s
        else:
            self._deadlines.pop(child, None)
        signum = self._terminate_queued.pop(job.id, None)
        if signum is not None:
            self._signal(child, job.id, signum)

    def _signal(self, child: _Child, job_id: int, signum: int) -> None:
        child.terminating = signum
        JOB_ID.pack_into(child.shared, KILL_OFFSET, job_id)
        try:
            os.kill(child.pid, signum)
        except ProcessLookupError:  # already gone: its EOF reports the job
            pass

    def _failed(self, job: Job, exc: BaseException, *, store: bool = True) -> Outcome:
        runtime_s = time.monotonic() - job.started_s if job.started_s else 0.0
        return failure_outcome(self.app, job.task_name, job.request, exc, runtime_s, store=store)

    def _read(self, child: _Child, done: list[tuple[Job, Outcome]]) -> None:
        """Take every outcome ``child`` has written so far."""
        try:
            frames = child.reader.read()
        except OSError:
            frames = None
        if frames is None:
            self._lost(child, done)
            return
        over_kib = 0
        for data in frames:
            job_id, outcome, over_kib = loads_outcome(data)
            if not child.jobs or child.jobs[0].id != job_id:
                logger.error("ForkPoolWorker-%d sent an outcome for unknown job %r",
                             child.index, job_id)
                continue
            job = child.jobs.popleft()
            if child.frames and child.frames[0][0] == job_id:  # that frame is all run
                child.inflight_bytes -= child.frames.popleft()[1]
            self._terminate_queued.pop(job_id, None)
            done.append((job, outcome))
            child.served += 1
            self._runtime_s += (outcome.runtime_s - self._runtime_s) * _RUNTIME_WEIGHT
            if child.jobs:
                self._at_head(child)
            else:
                self._idle_again(child)
        self.depth = max(1, min(_MAX_DEPTH, int(_QUEUED_WORK_S / max(self._runtime_s, 1e-7))))
        self._after_outcomes(child, over_kib)

    def _after_outcomes(self, child: _Child, over_kib: int) -> None:
        if over_kib:
            logger.warning("ForkPoolWorker-%d pid:%d is over the memory limit (%d KiB > %d KiB) "
                           "after its task: replacing it", child.index, child.pid, over_kib,
                           self.max_memory_per_child or 0)
        if over_kib or (self.max_tasks_per_child and child.served >= self.max_tasks_per_child):
            # It exits by itself after this outcome (the jobs it did not begin go to another
            # child); reaped later, replaced now (unless a shrink wanted it gone).
            self._give_back(child)
            self._forget(child)
            self._retired.append(child.pid)
            self._spawn_missing()
        elif child.jobs:
            return
        elif self._stopping and not self._backlog:  # else it takes some of those first
            self._send_stop(child)
        elif child.retiring:
            self._retire(child)

    def _give_back(self, child: _Child, skip: int = 0) -> None:
        """Put the jobs of ``child`` after the first ``skip`` back at the head of the
        backlog, in order: it never began them (one terminated meanwhile ends REVOKED here)."""
        jobs = list(child.jobs)[skip:]
        child.jobs.clear()
        child.frames.clear()
        child.inflight_bytes = 0
        kept: list[Job] = []
        for job in jobs:
            if self._terminate_queued.pop(job.id, None) is not None:
                self._pending.append((job, self._failed(job, Terminated("terminated"))))
            else:
                kept.append(job)
        self._backlog.extendleft(reversed(kept))

    def _lost(self, child: _Child, done: list[tuple[Job, Outcome]]) -> None:
        """The child's pipe closed: reap it, report the job it had begun, give the others back,
        replace it."""
        begun = begun_job(child.shared)
        self._forget(child)
        reason = describe_status(self._wait_exit(child.pid))
        job = child.job
        if job is not None and job.id != begun:
            job = None  # it died before it began its first job: nothing was interrupted
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
        self._give_back(child, skip=1 if job is not None else 0)
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
                if child.job is not job:
                    continue
            self._kill(child.pid)
            self._forget(child)
            self._wait_exit(child.pid)
            limit = job.time_limit_s
            logger.error("Hard time limit (%ss) exceeded for %s[%s]",
                         limit, job.task_name, job.request["id"])
            done.append((job, self._failed(job, TimeLimitExceeded(f"TimeLimitExceeded({limit},)"))))
            self._give_back(child, skip=1)
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
        self._take_back_behind_long(done)
        if self._retired:
            self._reap_retired()
        if self._backlog:  # given back by a child that died or retired, or waiting for room
            self._send_backlog()
        if self._pending and done is not self._pending:
            done.extend(self._pending)
            self._pending = []

    def _take_back_behind_long(self, done: list[tuple[Job, Outcome]]) -> None:
        """Take back the jobs waiting behind one that has run for :attr:`take_back_after_s`
        (far longer than the tasks that let them queue): they go back to the executor's
        reserve, to run on a free child or another worker, and the depth drops to 1."""
        now = time.monotonic()
        for child in list(self._by_conn.values()):
            if len(child.jobs) < 2 or now - child.head_since_s < self.take_back_after_s:
                continue
            self._runtime_s = max(self._runtime_s, now - child.head_since_s)
            self.depth = 1
            if self._stopping or not child.lock.acquire(timeout=_TAKE_BACK_LOCK_S):
                continue  # a child stuck holding it: keep its jobs (its death returns them)
            try:
                begun = begun_job(child.shared)
                JOB_ID.pack_into(child.shared, WITHDRAWN_OFFSET, child.sent)
            finally:
                child.lock.release()
            ids = [job.id for job in child.jobs]
            # It skips every job it had not begun; the one it began (and any before it, whose
            # outcomes are in the pipe) stay.
            keep = ids.index(begun) + 1 if begun in ids else 0
            taken = list(child.jobs)[keep:]
            for _ in taken:
                child.jobs.pop()
            for job in taken:
                if self._terminate_queued.pop(job.id, None) is not None:
                    done.append((job, self._failed(job, Terminated("terminated"))))
                else:
                    self._taken_back.append(job)
            if not child.jobs:
                self._idle_again(child)

    def _idle_again(self, child: _Child) -> None:
        """``child`` holds no job: nothing it will run is in flight."""
        child.terminating = None
        child.frames.clear()
        child.inflight_bytes = 0
        self._deadlines.pop(child, None)

    def take_back(self) -> list[Job]:
        """Jobs taken back from children before they began them (see
        :meth:`_take_back_behind_long`); they are no longer this pool's."""
        taken, self._taken_back = self._taken_back, []
        return taken

    # -- shutdown ---------------------------------------------------------------------------------
    def _send_stop(self, child: _Child) -> None:
        child.retiring = True  # it takes no more jobs
        try:
            write_all(child.fd, STOP)
        except OSError:  # already gone: its EOF is handled like any other
            pass

    def _busy(self) -> bool:
        return bool(self._backlog) or any(child.jobs for child in self._by_conn.values())

    def stop(self, wait: bool) -> None:
        self._stopping = True
        if not wait:
            for child in list(self._by_conn.values()):
                self._kill(child.pid)
            for child in list(self._by_conn.values()):
                self._forget(child)
                reason = describe_status(self._wait_exit(child.pid))
                for job in child.jobs:
                    lost = WorkerLostError(f"Worker exited prematurely: {reason} Job: {job.id}.")
                    self._pending.append((job, self._lost_outcome(job, lost)))
            for job in self._backlog:
                lost = WorkerLostError(f"Worker exited prematurely: cold stop Job: {job.id}.")
                self._pending.append((job, self._lost_outcome(job, lost)))
            self._backlog.clear()
            self._reap_retired(block=True)
            return
        if not self._backlog:
            for child in list(self._by_conn.values()):
                if not child.jobs:
                    self._send_stop(child)
        while self._busy():
            self._collect(0.5, self._pending)
        for child in list(self._by_conn.values()):
            self._forget(child)
            self._wait_exit(child.pid, kill_after_s=10.0)
        self._reap_retired(block=True)

    # -- terminate --------------------------------------------------------------------------------
    def terminate(self, job_id: int, signum: int) -> bool:
        """Stop ``job_id``. Running: send ``signum`` to its child; if the child dies of it while
        still on that job, the job's outcome is REVOKED and the child is replaced; if the job
        finishes first, its own outcome stands. A signal a child survives (one its task
        handles) leaves the job running. Waiting in a child's queue: marked so the child ends
        it REVOKED without running it, and signalled should it be running by the time it
        reaches the head. Returns False when no child holds ``job_id`` or it is already being
        terminated."""
        for child in self._by_conn.values():
            for position, job in enumerate(child.jobs):
                if job.id != job_id:
                    continue
                if position == 0:
                    if child.terminating is not None:
                        return False
                    self._signal(child, job_id, signum)
                    return True
                if job_id in self._terminate_queued:
                    return False
                self._terminate_queued[job_id] = signum
                if child.terminating is None:  # the slot is free: the child checks it at begin
                    JOB_ID.pack_into(child.shared, KILL_OFFSET, job_id)
                return True
        return False

    # -- introspection ----------------------------------------------------------------------------
    def free_slots(self) -> int:
        if self._stopping:
            return 0
        room = sum(max(0, self._room(child)) for child in self._by_conn.values())
        return max(0, room - len(self._backlog))

    def running(self) -> list[Job]:
        jobs = [job for child in list(self._by_conn.values()) for job in list(child.jobs)]
        return jobs + list(self._backlog)

    def info(self) -> dict[str, Any]:
        """Safe from another thread (the heartbeat): reads a copy of the children."""
        info = super().info()
        info["processes"] = [child.pid for child in list(self._by_conn.values())]
        info["max-tasks-per-child"] = self.max_tasks_per_child or "N/A"
        return info
