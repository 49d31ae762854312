"""The prefork pool: ``limit`` forked child processes, each running one job at a time.

Each child reads pickled ``Job.wire()`` tuples from its own pipe and writes back
``(job_id, outcome)``; an empty message tells it to exit. The parent waits on every pipe at
once. Time limits: the soft limit is a SIGALRM inside the child that raises
SoftTimeLimitExceeded in the task; the hard limit is enforced by the parent, which kills the
child and reports TimeLimitExceeded. A child that dies mid-job is reported as
WorkerLostError. A child that died, was killed or retired (``max_tasks_per_child``) is
replaced at once, so the pool always has ``limit`` children until it stops.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import signal
import sys
import time
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from types import FrameType, SimpleNamespace
from typing import TYPE_CHECKING, Any, NoReturn

from celeriac import signals, states
from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from celeriac.result_meta import build_meta, encode_meta
from celeriac.trace import Outcome
from celeriac.worker.pools.base import Job, Pool, run_job

if TYPE_CHECKING:
    from celeriac.app.base import Celery

logger = logging.getLogger("celeriac.worker")

_PROTOCOL = 5
#: how long a child whose pipe closed may take to become reapable before it is killed
_EXIT_GRACE_S = 1.0


def failure_outcome(
    app: Celery, task_name: str, request: dict[str, Any], exc: BaseException, runtime_s: float,
    *, store: bool = True,
) -> Outcome:
    """A FAILURE outcome for ``exc`` raised outside the task's own tracing."""
    payload: bytes | None = None
    task = app.tasks.get(task_name)
    ignored = bool(request.get("ignore_result")) or bool(getattr(task, "ignore_result", False))
    if store and (not ignored or getattr(task, "store_errors_even_if_ignored", False)):
        meta = build_meta(
            request["id"], states.FAILURE, exc, request=SimpleNamespace(**request),
            extended=bool(app.conf.result_extended), worker=request.get("hostname"),
        )
        payload = encode_meta(meta, app.conf.result_serializer)
    return Outcome(states.FAILURE, None, repr(exc), runtime_s, payload, None, None,
                   type(exc).__name__)


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
class _SoftLimit:
    """SIGALRM handler that raises only while a job runs (a late alarm is ignored)."""

    armed = False

    def fire(self, signum: int, frame: FrameType | None) -> None:
        if self.armed:
            self.armed = False
            raise SoftTimeLimitExceeded()


def _child_main(app: Celery, conn: Connection, index: int, max_tasks: int | None) -> NoReturn:
    exitcode = 0
    try:
        # The parent coordinates shutdown; a Ctrl-C on the terminal must not kill tasks.
        for signame in ("SIGINT", "SIGTERM", "SIGQUIT"):
            if hasattr(signal, signame):
                signal.signal(getattr(signal, signame), signal.SIG_IGN)
        soft = _SoftLimit()
        signal.signal(signal.SIGALRM, soft.fire)
        random.seed()
        try:
            from setproctitle import setproctitle

            setproctitle(f"celeriac: ForkPoolWorker-{index}")
        except ImportError:
            pass
        signals.worker_process_init.send(sender=None)
        _serve(app, conn, soft, max_tasks)
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


def _serve(app: Celery, conn: Connection, soft: _SoftLimit, max_tasks: int | None) -> None:
    recv, send, loads, dumps = conn.recv_bytes, conn.send_bytes, pickle.loads, pickle.dumps
    setitimer, itimer = signal.setitimer, signal.ITIMER_REAL
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
            if soft_s:
                soft.armed = True
                setitimer(itimer, soft_s)
            try:
                outcome = run_job(app, task_name, request, args, kwargs)
            finally:
                if soft_s:
                    soft.armed = False
                    setitimer(itimer, 0)
        except BaseException as exc:  # escaped the tracer (SystemExit, a late alarm...)
            outcome = failure_outcome(app, task_name, request, exc,
                                      time.perf_counter() - started)
        send(dumps((job_id, outcome.portable()), _PROTOCOL))
        served += 1
        if max_tasks and served >= max_tasks:
            return


# -- the parent side -----------------------------------------------------------------------------
class _Child:
    __slots__ = ("conn", "index", "job", "pid", "served")

    def __init__(self, index: int, pid: int, conn: Connection) -> None:
        self.index = index
        self.pid = pid
        self.conn = conn
        self.job: Job | None = None
        self.served = 0


class PreforkPool(Pool):
    name = "prefork"

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
        while not self._stopping and len(self._by_conn) < self.limit:
            self._spawn()

    def _spawn(self) -> None:
        parent_end, child_end = Pipe()
        self._spawned += 1
        index = self._spawned
        pid = os.fork()
        if pid == 0:
            try:
                parent_end.close()
                # Siblings' pipes must close here too, or their death would never read as EOF.
                for conn in self._conns:
                    conn.close()
                _child_main(self.app, child_end, index, self.max_tasks_per_child)
            finally:
                os._exit(1)
        child_end.close()
        child = _Child(index, pid, parent_end)
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

    def _reap_retired(self, block: bool = False) -> None:
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
        job_id, outcome = pickle.loads(data)
        job, child.job = child.job, None
        self._deadlines.pop(child, None)
        if job is not None and job.id == job_id:
            done.append((job, outcome))
        else:
            logger.error("ForkPoolWorker-%d sent an outcome for unknown job %r",
                         child.index, job_id)
        child.served += 1
        if self.max_tasks_per_child and child.served >= self.max_tasks_per_child:
            # It exits by itself after this outcome; reaped later, replaced now.
            self._forget(child)
            self._retired.append(child.pid)
            self._spawn_missing()
        elif self._stopping:
            self._send_stop(child)
        else:
            self._idle.append(child)

    def _lost(self, child: _Child, done: list[tuple[Job, Outcome]]) -> None:
        """The child's pipe closed: reap it, report its job, replace it."""
        self._forget(child)
        reason = describe_status(self._wait_exit(child.pid))
        job = child.job
        if job is not None or not self._stopping:
            logger.error("Process 'ForkPoolWorker-%d' pid:%d exited with '%s'",
                         child.index, child.pid, reason)
        if job is not None:
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

    # -- introspection ----------------------------------------------------------------------------
    def free_slots(self) -> int:
        return 0 if self._stopping else len(self._idle)

    def running(self) -> list[Job]:
        return [child.job for child in self._by_conn.values() if child.job is not None]

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["processes"] = [child.pid for child in self._by_conn.values()]
        info["max-tasks-per-child"] = self.max_tasks_per_child or "N/A"
        return info
