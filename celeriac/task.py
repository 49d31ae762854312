"""Task: the class behind ``@app.task``, and Context, the ``self.request`` of a running task."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self

from celeriac import _state, states
from celeriac._types import TaskParams, TaskReturn
from celeriac.exceptions import (
    Ignore,
    MaxRetriesExceededError,
    NotRegistered,
    Reject,
    Retry,
)
from celeriac.send_options import FROM_TASK, RETRY

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.backends.base import ResultBackend
    from celeriac.canvas.primitives import chunks as ChunksSignature
    from celeriac.canvas.primitives import xmap, xstarmap
    from celeriac.canvas.signature import Signature
    from celeriac.message import Envelope
    from celeriac.result import AsyncResult, EagerResult


class Context:
    """The request of one task execution (``self.request``)."""

    id: str | None = None
    task: str | None = None
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = {}
    retries: int = 0
    is_eager: bool = False
    called_directly: bool = True
    eta: str | None = None
    expires: str | None = None
    hostname: str | None = None
    delivery_info: Mapping[str, Any] | None = None
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    chord: Any = None
    chain: Any = None
    callbacks: Any = None
    errbacks: Any = None
    correlation_id: str | None = None
    reply_to: str | None = None
    origin: str | None = None
    timelimit: Sequence[float | None] | None = None
    ignore_result: bool = False
    headers: Mapping[str, Any] | None = None
    properties: Mapping[str, Any] | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    shadow: str | None = None
    priority: int | None = None
    utc: bool = True
    taskset: str | None = None
    #: set by the tracer so a custom ``__call__`` calling ``super().__call__`` keeps this request
    in_trace: bool = False
    #: set by the worker's tracer: where ``retry()`` leaves its message, so the executor
    #: publishes it only after this run's RETRY record is stored (a fast retry can never
    #: finish before the record of the attempt that asked for it)
    _sends: list[tuple[str, Envelope]] | None = None

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def update(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def as_dict(self) -> dict[str, Any]:
        out = {
            k: v for k, v in vars(type(self)).items() if not k.startswith("_") and not callable(v)
        }
        out.update((k, v) for k, v in self.__dict__.items() if not k.startswith("_"))
        return out

    def __repr__(self) -> str:
        return f"<Context: {self.__dict__!r}>"


class _RequestStack(threading.local):
    def __init__(self) -> None:
        self.stack: list[Context] = []


def exponential_backoff(factor: float, retries: int, maximum: float, full_jitter: bool) -> int:
    """Countdown for retry number ``retries``: factor * 2**retries, capped, optionally jittered."""
    countdown = min(maximum, factor * (2**retries))
    if full_jitter:
        countdown = random.randrange(int(countdown) + 1)
    return max(0, int(countdown))


class Task(Generic[TaskParams, TaskReturn]):
    """A task type. ``@app.task`` makes a subclass whose ``run`` is the decorated function;
    each app holds one instance of it in ``app.tasks``.

    For type checkers, ``Task[P, R]`` carries the function's parameters and return type:
    calling the task and ``delay`` check arguments against ``P``; ``delay``/``apply_async``
    return ``AsyncResult[R]``. Signatures (``s``, ``si``) stay unchecked because partial
    arguments are their point (``chain(add.s(1, 2), add.s(3))``)."""

    name: str | None = None
    typing: bool = True
    max_retries: int | None = 3
    default_retry_delay: float = 3 * 60
    rate_limit: str | float | None = None
    #: "worker" (Celery's: each worker limits on its own) or "global" (celeriac's: one limit
    #: shared by all workers); None: the ``task_rate_limit_scope`` setting
    rate_limit_scope: str | None = None
    ignore_result: bool = False
    trail: bool = True
    send_events: bool = True
    store_errors_even_if_ignored: bool = False
    serializer: str | None = None
    #: kombu's compression name (``zlib``, ``bzip2``, ``lzma``); None: ``task_compression``
    compression: str | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    autoretry_for: ClassVar[tuple[type[BaseException], ...]] = ()
    dont_autoretry_for: ClassVar[tuple[type[BaseException], ...]] = ()
    retry_kwargs: ClassVar[dict[str, Any]] = {}
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600
    retry_jitter: bool = True
    acks_late: bool | None = None
    acks_on_failure_or_timeout: bool | None = None
    reject_on_worker_lost: bool | None = None
    track_started: bool | None = None
    throws: ClassVar[tuple[type[BaseException], ...]] = ()
    expires: float | timedelta | datetime | None = None
    priority: int | None = None
    queue: str | None = None
    resultrepr_maxsize: int = 1024
    abstract: bool = False

    MaxRetriesExceededError = MaxRetriesExceededError
    NotRegistered = NotRegistered

    _app: Celery | None = None
    _requests: _RequestStack
    #: set by the decorator for @shared_task: bind to whichever app is current
    _shared: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._requests = _RequestStack()

    # -- binding ----------------------------------------------------------------------------------
    @property
    def app(self) -> Celery:
        app = type(self)._app
        if app is None:
            app = _state.get_current_app()
        return app

    def bind(self, app: Celery) -> Self:
        type(self)._app = app
        return self

    @property
    def backend(self) -> ResultBackend:
        return self.app.backend

    # -- calling ----------------------------------------------------------------------------------
    def run(self, *args: TaskParams.args, **kwargs: TaskParams.kwargs) -> TaskReturn:
        raise NotImplementedError("Tasks must define the run method.")

    def __call__(self, *args: TaskParams.args, **kwargs: TaskParams.kwargs) -> TaskReturn:
        stack = self._requests.stack
        top = stack[-1] if stack else None
        if top is not None and top.in_trace:
            # The tracer already pushed this run's request; keep it (custom __call__ + super()).
            top.in_trace = False
            return self.run(*args, **kwargs)
        _state.push_task(self)
        stack.append(Context(args=args, kwargs=kwargs, task=self.name))
        try:
            return self.run(*args, **kwargs)
        finally:
            stack.pop()
            _state.pop_task()

    @property
    def request(self) -> Context:
        stack = self._requests.stack
        return stack[-1] if stack else Context(task=self.name)

    @property
    def request_stack(self) -> list[Context]:
        return self._requests.stack

    def push_request(self, request: Context | None = None, **fields: Any) -> None:
        self._requests.stack.append(request if request is not None else Context(**fields))

    def pop_request(self) -> None:
        self._requests.stack.pop()

    def delay(self, *args: TaskParams.args, **kwargs: TaskParams.kwargs) -> AsyncResult[TaskReturn]:
        """Send the task with these arguments (``apply_async`` with no options)."""
        return self.apply_async(args, kwargs)

    def delay_on_commit(self, *args: TaskParams.args, **kwargs: TaskParams.kwargs) -> None:
        """``delay`` once the current database transaction commits (never, if it rolls back; at
        once outside a transaction). Returns nothing: the task id is not known before the send.
        Needs a transaction integration (``celeriac.contrib.django``)."""
        _state.on_commit(lambda: self.apply_async(args, kwargs))

    def apply_async_on_commit(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        """``apply_async`` once the current database transaction commits (see
        :meth:`delay_on_commit`)."""
        _state.on_commit(lambda: self.apply_async(args, kwargs, **options))

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> AsyncResult[TaskReturn]:
        """Send the task to a worker; options as Celery's (countdown, eta, expires, queue,
        priority, ignore_result, headers, time_limit, soft_time_limit, serializer...)."""
        app = self.app
        if app.publish_settings().always_eager:
            return self.apply(
                args, kwargs, task_id=task_id, link=link, link_error=link_error, **options
            )
        if self.typing:
            app.check_arguments(self, args or (), kwargs or {})
        self._with_defaults(options)
        return app.send_task(
            self.name or "",
            args,
            kwargs,
            task_id=task_id,
            link=link,
            link_error=link_error,
            shadow=shadow,
            send_options=FROM_TASK,
            **options,
        )

    def _with_defaults(self, options: dict[str, Any]) -> dict[str, Any]:
        """Fill send options the caller left out from this task's own attributes."""
        for attr in ("queue", "priority", "time_limit", "soft_time_limit", "expires"):
            if options.get(attr) is None:
                value = getattr(self, attr)
                if value is not None:
                    options[attr] = value
        if "ignore_result" not in options and self.ignore_result:
            options["ignore_result"] = True
        if options.get("serializer") is None and self.serializer:
            options["serializer"] = self.serializer
        if options.get("compression") is None and self.compression:
            options["compression"] = self.compression
        return options

    def delay_many(
        self, arglist: Iterable[Sequence[Any]], **options: Any
    ) -> list[AsyncResult[TaskReturn]]:
        """Send one call per argument tuple in batched round trips:
        ``add.delay_many([(1, 2), (3, 4)])``. Options apply to every call."""
        app = self.app
        name = self.name or ""
        shared = self._with_defaults(dict(options))
        calls = []
        for args in arglist:
            if self.typing:
                app.check_arguments(self, args, {})
            calls.append((name, args, None, shared))
        return app.send_many(calls)

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        link: Any = None,
        link_error: Any = None,
        retries: int = 0,
        throw: bool | None = None,
        **options: Any,
    ) -> EagerResult[TaskReturn]:
        """Run the task here and now, returning an EagerResult (``task_always_eager`` uses this)."""
        return self.app.apply_eagerly(
            self,
            list(args or ()),
            dict(kwargs or {}),
            task_id=task_id,
            retries=retries,
            throw=throw,
            link=link,
            link_error=link_error,
            options=options,
        )

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult[TaskReturn]:
        return self.app.AsyncResult(task_id, task_name=self.name, **kwargs)

    def signature(self, args: Any = None, *starargs: Any, **starkwargs: Any) -> Signature:
        return self.app.signature(self, args, *starargs, **starkwargs)

    subtask = signature

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        return self.signature(args, kwargs, immutable=True)

    def map(self, it: Iterable[Any]) -> xmap:
        """One ``celery.map`` task calling this task on each item: ``add.map([...])``."""
        return self.app.xmap(self.s(), it)

    def starmap(self, it: Iterable[Sequence[Any]]) -> xstarmap:
        """One ``celery.starmap`` task calling this task with each item's arguments."""
        return self.app.xstarmap(self.s(), it)

    def chunks(self, it: Iterable[Sequence[Any]], n: int) -> ChunksSignature:
        """``it`` split into tasks of ``n`` calls each: ``add.chunks(zip(xs, ys), 10)``."""
        return self.app.chunks(self.s(), it, n)

    # -- retrying ---------------------------------------------------------------------------------
    def retry(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Schedule this task to run again and end the current run by raising :class:`Retry`.

        Past ``max_retries`` it raises ``exc`` if one was given, otherwise
        :class:`MaxRetriesExceededError` (Celery's behaviour)."""
        request = self.request
        retries = request.retries
        if request.called_directly:
            if exc is not None:
                raise exc
            raise Retry("Task can be retried only when run by a worker or apply()", None)
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and retries >= limit:
            if exc is not None:
                raise exc
            raise self.MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{request.args} "
                f"kwargs:{request.kwargs}",
                task_args=request.args,
                task_kwargs=request.kwargs,
            )
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        new_args = request.args if args is None else args
        new_kwargs = request.kwargs if kwargs is None else kwargs
        when: Any = eta if eta is not None else countdown
        if request.is_eager:
            signal = Retry(exc=exc, when=when, is_eager=True, sig=(new_args, new_kwargs))
            if throw:
                raise signal
            return signal
        delivery_info = request.delivery_info or {}
        resend: dict[str, Any] = {
            "task_id": request.id,
            "retries": retries + 1,
            "root_id": request.root_id,
            "parent_id": request.parent_id,
            "group_id": request.group,
            "group_index": request.group_index,
            "chord": request.chord,
            "chain": request.chain,
            "link": request.callbacks,
            "link_error": request.errbacks,
            "expires": request.expires,
            "queue": delivery_info.get("routing_key") or options.pop("queue", None),
            "priority": delivery_info.get("priority"),
            "ignore_result": request.ignore_result,
        }
        if request.timelimit:
            resend["time_limit"], resend["soft_time_limit"] = request.timelimit
        if eta is not None:
            resend["eta"] = eta
        else:
            resend["countdown"] = countdown
        resend.update(options)
        sends = request._sends
        if sends is None:
            self.app.send_task(self.name or "", new_args, new_kwargs, send_options=RETRY,
                               **resend)
        else:
            message = self.app.prepare_message(self.name or "", new_args, new_kwargs,
                                               send_options=RETRY, **resend)
            if isinstance(message, tuple):
                sends.append(message)
        signal = Retry(exc=exc, when=when)
        if throw:
            raise signal
        return signal

    # -- state ------------------------------------------------------------------------------------
    def update_state(
        self, task_id: str | None = None, state: str | None = None, meta: Any = None, **kwargs: Any
    ) -> None:
        """Store a custom state (e.g. ``PROGRESS`` with a dict of counters) for a running task."""
        request = self.request
        task_id = task_id or request.id
        if task_id is None:
            return
        self.app.store_result(task_id, meta, state or states.PENDING, request=request, **kwargs)

    # -- hooks (override in a base class) --------------------------------------------------------
    def before_start(self, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Run by the worker before the task starts."""

    def on_success(
        self, retval: Any, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        """Run by the worker when the task succeeded."""

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        """Run by the worker when the task failed."""

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        """Run by the worker when the task is to be retried."""

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        """Run by the worker after the task returned, whatever the outcome."""

    def __repr__(self) -> str:
        app = type(self)._app
        return f"<@task: {self.name} of {app.main if app is not None else '(unbound)'}>"


def autoretry_wrapper(
    task: Task[TaskParams, TaskReturn], fun: Callable[TaskParams, TaskReturn]
) -> Callable[TaskParams, TaskReturn]:
    """Wrap ``run`` so exceptions in ``autoretry_for`` become ``task.retry(exc=...)``."""
    autoretry_for = tuple(task.autoretry_for)
    dont = tuple(task.dont_autoretry_for)
    retry_kwargs = dict(task.retry_kwargs)
    backoff = task.retry_backoff
    backoff_max = task.retry_backoff_max
    jitter = task.retry_jitter

    def run(*args: TaskParams.args, **kwargs: TaskParams.kwargs) -> TaskReturn:
        try:
            return fun(*args, **kwargs)
        except (Ignore, Retry, Reject):
            raise
        except dont:
            raise
        except autoretry_for as exc:
            options = dict(retry_kwargs)
            if backoff:
                options["countdown"] = exponential_backoff(
                    factor=float(max(1.0, float(backoff))),
                    retries=task.request.retries,
                    maximum=backoff_max,
                    full_jitter=jitter,
                )
            raise task.retry(exc=exc, **options) from None

    run.__wrapped__ = fun  # type: ignore[attr-defined]
    return run
