"""Running one task call: prepare -> call -> conclude, with hooks and the record to store.

The tracer does no I/O: it never talks to a broker and never stores. It returns an
:class:`Outcome` holding the encoded result record and, for a workflow task, the
:class:`~celeriac.effects.Effects` the middleware planned (the chain's next message, records
of steps that will never run, chord members to count); its caller (the worker's executor, or
``apply()``) stores and publishes them, so a worker does both in batched round trips.

The three steps are separate so that every call path shares them: :func:`trace_task` calls
the task synchronously between :func:`prepare` and :func:`conclude`, and
:func:`trace_task_async` awaits a coroutine there (an ``async def`` task), with the same
hooks, states and records.

The runner's safety net (rules every pool relies on):

- In a worker, :func:`trace_task` never raises. Whatever escapes the task, its hooks
  (before_start, on_success, on_failure, on_retry, after_return), middleware hooks and signal
  handlers, the reprs of its values, result encoding, or a time limit landing anywhere in
  here, becomes the outcome: a FAILURE with a safe summary and a stored FAILURE record
  (ignore_result rules apply), or REVOKED for :class:`~celeriac.exceptions.Terminated`. The
  one exception let through is :class:`~celeriac.exceptions.ColdShutdown`, which the worker
  raises to stop a solo task.
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

import inspect
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from celeriac import _state, states
from celeriac._utils.einfo import ExceptionInfo, format_traceback
from celeriac.effects import Effects
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
from celeriac.task import Context, Task

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.middleware.base import MiddlewareStack


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
    #: planned its workflow (chain, chord, callbacks) yet
    ended_outside: bool = False
    #: what the middleware planned for after the record is stored (workflow continuation)
    effects: Effects | None = None

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
            self.effects,
        )


_BASE_CALL = Task.__call__
_STORED_STATES = frozenset({states.SUCCESS, states.FAILURE, states.RETRY})
#: the reason stored for a task stopped by revoke(terminate=True), as Celery stores it
TERMINATED_REASON = "terminated"


@dataclass(slots=True)
class Prepared:
    """A call between :func:`prepare` and :func:`conclude`: the request is pushed."""

    task: Task
    request: Context
    args: list[Any]
    kwargs: dict[str, Any]
    eager: bool
    store_result: bool
    started_s: float
    middleware: MiddlewareStack
    #: the task's app (looked up once per call)
    app: Celery
    #: the task's request stack (``self.request`` reads its top)
    stack: list[Context]


@dataclass(slots=True)
class _Run:
    """What :func:`conclude` found, before the middleware's conclusion and the summary."""

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
    prepared: Prepared | None = None
    try:
        prepared = prepare(task, request, args, kwargs, eager=eager, store_result=store_result,
                           started_s=started)
        try:
            # call(prepared), inlined: this is every task's path
            if type(task).__call__ is not _BASE_CALL:
                request.in_trace = True
                retval = task(*args, **kwargs)
            else:
                retval = task.run(*args, **kwargs)
            error = None
        except BaseException as exc:
            retval, error = None, exc
        run = conclude(prepared, retval, error)
    except ColdShutdown:
        raise
    except BaseException as exc:
        if eager and not isinstance(exc, Exception):
            raise
        run = _escaped(task, request, exc, store_result, started)
    return _outcome(task, request, run, eager, store_result, started, prepared)


async def trace_task_async(
    task: Task,
    request: Context,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    store_result: bool = True,
) -> Outcome:
    """:func:`trace_task` for a task whose call returns an awaitable (``async def``): the
    same prepare and conclude, with the call awaited; the same safety rules."""
    started = time.perf_counter()
    try:
        prepared = prepare(task, request, args, kwargs, store_result=store_result,
                           started_s=started)
        try:
            retval = call(prepared)
            if inspect.isawaitable(retval):
                retval = await retval
            error = None
        except BaseException as exc:
            retval, error = None, exc
        run = conclude(prepared, retval, error)
    except ColdShutdown:
        raise
    except BaseException as exc:
        run = _escaped(task, request, exc, store_result, started)
    return _outcome(task, request, run, False, store_result, started)


def prepare(
    task: Task,
    request: Context,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    eager: bool = False,
    store_result: bool = True,
    started_s: float | None = None,
) -> Prepared:
    """Before the call: ``before_task`` middleware hooks, the request pushed (``self.request``,
    ``current_task``), ``before_start``. May raise; when it does, nothing stays pushed."""
    app = task.app
    middleware = app.middleware
    stack = task.request_stack
    prepared = Prepared(task, request, args, kwargs, eager, store_result,
                        time.perf_counter() if started_s is None else started_s, middleware, app,
                        stack)
    if not eager:
        request._sends = []
    for hook in middleware.before_task:
        hook(task, request, args, kwargs)
    stack.append(request)
    _state.push_task(task)
    try:
        task.before_start(request.id or "", args, kwargs)
    except BaseException:
        _release(prepared, states.PENDING, None)
        raise
    return prepared


