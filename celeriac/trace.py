"""Running one task call: hooks, signals, states, and the outcome to store.

The tracer never talks to a broker and never stores results itself: it returns an
:class:`Outcome` holding the encoded result record, and its caller (the worker's executor, or
``apply()``) decides when to store it, so a worker can store a batch in one round trip.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac import _state, signals, states, workflow
from celeriac._utils.einfo import ExceptionInfo
from celeriac._utils.text import saferepr
from celeriac.exceptions import Ignore, Reject, Retry
from celeriac.result import EagerResult
from celeriac.result_meta import build_meta, encode_meta
from celeriac.task import Context

if TYPE_CHECKING:
    from celeriac.task import Task


@dataclass(slots=True)
class Outcome:
    """What happened to one task call."""

    state: str
    #: the return value or exception; dropped before crossing a process boundary
    retval: Any
    #: short text for logs: repr of the return value, or of the exception
    summary: str
    runtime_s: float
    #: encoded result record to store, or None when nothing is to be stored
    payload: bytes | None = None
    traceback: str | None = None
    #: set when the task raised Reject: whether to requeue the message
    reject_requeue: bool | None = None
    #: exception type name, for failure log lines
    exc_type: str | None = None

    def portable(self) -> Outcome:
        """A copy safe to pickle across a process boundary."""
        return Outcome(
            self.state,
            None,
            self.summary,
            self.runtime_s,
            self.payload,
            self.traceback,
            self.reject_requeue,
            self.exc_type,
        )


def _call(task: Task, request: Context, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if type(task).__call__ is not _base_call:
        request.in_trace = True
        return task(*args, **kwargs)
    return task.run(*args, **kwargs)


def _base_call_of() -> Any:
    from celeriac.task import Task

    return Task.__call__


_base_call = _base_call_of()


def trace_task(
    task: Task,
    request: Context,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    eager: bool = False,
    store_result: bool = True,
) -> Outcome:
    """Run ``task`` with ``request`` and return the outcome (never raises for task errors)."""
    app = task.app
    task_id = request.id or ""
    ignore_result = task.ignore_result or bool(request.ignore_result)
    run_signals = bool(signals.task_prerun._receivers or signals.task_postrun._receivers)
    if run_signals:
        signals.task_prerun.send(sender=task, task_id=task_id, task=task, args=args, kwargs=kwargs)
    stack = task.request_stack
    stack.append(request)
    _state.push_task(task)
    started = time.perf_counter()
    einfo: ExceptionInfo | None = None
    reject_requeue: bool | None = None
    state: str = states.PENDING
    retval: Any = None
    runtime_s = 0.0
    payload: bytes | None = None
    try:
        settings = app.trace_settings()
        track_started = task.track_started
        if track_started is None:
            track_started = settings.track_started
        if not eager and track_started and not ignore_result:
            app.store_result(
                task_id,
                {"pid": _pid(), "hostname": request.hostname},
                states.STARTED,
                request=request,
            )
        task.before_start(task_id, args, kwargs)
        try:
            retval = _call(task, request, args, kwargs)
            state = states.SUCCESS
        except Retry as exc:
            state = states.RETRY
            reason = exc.exc if isinstance(exc.exc, BaseException) else exc
            retval = exc
            einfo = ExceptionInfo(reason)
            task.on_retry(reason, task_id, args, kwargs, einfo)
            signals.task_retry.send(sender=task, request=request, reason=reason, einfo=einfo)
        except Ignore as exc:
            state = states.IGNORED
            retval = exc
        except Reject as exc:
            state = states.REJECTED
            retval = exc
            reject_requeue = exc.requeue
            signals.task_rejected.send(sender=task, message=None, exc=exc)
        except Exception as exc:
            state = states.FAILURE
            retval = exc
            einfo = ExceptionInfo(exc)
            task.on_failure(exc, task_id, args, kwargs, einfo)
            signals.task_failure.send(
                sender=task,
                task_id=task_id,
                exception=exc,
                args=args,
                kwargs=kwargs,
                traceback=exc.__traceback__,
                einfo=einfo,
            )
        else:
            task.on_success(retval, task_id, args, kwargs)
            if signals.task_success._receivers:
                signals.task_success.send(sender=task, result=retval)
        runtime_s = time.perf_counter() - started
        if (
            store_result
            and state in _STORED_STATES
            and not (
                ignore_result
                and not (state == states.FAILURE and task.store_errors_even_if_ignored)
            )
        ):
            stored_value = retval.exc if isinstance(retval, Retry) and retval.exc else retval
            if isinstance(stored_value, Retry) and stored_value.exc is None:
                stored_value = str(stored_value)
            meta = build_meta(
                task_id,
                state,
                stored_value,
                traceback=einfo.traceback if einfo and state == states.FAILURE else None,
                request=request,
                extended=settings.result_extended,
                worker=request.hostname,
            )
            payload = encode_meta(meta, settings.result_serializer)
        task.after_return(state, retval, task_id, args, kwargs, einfo)
    finally:
        stack.pop()
        _state.pop_task()
        if run_signals:
            signals.task_postrun.send(
                sender=task,
                task_id=task_id,
                task=task,
                args=args,
                kwargs=kwargs,
                retval=retval,
                state=state,
            )
    if not eager and (request.chain or request.chord or request.callbacks or request.errbacks):
        # Part of a workflow: store now, then publish what follows (the last chord member
        # must see every header result already stored).
        payload = workflow.after_run(
            app, request, state, retval, payload, einfo.traceback if einfo else None
        )
    is_exc = isinstance(retval, BaseException)
    return Outcome(
        state=state,
        retval=retval,
        summary=str(retval)
        if isinstance(retval, Retry)
        else saferepr(retval, task.resultrepr_maxsize),
        runtime_s=runtime_s,
        payload=payload,
        traceback=einfo.traceback if einfo else None,
        reject_requeue=reject_requeue,
        exc_type=type(retval).__name__ if is_exc else None,
    )


_STORED_STATES = frozenset({states.SUCCESS, states.FAILURE, states.RETRY})


def _pid() -> int:
    import os

    return os.getpid()


def apply_eagerly(
    task: Task,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    task_id: str | None,
    retries: int,
    throw: bool | None,
    link: Any,
    link_error: Any,
    options: dict[str, Any],
) -> EagerResult:
    """Run ``task`` in this process (``apply()``), following eager retries like Celery."""
    app = task.app
    task_id = task_id or str(uuid.uuid4())
    if throw is None:
        throw = bool(app.conf.task_eager_propagates)
    parent = _state.current_task()
    parent_request = parent.request if parent is not None else None
    app.check_arguments(task, args, kwargs)
    while True:
        request = Context(
            id=task_id,
            task=task.name,
            args=args,
            kwargs=kwargs,
            retries=retries,
            is_eager=True,
            called_directly=False,
            root_id=parent_request.root_id if parent_request else task_id,
            parent_id=parent_request.id if parent_request else None,
            delivery_info={"is_eager": True, "routing_key": options.get("queue")},
            callbacks=link,
            errbacks=link_error,
            ignore_result=options.get("ignore_result", False),
            headers=options.get("headers"),
            hostname=app.hostname,
        )
        outcome = trace_task(
            task,
            request,
            args,
            kwargs,
            eager=True,
            store_result=bool(app.conf.task_store_eager_result),
        )
        if outcome.payload is not None:
            app.backend.store(task_id, outcome.state, outcome.payload, app.result_expires_s)
        if outcome.state == states.RETRY and isinstance(outcome.retval, Retry):
            sig = outcome.retval.sig
            if sig is not None:
                args, kwargs = list(sig[0]), dict(sig[1])
            retries += 1
            continue
        break
    retval = outcome.retval
    if outcome.state == states.FAILURE and throw:
        raise retval
    app.run_eager_callbacks(
        outcome.state, retval, link, link_error, task_id,
        request=request, traceback=outcome.traceback,
    )
    return EagerResult(task_id, retval, outcome.state, outcome.traceback, name=task.name, app=app)
