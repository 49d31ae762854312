"""Celery's task signals, sent from the middleware hooks (the built-in first in every stack).

The stack calls a hook only while its signal has receivers (``enabled``; the stack is rebuilt
when a receiver connects or disconnects), so a worker nobody listens to pays nothing. Worker
lifecycle: ``worker_boot`` sends ``worker_ready`` and ``worker_shutdown`` sends
``worker_shutdown``; ``worker_init`` is sent by the worker itself, before its pool exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import signals, states
from celeriac.message import Envelope
from celeriac.middleware.base import Middleware
from celeriac.task import Context

if TYPE_CHECKING:
    from celeriac._utils.einfo import ExceptionInfo
    from celeriac.protocol import TaskMessage
    from celeriac.task import Task
    from celeriac.trace import Outcome


#: the signal each hook sends (a hook runs only while its signal has receivers)
_SIGNAL_OF = {
    "before_publish": signals.before_task_publish,
    "after_publish": signals.after_task_publish,
    "worker_boot": signals.worker_ready,
    "worker_shutdown": signals.worker_shutdown,
    "after_receive": signals.task_received,
    "after_discard": signals.task_revoked,
    "after_process": signals.task_revoked,
    "before_task": signals.task_prerun,
    "on_task_success": signals.task_success,
    "on_task_retry": signals.task_retry,
    "on_task_failure": signals.task_failure,
    "on_task_rejected": signals.task_rejected,
    "after_task": signals.task_postrun,
}


class SignalsMiddleware(Middleware):
    """Sends ``before_task_publish`` ... ``task_postrun`` where Celery sends them."""

    def enabled(self, hook: str) -> bool:
        signal = _SIGNAL_OF.get(hook)
        return signal is None or bool(signal._receivers)

    def before_publish(self, app: Any, queue: str, envelope: Envelope) -> None:
        if signals.before_task_publish._receivers:
            signals.before_task_publish.send(
                sender=envelope.task_name,
                body=envelope.body,
                exchange="",
                routing_key=queue,
                headers=envelope.headers,
                properties=envelope.properties,
                declare=[],
                retry_policy=None,
            )

    def after_publish(self, app: Any, queue: str, envelope: Envelope) -> None:
        if signals.after_task_publish._receivers:
            signals.after_task_publish.send(
                sender=envelope.task_name,
                body=envelope.body,
                headers=envelope.headers,
                exchange="",
                routing_key=queue,
            )

    def worker_boot(self, worker: Any) -> None:
        signals.worker_ready.send(sender=worker)

    def worker_shutdown(self, worker: Any) -> None:
        signals.worker_shutdown.send(sender=worker)

    def after_receive(self, executor: Any, job: Any) -> None:
        if signals.task_received._receivers:
            signals.task_received.send(sender=executor, request=Context(**job.request))

    def after_discard(self, executor: Any, message: TaskMessage, why: str) -> None:
        if signals.task_revoked._receivers:
            signals.task_revoked.send(
                sender=executor, request=None, terminated=False, signum=None,
                expired=why == "expired",
            )

    def after_process(self, executor: Any, job: Any, outcome: Outcome) -> None:
        if outcome.state == states.REVOKED and signals.task_revoked._receivers:
            signals.task_revoked.send(
                sender=executor, request=Context(**job.request), terminated=True,
                signum=job.terminate_signum, expired=False,
            )

    def before_task(
        self, task: Task, request: Context, args: Sequence[Any], kwargs: dict[str, Any]
    ) -> None:
        if signals.task_prerun._receivers:
            signals.task_prerun.send(
                sender=task, task_id=request.id or "", task=task, args=args, kwargs=kwargs
            )

    def on_task_success(self, task: Task, request: Context, retval: Any) -> None:
        if signals.task_success._receivers:
            signals.task_success.send(sender=task, result=retval)

    def on_task_retry(
        self, task: Task, request: Context, reason: BaseException, einfo: ExceptionInfo
    ) -> None:
        if signals.task_retry._receivers:
            signals.task_retry.send(sender=task, request=request, reason=reason, einfo=einfo)

    def on_task_failure(
        self,
        task: Task,
        request: Context,
        exc: BaseException,
        einfo: ExceptionInfo,
        args: Sequence[Any],
        kwargs: dict[str, Any],
    ) -> None:
        if signals.task_failure._receivers:
            signals.task_failure.send(
                sender=task, task_id=request.id or "", exception=exc, args=args, kwargs=kwargs,
                traceback=exc.__traceback__, einfo=einfo,
            )

    def on_task_rejected(self, task: Task, request: Context, exc: BaseException) -> None:
        if signals.task_rejected._receivers:
            signals.task_rejected.send(sender=task, message=None, exc=exc)

    def after_task(
        self,
        task: Task,
        request: Context,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        state: str,
        retval: Any,
    ) -> None:
        if signals.task_postrun._receivers:
            signals.task_postrun.send(
                sender=task, task_id=request.id or "", task=task, args=args, kwargs=kwargs,
                retval=retval, state=state,
            )
