"""The pool contract: where task calls run (solo, threads, prefork, later asyncio).

A pool takes :class:`Job` objects and hands back ``(job, outcome)`` pairs. The executor owns
acking and result storage; a pool only runs code and reports, including the outcome of a job
whose process died (``WorkerLostError``) or overran its hard time limit.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celeriac.message import Delivery
from celeriac.trace import Outcome, trace_task

if TYPE_CHECKING:
    from celeriac.app.base import Celery


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
    #: acked ahead of its start (early ack in batches): nothing to settle at start
    acked: bool = False

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
    app: Celery, task_name: str, request: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
) -> Outcome:
    """Run one job in this process (every pool ends up here)."""
    from celeriac.task import Context

    task = app._tasks[task_name]
    return trace_task(task, Context(**request), args, kwargs)


class Pool(abc.ABC):
    """Runs jobs. ``limit`` is how many run at once."""

    #: name shown in the banner
    name = "base"
    #: True when apply() runs the job before returning (solo)
    runs_inline = False

    def __init__(self, app: Celery, limit: int, *, max_tasks_per_child: int | None = None) -> None:
        self.app = app
        self.limit = max(1, limit)
        self.max_tasks_per_child = max_tasks_per_child

    @abc.abstractmethod
    def start(self) -> None:
        """Prepare workers (threads/processes)."""

    @abc.abstractmethod
    def apply(self, job: Job) -> None:
        """Start ``job`` now; only called while :meth:`free_slots` is positive."""

    @abc.abstractmethod
    def poll(self, timeout_s: float) -> list[tuple[Job, Outcome]]:
        """Finished jobs, waiting up to ``timeout_s`` for the first one."""

    @abc.abstractmethod
    def stop(self, wait: bool) -> None:
        """Stop: ``wait=True`` lets running jobs finish (warm), False kills them (cold)."""

    @abc.abstractmethod
    def free_slots(self) -> int:
        """How many more jobs :meth:`apply` may take right now."""

    def running(self) -> list[Job]:
        return []

    def info(self) -> dict[str, Any]:
        return {"implementation": self.name, "max-concurrency": self.limit}


def monotonic() -> float:
    return time.monotonic()
