"""Running one task call: hooks, signals, states, and the outcome to store.

The tracer never talks to a broker and never stores results itself: it returns an
:class:`Outcome` holding the encoded result record, and its caller (the worker's executor, or
``apply()``) decides when to store it, so a worker can store a batch in one round trip.

The runner's safety net (rules every pool relies on):

- In a worker, :func:`trace_task` never raises. Whatever escapes the task, its hooks
  (before_start, on_success, on_failure, on_retry, after_return), signal handlers, the reprs of
  its values, result encoding, or a time limit landing anywhere in here, becomes the outcome:
  a FAILURE with a safe summary and a stored FAILURE record (ignore_result rules apply), or
  REVOKED for :class:`~celeriac.exceptions.Terminated`. The one exception let through is
  :class:`~celeriac.exceptions.ColdShutdown`, which the worker raises to stop a solo task.
- ``SystemExit`` and ``KeyboardInterrupt`` raised by a task are failures like any other error.
  The record keeps their type name (``"SystemExit"``, as Celery writes it), and readers never
  rebuild a BaseException-only type (see :mod:`celeriac.result_meta`), so ``get()`` raises an
  ordinary Exception named ``SystemExit`` instead of exiting the caller.
- Eager runs (``apply()``) happen in the caller's own thread, so there BaseException-only
  exceptions (a Ctrl-C, ``sys.exit()``) propagate to the caller as they would from any call.
- The outcome's state is the stored state: a result the serializer cannot encode gives a
  FAILURE outcome holding the EncodeError that was stored (never a "succeeded" log line).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from celeriac import _state, signals, states, workflow
from celeriac._utils.einfo import ExceptionInfo, format_traceback
from celeriac.exceptions import (
    ColdShutdown,
    Ignore,
    Reject,
    Retry,
    TaskRevokedError,
    Terminated,
)
from celeriac.result import EagerResult
from celeriac.result_meta import build_meta, encode_meta, encode_meta_checked, safe_repr
from celeriac.task import Context

if TYPE_CHECKING:
    from celeriac.app.base import Celery
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
    #: made by :func:`failure_outcome`: the job ended outside the tracer (a lost or killed
    #: process, a hard time limit, a terminate, an escaped exception), so nothing has
    #: continued its workflow (chain, chord, callbacks) yet
    ended_outside: bool = False

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
            self.ended_outside,
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

_STORED_STATES = frozenset({states.SUCCESS, states.FAILURE, states.RETRY})
#: the reason stored for a task stopped by revoke(terminate=True), as Celery stores it
TERMINATED_REASON = "terminated"


@dataclass(slots=True)
class _Run:
    """What :func:`_run` found, before the workflow step and the summary."""

    state: str
    retval: Any
    runtime_s: float
    einfo: ExceptionInfo | None = None
    payload: bytes | None = None
    reject_requeue: bool | None = None
    traceback: str | None = None


def _keeps_record(task: Task | None, request: Any, state: str) -> bool:
    """The ignore_result rule: with ignore_result, only failures are stored, and only with
    store_errors_even_if_ignored."""
    ignored = bool(getattr(request, "ignore_result", False)) or bool(
        getattr(task, "ignore_result", False)
    )
    if not ignored:
        return True
    return state in (states.FAILURE, states.REVOKED) and bool(
        getattr(task, "store_errors_even_if_ignored", False)
    )


def trace_task(
    task: Task,
    request: Context,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    eager: bool = False,
    store_result: bool = True,
) -> Outcome:
    """Run ``task`` with ``request`` and return the outcome (see the module's safety rules:
    in a worker this never raises except ColdShutdown)."""
    started = time.perf_counter()
    try:
        run = _run(task, request, args, kwargs, eager, store_result, started)
    except ColdShutdown:
        raise
    except BaseException as exc:
        if eager and not isinstance(exc, Exception):
            raise
        run = _escaped(task, request, exc, store_result, started)
    try:
        if not eager and (request.chain or request.chord or request.callbacks or request.errbacks):
            # Part of a workflow: store now, then publish what follows (the last chord member
            # must see every header result already stored).
            run.payload = workflow.after_run(
                task.app, request, run.state, run.retval, run.payload, run.traceback
            )
        retval = run.retval
        is_exc = isinstance(retval, BaseException)
        return Outcome(
            state=run.state,
            retval=retval,
            summary=_summary(retval, task.resultrepr_maxsize),
            runtime_s=run.runtime_s,
            payload=run.payload,
            traceback=run.traceback,
            reject_requeue=run.reject_requeue,
            exc_type=type(retval).__name__ if is_exc else None,
        )
    except ColdShutdown:
        raise
    except BaseException as exc:  # a time limit landing after the run: the last net
        if eager and not isinstance(exc, Exception):
            raise
        return _ended(task.app, task, request, exc, time.perf_counter() - started,
                      store=store_result)


def _summary(value: Any, max_chars: int) -> str:
    if isinstance(value, Retry):
        try:
            return str(value)
        except ColdShutdown:
            raise
        except BaseException:
            return "Retry"
    return safe_repr(value, max_chars)


def _run(
    task: Task,
    request: Context,
    args: list[Any],
    kwargs: dict[str, Any],
    eager: bool,
    store_result: bool,
    started: float,
) -> _Run:
    """The task call with its hooks and signals; may raise anything (trace_task catches)."""
    app = task.app
    task_id = request.id or ""
    run_signals = bool(signals.task_prerun._receivers or signals.task_postrun._receivers)
    if run_signals:
        signals.task_prerun.send(sender=task, task_id=task_id, task=task, args=args, kwargs=kwargs)
    stack = task.request_stack
    stack.append(request)
    _state.push_task(task)
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
        if not eager and track_started and not (task.ignore_result or request.ignore_result):
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
        except (ColdShutdown, Terminated):
            raise  # not the task's own failure: trace_task decides
        except BaseException as exc:
            if eager and not isinstance(exc, Exception):
                raise
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
        if store_result and state in _STORED_STATES and _keeps_record(task, request, state):
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
            payload, encode_error = encode_meta_checked(meta, settings.result_serializer)
            if encode_error is not None:  # what was stored is a FAILURE: say so
                state, retval, einfo = states.FAILURE, encode_error, None
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
    return _Run(state, retval, runtime_s, einfo, payload, reject_requeue,
                einfo.traceback if einfo else None)


def _escaped(
    task: Task, request: Context, exc: BaseException, store_result: bool, started: float
) -> _Run:
    """The run of a task whose call ended by ``exc`` escaping :func:`_run`."""
    outcome = _ended(task.app, task, request, exc, time.perf_counter() - started,
                     store=store_result)
    return _Run(outcome.state, outcome.retval, outcome.runtime_s, None, outcome.payload,
                None, outcome.traceback)


def failure_outcome(
    app: Celery,
    task_name: str,
    request: Mapping[str, Any] | Context,
    exc: BaseException,
    runtime_s: float,
    *,
    store: bool = True,
) -> Outcome:
    """The outcome of a job ended by ``exc`` outside the task's own handling: an exception
    that escaped the tracer, a lost or killed process, a hard time limit, a terminate.

    :class:`Terminated` gives REVOKED with ``TaskRevokedError('terminated')`` (Celery's
    record); anything else FAILURE with ``exc``. The record is built unless ``store`` is False
    or the ignore_result rule says not to. Never raises except ColdShutdown: a record or
    summary that cannot be built falls back to one made of the type name alone.
    """
    view: Any = SimpleNamespace(**request) if isinstance(request, Mapping) else request
    return _ended(app, app._tasks.get(task_name), view, exc, runtime_s, store=store)


def _ended(
    app: Celery, task: Task | None, view: Any, exc: BaseException, runtime_s: float, *,
    store: bool,
) -> Outcome:
    revoked = isinstance(exc, Terminated)
    state = states.REVOKED if revoked else states.FAILURE
    stored: BaseException = TaskRevokedError(TERMINATED_REASON) if revoked else exc
    traceback = None if revoked else _traceback_of(exc)
    payload: bytes | None = None
    task_id = str(getattr(view, "id", None) or "")
    if store and task_id and _keeps_record(task, view, state):
        try:
            meta = build_meta(task_id, state, stored, traceback=traceback, request=view,
                              extended=bool(app.conf.result_extended),
                              worker=getattr(view, "hostname", None))
            payload = encode_meta(meta, app.conf.result_serializer)
        except ColdShutdown:
            raise
        except BaseException:  # the exception or the request defeats the record: bare one
            payload = _bare_record(app, task_id, state, stored)
    return Outcome(state, stored, safe_repr(stored, 1024), runtime_s, payload, traceback, None,
                   type(stored).__name__, ended_outside=True)


def _traceback_of(exc: BaseException) -> str:
    try:
        return format_traceback(exc)
    except ColdShutdown:
        raise
    except BaseException:  # a __str__ raising SystemExit defeats even the stdlib's guard
        return f"{type(exc).__name__} (traceback could not be formatted)\n"


def _bare_record(app: Celery, task_id: str, state: str, exc: BaseException) -> bytes | None:
    cls = type(exc)
    meta = build_meta(task_id, state, None)
    meta["result"] = {"exc_type": cls.__qualname__, "exc_message": [],
                      "exc_module": cls.__module__}
    try:
        return encode_meta(meta, app.conf.result_serializer)
    except ColdShutdown:
        raise
    except BaseException:
        return None


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
