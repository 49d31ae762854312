"""The pool contract: where task calls run (solo, threads, prefork, later asyncio).

A pool takes :class:`Job` objects and hands back ``(job, outcome)`` pairs. The executor owns
acking and result storage; a pool only runs code and reports, including the outcome of a job
whose process died (``WorkerLostError``), overran its hard time limit, or was terminated.

Rules every pool keeps:

- every job applied yields exactly one outcome from :meth:`Pool.poll`, whatever the task did
  (:func:`run_job` never raises except ``ColdShutdown``), and its slot frees;
- a time limit or terminate is delivered into a job only while that job is the one running:
  :func:`run_job` calls the pool's ``begin``/``end`` callbacks inside its safety net, and a
  pool raises nothing into a job after ``end`` (a late one is ignored or cleared);
- :meth:`Pool.terminate` ends a running job as REVOKED (``TaskRevokedError('terminated')``).
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celeriac.exceptions import ColdShutdown
from celeriac.message import Delivery
from celeriac.task import Context
from celeriac.trace import Outcome, failure_outcome, trace_task

if TYPE_CHECKING:
    from celeriac.app.base import Celery

logger = logging.getLogger("celeriac.worker")

@dataclass(slots=True)
class Job:
    """One task call to run."""

    id: int
    task_name: str
    request: dict[str, Any]
    args: list[Any]
    kwargs: dict[str, Any]
    time_limit_s: float | None
    soft_time_limit_s: float | None
    acks_late: bool
    reject_on_worker_lost: bool
    delivery: Delivery | None = None
    started_s: float = field(default=0.0)
    #: when it was handed to the pool, epoch seconds (``inspect active``'s ``time_start``)
    started_at_s: float = field(default=0.0)
    #: acked ahead of its start (early ack in batches): nothing to settle at start
    acked: bool = False
    #: the signal a revoke(terminate=True) asked for, once the worker passed it to the pool
    terminate_signum: int | None = None

    def wire(self) -> tuple[Any, ...]:
        """What crosses to a child process (no delivery, no envelope)."""
        return (
            self.id,
            self.task_name,
            self.request,
            self.args,
            self.kwargs,
            self.time_limit_s,
            self.soft_time_limit_s,
        )


def run_job(
    app: Celery,
    task_name: str,
    request: dict[str, Any],
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    begin: Callable[[], None] | None = None,
    end: Callable[[], None] | None = None,
) -> Outcome:
    """Run one job in this process (every pool ends up here): the last safety net.

    Never raises except ``ColdShutdown``: an exception escaping the tracer (or the task lookup)
    becomes a FAILURE outcome (REVOKED for ``Terminated``). ``begin`` runs first and ``end``
    last, both inside the net, so a pool arms its time limits in ``begin`` and disarms them in
    ``end``: an interruption landing anywhere between is caught here. ``end`` must be
    idempotent: it is called again when an interruption cut its first call short. One landing
    in ``end`` after the job finished leaves the job's own outcome as it was.
    """
    started = time.perf_counter()
    outcome: Outcome | None = None
    try:
        try:
            if begin is not None:
                begin()
            outcome = trace_task(app._tasks[task_name], Context(**request), args, kwargs)
        finally:
            if end is not None:
                end()
    except ColdShutdown:
        raise
    except BaseException as exc:
        if end is not None:
            end()
        if outcome is None:  # else it landed in end(), after the job: the job's outcome stands
            outcome = failure_outcome(app, task_name, request, exc, time.perf_counter() - started)
    return outcome


class Pool(abc.ABC):
    """Runs jobs. ``limit`` is how many run at once: the pool's size, at least 1.

    A pool that can change size (prefork, threads) sets :attr:`fixed_size` to None and
    overrides :meth:`grow` and :meth:`shrink`; both are called from the worker's main loop
    only, like every other method here except :meth:`info` and :meth:`running`.
    """

    #: name shown in the banner
    name = "base"
    #: True when apply() runs the job before returning (solo)
    runs_inline = False
    #: why the pool cannot change size, worded to follow "the <name> pool" (None: it can)
    fixed_size: str | None = "has a fixed size"
    #: True when the pool replaces a process over ``max_memory_per_child`` (prefork)
    checks_memory = False

    def __init__(self, app: Celery, limit: int, *, max_tasks_per_child: int | None = None,
                 max_memory_per_child: int | None = None) -> None:
        """``max_memory_per_child`` is in KiB (Celery's unit); pools that cannot act on it
        warn once here."""
        self.app = app
        self.limit = max(1, limit)
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child
        if max_memory_per_child and not self.checks_memory:
            logger.warning("worker: --max-memory-per-child does not apply to the %s pool "
                           "(its tasks run in the worker's own process); ignored", self.name)

    @classmethod
    def resize_error(cls, verb: str) -> str:
        """The one-line reason this pool cannot ``verb`` ("grow", "shrink")."""
        return f"the {cls.name} pool {cls.fixed_size or 'can change size'} and cannot {verb}"

    def grow(self, n: int) -> int:
        """Add ``n`` processes/threads at once; returns the new size."""
        raise NotImplementedError(self.resize_error("grow"))

    def shrink(self, n: int) -> int:
        """Remove ``n`` processes/threads, never below 1: idle ones go at once, busy ones after
        their task (a running task is never stopped); returns the new size (what
        :attr:`limit` and :meth:`free_slots` count from now on)."""
        raise NotImplementedError(self.resize_error("shrink"))

    @abc.abstractmethod
    def start(self) -> None:
        """Prepare workers (threads/processes)."""

    @abc.abstractmethod
    def apply(self, job: Job) -> None:
        """Start ``job`` now; only called while :meth:`free_slots` is positive."""

    def apply_many(self, jobs: Sequence[Job]) -> None:
        """Start ``jobs``, in order (never more than :meth:`free_slots` allowed). A pool that
        hands work over in batches (prefork: one pipe write per child) overrides this."""
        for job in jobs:
            self.apply(job)

    @abc.abstractmethod
    def poll(self, timeout_s: float) -> list[tuple[Job, Outcome]]:
        """Finished jobs, waiting up to ``timeout_s`` for the first one."""

    @abc.abstractmethod
    def stop(self, wait: bool) -> None:
        """Stop: ``wait=True`` lets running jobs finish (warm), False kills them (cold)."""

    @abc.abstractmethod
    def free_slots(self) -> int:
        """How many more jobs :meth:`apply` may take right now."""

    @abc.abstractmethod
    def terminate(self, job_id: int, signum: int) -> bool:
        """Stop the running job ``job_id`` (``revoke(terminate=True, signal=signum)``).

        Returns True when the job is running here and the stop was started, False otherwise
        (not applied, already finished, or already being terminated). Its outcome, REVOKED
        with ``TaskRevokedError('terminated')``, comes later from :meth:`poll` like any other,
        unless the job finished first (then its own outcome stands). Never raises.
        """

    def take_back(self) -> list[Job]:
        """Jobs applied here that the pool gives back without having begun them (prefork: jobs
        queued in a child behind a task that turned out long); the executor reserves them
        again. Main loop only. None by default."""
        return []

    def maintain(self) -> None:
        """Housekeeping the worker's main loop calls while it resizes or autoscales the pool,
        busy or idle (prefork: reap children that exited). Nothing to do by default."""
        return None

    def running(self) -> list[Job]:
        return []

    def info(self) -> dict[str, Any]:
        return {"implementation": self.name, "max-concurrency": self.limit}


def monotonic() -> float:
    return time.monotonic()