def call(prepared: Prepared) -> Any:
    """The task's own call (its ``__call__`` when overridden, else ``run``). For an ``async
    def`` task this returns the coroutine, which the async path awaits."""
    task = prepared.task
    if type(task).__call__ is not _BASE_CALL:
        prepared.request.in_trace = True
        return task(*prepared.args, **prepared.kwargs)
    return task.run(*prepared.args, **prepared.kwargs)


def conclude(prepared: Prepared, retval: Any, error: BaseException | None) -> _Run:
    """After the call returned ``retval`` or raised ``error``: the state, the task's hooks
    and the middleware's, the record to store; the request is popped whatever happens.
    Raises ColdShutdown and Terminated (not the task's own failure: the caller decides), and,
    eager, BaseException-only errors."""
    task, request = prepared.task, prepared.request
    args, kwargs = prepared.args, prepared.kwargs
    middleware = prepared.middleware
    task_id = request.id or ""
    einfo: ExceptionInfo | None = None
    reject_requeue: bool | None = None
    state: str = states.PENDING
    payload: bytes | None = None
    try:
        if error is None:
            state = states.SUCCESS
            task.on_success(retval, task_id, args, kwargs)
            for hook in middleware.on_task_success:
                hook(task, request, retval)
        elif isinstance(error, Retry):
            state = states.RETRY
            reason = error.exc if isinstance(error.exc, BaseException) else error
            retval = error
            einfo = ExceptionInfo(reason)
            task.on_retry(reason, task_id, args, kwargs, einfo)
            for hook in middleware.on_task_retry:
                hook(task, request, reason, einfo)
        elif isinstance(error, Ignore):
            state = states.IGNORED
            retval = error
        elif isinstance(error, Reject):
            state = states.REJECTED
            retval = error
            reject_requeue = error.requeue
            for hook in middleware.on_task_rejected:
                hook(task, request, error)
        elif isinstance(error, (ColdShutdown, Terminated)):
            raise error
        else:
            if prepared.eager and not isinstance(error, Exception):
                raise error
            state = states.FAILURE
            retval = error
            einfo = ExceptionInfo(error)
            task.on_failure(error, task_id, args, kwargs, einfo)
            for hook in middleware.on_task_failure:
                hook(task, request, error, einfo, args, kwargs)
        runtime_s = time.perf_counter() - prepared.started_s
        if prepared.store_result and state in _STORED_STATES and _keeps_record(task, request,
                                                                               state):
            settings = prepared.app.trace_settings()
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
        _release(prepared, state, retval)
    return _Run(state, retval, runtime_s, einfo, payload, reject_requeue,
                einfo.traceback if einfo else None)


def _release(prepared: Prepared, state: str, retval: Any) -> None:
    """Pop the request, then the ``after_task`` hooks (Celery's task_postrun)."""
    prepared.stack.pop()
    _state.pop_task()
    for hook in prepared.middleware.after_task:
        hook(prepared.task, prepared.request, prepared.args, prepared.kwargs, state, retval)


def _outcome(
    task: Task,
    request: Context,
    run: _Run,
    eager: bool,
    store_result: bool,
    started: float,
    prepared: Prepared | None = None,
) -> Outcome:
    """The outcome of ``run``, with the middleware's conclusion (the workflow's effects)."""
    app = task.app if prepared is None else prepared.app
    try:
        retval = run.retval
        outcome = Outcome(
            state=run.state,
            retval=retval,
            summary=_summary(retval, task.resultrepr_maxsize),
            runtime_s=run.runtime_s,
            payload=run.payload,
            traceback=run.traceback,
            reject_requeue=run.reject_requeue,
            exc_type=type(retval).__name__ if isinstance(retval, BaseException) else None,
        )
        if not eager:
            middleware = app.middleware if prepared is None else prepared.middleware
            for hook in middleware.conclude:
                effects = hook(task, request, outcome)
                if effects:
                    if outcome.effects is None:
                        outcome.effects = effects
                    else:
                        outcome.effects.extend(effects)
        return _with_sends(request, outcome)
    except ColdShutdown:
        raise
    except BaseException as exc:  # a time limit landing after the run: the last net
        if eager and not isinstance(exc, Exception):
            raise
        return _with_sends(request, _ended(app, task, request, exc,
                                           time.perf_counter() - started, store=store_result))


def _with_sends(request: Context, outcome: Outcome) -> Outcome:
    """``outcome`` carrying the messages the run left for the executor (``retry()``'s), which
    it publishes after storing this run's record."""
    sends = request._sends
    if sends:
        request._sends = None
        if outcome.effects is None:
            outcome.effects = Effects(messages=sends)
        else:
            outcome.effects.messages[:0] = sends
    return outcome


def _summary(value: Any, max_chars: int) -> str:
    if isinstance(value, Retry):
        try:
            return str(value)
        except ColdShutdown:
            raise
        except BaseException:
            return "Retry"
    return safe_repr(value, max_chars)


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
