"""Task events (Celery's ``task-*`` events), sent from the middleware hooks.

Rules:

- worker hooks are in the stack only while the worker of this process sends task events
  (``app.events.task_dispatcher`` is set: ``worker -E``, ``worker_send_task_events``,
  ``enable_events``), so a worker with events off pays nothing; they only buffer events, which
  the worker broadcasts in batches: after an executor flush once 500 events wait or the
  oldest waited 0.2 s (``EventDispatcher.due``), and at least every 0.5 s (its events thread);
- ``task-received``: the message was read and validated (``after_receive``);
- ``task-started``: the job is handed to the pool (``before_process``), the moment Celery's
  prefork pool reports too; for prefork and threads the task starts an instant later;
- ``task-succeeded`` / ``task-failed`` / ``task-retried`` / ``task-rejected`` / ``task-revoked``
  (``terminated=True``, a terminate): by the outcome's state in ``after_process``, which sees
  every outcome once, including those of jobs whose process died (``task-failed`` with
  ``WorkerLostError``); an ignored task (``Ignore``) sends nothing after ``task-started``;
- ``task-revoked`` with ``expired`` for a message discarded before it ran (``after_discard``);
- ``task-sent``: in the sending process after the broker has the message, when
  ``task_send_sent_event`` is set; it is broadcast at once (one broadcast per message sent).
  A failure to send it is logged, never raised to the caller.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.message import Envelope
from celeriac.middleware.base import Middleware
from celeriac.protocol import decode_task_message
from celeriac.result_meta import safe_repr

if TYPE_CHECKING:
    from celeriac.events import EventDispatcher
    from celeriac.protocol import TaskMessage
    from celeriac.trace import Outcome

logger = logging.getLogger("celeriac.events")

_PUBLISH_HOOKS = frozenset({"before_publish", "after_publish"})
#: longest ``args``/``kwargs`` repr an event carries (Celery's ``argsrepr`` limit)
REPR_MAX_CHARS = 1024


def _reprs(argsrepr: Any, kwargsrepr: Any, args: Any, kwargs: Any) -> tuple[str, str]:
    """Celery's event ``args``/``kwargs``: the message's reprs, else reprs of the values."""
    if not isinstance(argsrepr, str):
        argsrepr = safe_repr(args, REPR_MAX_CHARS)
    if not isinstance(kwargsrepr, str):
        kwargsrepr = safe_repr(kwargs, REPR_MAX_CHARS)
    return argsrepr, kwargsrepr


class EventsMiddleware(Middleware):
    """Sends Celery's task events (see the module rules). Made with its app."""

    def __init__(self, app: Any = None) -> None:
        self.app = app
        #: the worker's task-event dispatcher, read whenever the stack is built (it is built
        #: again when events are switched on or off), so the hooks need no lookup per task
        self._task_dispatcher: EventDispatcher | None = None

    def enabled(self, hook: str) -> bool:
        app = self.app
        if app is None:
            return False
        if hook in _PUBLISH_HOOKS:
            return bool(app.conf.task_send_sent_event)
        self._task_dispatcher = app.events.task_dispatcher
        return self._task_dispatcher is not None

    def _dispatcher(self, executor: Any) -> EventDispatcher | None:
        return self._task_dispatcher

    # -- the sending process -------------------------------------------------------------------
    def after_publish(self, app: Any, queue: str, envelope: Envelope) -> None:
        try:
            message = decode_task_message(envelope, None)
        except Exception as exc:  # events never fail a send
            logger.debug("events: no task-sent for an unreadable message: %s", exc)
            return
        args, kwargs = _reprs(message.argsrepr, message.kwargsrepr, message.args,
                              message.kwargs)
        try:
            app.events.sent_dispatcher.send(
                "task-sent", flush=True, uuid=message.id, name=message.name, args=args,
                kwargs=kwargs, retries=message.retries, eta=message.eta,
                expires=message.expires, queue=queue, exchange="", routing_key=queue,
                root_id=message.root_id, parent_id=message.parent_id,
            )
        except Exception as exc:  # events never fail a send
            logger.warning("events: could not send task-sent for %s: %s", message.id, exc)

    # -- the worker ----------------------------------------------------------------------------
    def after_receive(self, executor: Any, job: Any) -> None:
        dispatcher = self._task_dispatcher
        if dispatcher is None:
            return
        request = job.request
        args, kwargs = request.get("argsrepr"), request.get("kwargsrepr")
        if args.__class__ is not str or kwargs.__class__ is not str:
            args, kwargs = _reprs(args, kwargs, job.args, job.kwargs)
        dispatcher.send(
            "task-received", uuid=request["id"], name=job.task_name, args=args, kwargs=kwargs,
            root_id=request.get("root_id"), parent_id=request.get("parent_id"),
            retries=request.get("retries") or 0, eta=request.get("eta"),
            expires=request.get("expires"),
        )

    def before_process(self, executor: Any, job: Any) -> None:
        dispatcher = self._task_dispatcher
        if dispatcher is not None:
            dispatcher.send("task-started", uuid=job.request["id"])

    def after_process(self, executor: Any, job: Any, outcome: Outcome) -> None:
        dispatcher = self._task_dispatcher
        if dispatcher is None:
            return
        uuid = job.request["id"]
        state = outcome.state
        if state == states.SUCCESS:
            dispatcher.send("task-succeeded", uuid=uuid, result=outcome.summary,
                            runtime=outcome.runtime_s)
        elif state == states.FAILURE:
            dispatcher.send("task-failed", uuid=uuid, exception=outcome.summary,
                            traceback=outcome.traceback or "")
        elif state == states.RETRY:
            dispatcher.send("task-retried", uuid=uuid, exception=outcome.summary,
                            traceback=outcome.traceback or "")
        elif state == states.REJECTED:
            dispatcher.send("task-rejected", uuid=uuid, requeue=bool(outcome.reject_requeue))
        elif state == states.REVOKED:
            dispatcher.send("task-revoked", uuid=uuid, terminated=True,
                            signum=job.terminate_signum, expired=False)

    def after_discard(self, executor: Any, message: TaskMessage, why: str) -> None:
        dispatcher = self._dispatcher(executor)
        if dispatcher is not None:
            dispatcher.send("task-revoked", uuid=message.id, name=message.name,
                            terminated=False, signum=None, expired=why == "expired")

    def after_settle(self, executor: Any, stored: int, acked: int) -> None:
        dispatcher = self._task_dispatcher
        # the count first: due() reads the clock
        if dispatcher is not None and dispatcher._buffer and dispatcher.due():
            # Here, not in the events thread: handing batches over costs more CPU in thread
            # switches than the broadcast's round trip costs the loop (bench/events.py).
            dispatcher.flush()
