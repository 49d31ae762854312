"""``shared_task``: a task that belongs to whichever app is current when it is used.

The decorator registers a finalizer that adds the task to every app (existing and future)
and returns a proxy; nothing connects at import time, and using the proxy with no app
created raises a clear ImproperlyConfigured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, Literal, overload

from celeriac import _state
from celeriac._types import TaskParams, TaskReturn

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.task import Task


class SharedTaskProxy:
    """Stands for the task of the same name in the current app."""

    __slots__ = ("__wrapped__", "_name", "_options")

    def __init__(self, fun: Callable[..., Any], name: str | None, options: dict[str, Any]) -> None:
        object.__setattr__(self, "__wrapped__", fun)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_options", options)

    def _bind(self, app: Celery) -> Task:
        fun = self.__wrapped__
        return app._task_from_fun(fun, name=self._name, **self._options)

    def _resolve(self) -> Task:
        return self._bind(_state.get_current_app())

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._resolve(), attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        setattr(self._resolve(), attr, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        app = _state.maybe_current_app()
        if app is None:
            return f"<@shared_task: {self._name or self.__wrapped__.__name__} (no app yet)>"
        return repr(self._resolve())


# The decorator returns a SharedTaskProxy, which forwards every attribute and call to the
# task of the current app; typed as that Task so users get the same checks as ``@app.task``.
@overload
def shared_task(fun: Callable[TaskParams, TaskReturn], /) -> Task[TaskParams, TaskReturn]: ...


@overload
def shared_task(
    *, bind: Literal[True], **options: Any
) -> Callable[
    [Callable[Concatenate[Any, TaskParams], TaskReturn]], Task[TaskParams, TaskReturn]
]: ...


@overload
def shared_task(
    *, bind: Literal[False] = False, **options: Any
) -> Callable[[Callable[TaskParams, TaskReturn]], Task[TaskParams, TaskReturn]]: ...


@overload
def shared_task(*, bind: bool, **options: Any) -> Callable[[Callable[..., Any]], Task]: ...


def shared_task(*args: Any, **options: Any) -> Any:
    """Like ``@app.task`` but for reusable apps/libraries: binds to the current app on use."""

    def decorate(fun: Callable[..., Any]) -> SharedTaskProxy:
        name = options.pop("name", None)
        proxy = SharedTaskProxy(fun, name, options)
        _state.connect_on_app_finalize(proxy._bind)
        return proxy

    if len(args) == 1 and callable(args[0]) and not options:
        return decorate(args[0])
    return decorate
