"""The tasks the canvas suite runs: arithmetic, failures, and callbacks that record calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from celeriac import Celery


class ExpectedError(Exception):
    """Raised on purpose by the ``fail`` task."""


@dataclass
class Tasks:
    app: Celery
    add: Any = None
    mul: Any = None
    xsum: Any = None
    fail: Any = None
    identity: Any = None
    on_error: Any = None
    on_error_id: Any = None
    record: Any = None
    #: what the recording tasks saw, in call order
    calls: list[tuple[str, Any]] = field(default_factory=list)


def define(app: Celery) -> Tasks:
    t = Tasks(app)

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="t.xsum")
    def xsum(numbers: list[int]) -> int:
        return sum(numbers)

    @app.task(name="t.fail")
    def fail(*args: Any) -> None:
        raise ExpectedError(f"failed with {list(args)}")

    @app.task(name="t.identity")
    def identity(x: Any) -> Any:
        return x

    @app.task(name="t.on_error")
    def on_error(request: Any, exc: BaseException, traceback: str | None) -> None:
        t.calls.append(("on_error", (request.id, type(exc).__name__, str(exc))))

    @app.task(name="t.on_error_id")
    def on_error_id(task_id: str) -> None:
        t.calls.append(("on_error_id", task_id))

    @app.task(name="t.record")
    def record(value: Any) -> Any:
        t.calls.append(("record", value))
        return value

    t.add, t.mul, t.xsum, t.fail, t.identity = add, mul, xsum, fail, identity
    t.on_error, t.on_error_id, t.record = on_error, on_error_id, record
    return t
