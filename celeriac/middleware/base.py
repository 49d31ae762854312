"""The middleware contract: the one extension point around sending and running tasks.

A middleware is an object with some of the hook methods of :class:`Middleware`; every hook is
a no-op by default, so a middleware overrides only what it needs. The app holds them in a
:class:`MiddlewareStack`: the built-ins first (signals, STARTED, workflow continuation), then
the user's from ``worker_middleware`` in their order. A hook nobody overrides costs nothing:
the stack keeps, per hook, only the methods that override it (and that the middleware's
``enabled(hook)`` allows: the signals middleware enables a hook only while its signal has
receivers).

Where each hook runs (rules every middleware can rely on):

- ``before_publish`` / ``after_publish``: in the process that sends, around each message
  (``delay``, ``apply_async``, ``send_task``, workflow sends, and the worker publishing a
  continuation). A ``before_publish`` that raises stops the send and the error reaches the
  caller.
- ``worker_boot`` / ``worker_shutdown``, ``after_receive``, ``after_discard``,
  ``before_process``, ``after_lost``, ``after_process``, ``after_settle``: in the worker's
  main process, on
  its main loop thread. ``before_process`` runs before the job is handed to the pool, so
  records it adds (``executor.add_records``) are stored before the task starts.
  ``after_process`` sees every outcome exactly once, including those of jobs whose process
  died. An exception from these hooks is logged and does not stop the worker or the job.
- ``before_task``, ``on_task_success``, ``on_task_retry``, ``on_task_failure``,
  ``on_task_rejected``, ``after_task``, ``conclude``: where the task runs (the pool's thread
  or child process), inside the tracer's safety net: an exception there becomes the task's
  FAILURE outcome, as one from a task hook does. ``conclude`` is the last one: it sees the
  finished :class:`~celeriac.trace.Outcome` and may attach :class:`~celeriac.effects.Effects`
  for the executor to perform; it must do no I/O itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.effects import Effects
from celeriac.message import Envelope

if TYPE_CHECKING:
    from celeriac._utils.einfo import ExceptionInfo
    from celeriac.protocol import TaskMessage
    from celeriac.task import Context, Task
    from celeriac.trace import Outcome

#: the hook names, in the order a task meets them
HOOKS: tuple[str, ...] = (
    "before_publish",
    "after_publish",
    "worker_boot",
    "after_receive",
    "after_discard",
    "before_process",
    "before_task",
    "on_task_success",
    "on_task_retry",
    "on_task_failure",
    "on_task_rejected",
    "after_task",
    "conclude",
    "after_lost",
    "after_process",
    "after_settle",
    "worker_shutdown",
)


class Middleware:
    """Base class of every middleware: each hook does nothing until overridden.

    ``executor`` arguments are the worker's :class:`~celeriac.worker.executor.Executor`
    (``add_records``, ``add_effects``, ``app``, ``hostname``), ``job`` arguments its
    :class:`~celeriac.worker.pools.base.Job` (``request`` is the task's request fields).
    """

    # -- the sending process -----------------------------------------------------------------
    def before_publish(self, app: Any, queue: str, envelope: Envelope) -> None:
        """About to publish ``envelope`` on ``queue``."""

    def after_publish(self, app: Any, queue: str, envelope: Envelope) -> None:
        """``envelope`` is with the broker."""

    # -- the worker's main process -------------------------------------------------------------
    def worker_boot(self, worker: Any) -> None:
        """The worker is starting (before it consumes)."""

    def after_receive(self, executor: Any, job: Any) -> None:
        """A message was read and validated and waits for a free pool slot."""

    def after_discard(self, executor: Any, message: TaskMessage, why: str) -> None:
        """A message will never run: ``why`` is ``"revoked"`` or ``"expired"``."""

    def before_process(self, executor: Any, job: Any) -> None:
        """``job`` is about to be handed to the pool."""

    def after_lost(self, executor: Any, job: Any, outcome: Outcome) -> None:
        """``job`` ended outside the tracer (its process died, a hard time limit, a
        terminate): no ``conclude`` ran for it. Called before ``after_process``."""

    def after_process(self, executor: Any, job: Any, outcome: Outcome) -> None:
        """``job`` finished (or its process died) with ``outcome``; its record and the
        effects its ``conclude`` hooks returned are queued."""

    def after_settle(self, executor: Any, stored: int, acked: int) -> None:
        """A flush stored ``stored`` records and acked ``acked`` messages."""

    def worker_shutdown(self, worker: Any) -> None:
        """The worker has stopped consuming and is about to exit."""

    # -- where the task runs -------------------------------------------------------------------
    def before_task(
        self, task: Task, request: Context, args: Sequence[Any], kwargs: dict[str, Any]
    ) -> None:
        """The task is about to be called (before ``before_start``)."""

    def on_task_success(self, task: Task, request: Context, retval: Any) -> None:
        """The task returned ``retval`` (after ``on_success``)."""

    def on_task_retry(
        self, task: Task, request: Context, reason: BaseException, einfo: ExceptionInfo
    ) -> None:
        """The task asked to be retried (after ``on_retry``)."""

    def on_task_failure(
        self,
        task: Task,
        request: Context,
        exc: BaseException,
        einfo: ExceptionInfo,
        args: Sequence[Any],
        kwargs: dict[str, Any],
    ) -> None:
        """The task raised ``exc`` (after ``on_failure``)."""

    def on_task_rejected(self, task: Task, request: Context, exc: BaseException) -> None:
        """The task raised Reject."""

    def after_task(
        self,
        task: Task,
        request: Context,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        state: str,
        retval: Any,
    ) -> None:
        """The call is over (after ``after_return``), whatever happened."""

    def conclude(self, task: Task, request: Context, outcome: Outcome) -> Effects | None:
        """Effects for the executor to perform after the outcome's record is stored (no I/O
        here), or None."""
        return None

    def enabled(self, hook: str) -> bool:
        """Whether the stack calls this middleware's ``hook`` (default: every overridden one).
        Asked whenever the stack is built: when the configuration changes and when any signal
        gains or loses a receiver."""
        return True


class MiddlewareStack:
    """The app's middleware, ordered, with each hook's overriding methods pre-collected.

    Attributes named after the hooks hold tuples of bound methods; an empty tuple means no
    middleware implements that hook, which callers test before building hook arguments.
    """

    before_publish: tuple[Callable[..., None], ...]
    after_publish: tuple[Callable[..., None], ...]
    worker_boot: tuple[Callable[..., None], ...]
    after_receive: tuple[Callable[..., None], ...]
    after_discard: tuple[Callable[..., None], ...]
    before_process: tuple[Callable[..., None], ...]
    before_task: tuple[Callable[..., None], ...]
    on_task_success: tuple[Callable[..., None], ...]
    on_task_retry: tuple[Callable[..., None], ...]
    on_task_failure: tuple[Callable[..., None], ...]
    on_task_rejected: tuple[Callable[..., None], ...]
    after_task: tuple[Callable[..., None], ...]
    conclude: tuple[Callable[..., Effects | None], ...]
    after_lost: tuple[Callable[..., None], ...]
    after_process: tuple[Callable[..., None], ...]
    after_settle: tuple[Callable[..., None], ...]
    worker_shutdown: tuple[Callable[..., None], ...]

    def __init__(self, middleware: Iterable[Middleware]) -> None:
        self.middleware: tuple[Middleware, ...] = tuple(middleware)
        for hook in HOOKS:
            base = getattr(Middleware, hook)
            methods = tuple(
                getattr(m, hook)
                for m in self.middleware
                if getattr(type(m), hook, base) is not base and m.enabled(hook)
            )
            setattr(self, hook, methods)

    def __iter__(self) -> Any:
        return iter(self.middleware)

    def __len__(self) -> int:
        return len(self.middleware)

    def __repr__(self) -> str:
        return f"<MiddlewareStack {[type(m).__name__ for m in self.middleware]}>"
