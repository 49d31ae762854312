"""Workflow continuation (chains, chords, link/link_error) as a middleware.

Where the task ran, ``conclude`` plans what follows it (:func:`celeriac.workflow.plan`: no
I/O) and returns the plan as effects, which the executor stores, counts and publishes in its
batched flush. A job that ended outside the tracer (its process died, a hard time limit, a
terminate) has no plan from its process: ``after_lost`` plans it in the worker, from its
request. A message discarded as revoked or expired stops its chain and counts its chord
member (``after_discard``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celeriac import states, workflow
from celeriac.effects import Effects
from celeriac.exceptions import TaskRevokedError, WorkerLostError
from celeriac.middleware.base import Middleware
from celeriac.protocol import TaskMessage, request_fields
from celeriac.task import Context

if TYPE_CHECKING:
    from celeriac.task import Task
    from celeriac.trace import Outcome

logger = logging.getLogger("celeriac.workflow")


def in_workflow(request: Any) -> bool:
    """Whether a request (a Context or its fields) carries a workflow to continue."""
    get = request.get
    return bool(get("chain") or get("chord") or get("callbacks") or get("errbacks"))


class ContinuationMiddleware(Middleware):
    """Continues chains, chords and linked calls after each workflow task."""

    def conclude(self, task: Task, request: Context, outcome: Outcome) -> Effects | None:
        # Attribute reads, not in_workflow(): this runs after every task.
        if request.is_eager or not (
            request.chain or request.chord or request.callbacks or request.errbacks
        ):
            return None
        try:
            return workflow.plan(task.app, request, outcome.state, outcome.retval,
                                 outcome.traceback)
        except Exception:
            logger.exception("Task %s[%s]: cannot continue its workflow", request.task,
                             request.id)
            return None

    def after_lost(self, executor: Any, job: Any, outcome: Outcome) -> None:
        if outcome.payload is not None and in_workflow(job.request):
            exc = outcome.retval if isinstance(outcome.retval, BaseException) else (
                TaskRevokedError("terminated") if outcome.state == states.REVOKED
                else WorkerLostError(outcome.summary)
            )
            request = Context(**job.request)
            try:
                effects = workflow.plan(executor.app, request, outcome.state, exc,
                                        outcome.traceback)
            except Exception:
                logger.exception("Task %s[%s]: cannot settle its workflow", job.task_name,
                                 request.id)
                return
            executor.add_effects(effects)

    def after_discard(self, executor: Any, message: TaskMessage, why: str) -> None:
        if not (message.chain or message.chord):
            return
        request = Context(**request_fields(message, queue="", redelivered=False,
                                           hostname=executor.hostname))
        try:
            effects = workflow.plan(executor.app, request, states.REVOKED,
                                    TaskRevokedError(why), None)
        except Exception:
            logger.exception("Task %s[%s]: cannot settle its workflow", message.name,
                             message.id)
            return
        executor.add_effects(effects)
