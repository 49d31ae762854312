"""Tasks every app has, under Celery's names so messages sent by Celery work too:
``celery.map``, ``celery.starmap``, ``celery.chunks`` and ``celery.accumulate``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celeriac import _state
from celeriac.canvas.primitives import split_every
from celeriac.canvas.signature import maybe_signature

if TYPE_CHECKING:
    from celeriac.app.base import Celery


def register_builtins(app: Celery) -> None:
    def xmap(task: Any, it: list[Any]) -> list[Any]:
        sig = maybe_signature(task, app=app)
        return [sig(item) for item in it]

    def xstarmap(task: Any, it: list[Any]) -> list[Any]:
        sig = maybe_signature(task, app=app)
        return [sig(*item) for item in it]

    def chunks(task: Any, it: list[Any], n: int) -> list[list[Any]]:
        sig = maybe_signature(task, app=app)
        return [[sig(*item) for item in part] for part in split_every(it, int(n))]

    def accumulate(*args: Any, index: int | None = None) -> Any:
        return args[index] if index is not None else list(args)

    for name, fun in (
        ("celery.map", xmap),
        ("celery.starmap", xstarmap),
        ("celery.chunks", chunks),
        ("celery.accumulate", accumulate),
    ):
        if name not in app._tasks:
            app._task_from_fun(fun, name=name)


_state.connect_on_app_finalize(register_builtins)
