"""``@app.task`` and ``@shared_task`` carry the function's signature to type checkers.

A small user module is written to a temporary directory and checked with ``mypy --strict``.
Lines ending in ``# E: <code>`` must get exactly that error; ``reveal_type`` lines ending in
``# N: <type>`` must reveal exactly that type; every other line must be clean.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import celeriac

mypy_api = pytest.importorskip("mypy.api")

USER_MODULE = """
from typing import Any

from celeriac import Celery, Task, shared_task
from celeriac.canvas import Signature, chain
from celeriac.result import AsyncResult, EagerResult

app = Celery("typed", broker="memory://")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task()
def greet(name: str, punctuation: str = "!") -> str:
    return name + punctuation


@app.task(bind=True, max_retries=5)
def bound(self: Task, n: int) -> float:
    return n / (self.request.retries + 1)


class CustomTask(Task):
    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        pass


@app.task(base=CustomTask, name="typed.custom", queue="slow")
def custom(items: list[str]) -> int:
    return len(items)


@shared_task
def shared(x: int) -> str:
    return str(x)


@shared_task(bind=True)
def shared_bound(self: Task, x: int) -> bytes:
    return bytes(x)


class ClassBased(Task):
    def run(self, x: int) -> int:
        return x


reveal_type(add(1, 2))  # N: int
reveal_type(add.delay(1, 2))  # N: celeriac.result.AsyncResult[int]
reveal_type(add.delay(1, 2).get(timeout=1))  # N: int
reveal_type(add.apply_async((1, 2), countdown=3))  # N: celeriac.result.AsyncResult[int]
reveal_type(add.apply((1, 2)))  # N: celeriac.result.EagerResult[int]
reveal_type(add.s(1, 2))  # N: celeriac.canvas.signature.Signature
reveal_type(add.si(1, 2))  # N: celeriac.canvas.signature.Signature
reveal_type(greet.delay("a", punctuation="?").get())  # N: str
reveal_type(bound(3))  # N: float
reveal_type(bound.delay(3))  # N: celeriac.result.AsyncResult[float]
reveal_type(custom.delay(["a"]))  # N: celeriac.result.AsyncResult[int]
reveal_type(shared.delay(1).get())  # N: str
reveal_type(shared_bound.delay(1))  # N: celeriac.result.AsyncResult[bytes]
reveal_type(ClassBased().delay(1))  # N: celeriac.result.AsyncResult[Any]
workflow = chain(add.s(1, 2), add.s(3))
untyped: AsyncResult = add.delay(1, 2)
eager: EagerResult[int] = add.apply((1, 2))
signature: Signature = add.s(1)
total: int = add.delay(1, 2).get()

add.delay(1, "x")  # E: arg-type
add.delay(1, 2, 3)  # E: call-arg
add.delay(1)  # E: call-arg
add(1, y="2")  # E: arg-type
wrong: str = add.delay(1, 2).get()  # E: assignment
greet.delay("a", exclamation="!")  # E: call-arg
bound.delay("3")  # E: arg-type
bound.delay(3, 4)  # E: call-arg
custom.delay([1])  # E: list-item
shared.delay("1")  # E: arg-type
shared_bound.delay(1, 2)  # E: call-arg
"""

_MARKER = re.compile(r"#\s*([EN]):\s*(.+?)\s*$")
_REPORT = re.compile(r"^[^:]+:(\d+): (error|note): (.*?)(?:  \[([a-z-]+)\])?$")


def test_task_signatures_reach_the_type_checker(tmp_path: Path) -> None:
    user = tmp_path / "user_tasks.py"
    user.write_text(USER_MODULE)
    # check against the celeriac these tests import (a checkout may shadow the installed one)
    checkout = Path(celeriac.__file__).resolve().parent.parent
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\nmypy_path = {checkout}\n")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stdout, stderr, _status = mypy_api.run(
        [
            "--strict",
            "--python-version",
            version,
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--show-error-codes",
            "--no-pretty",
            str(user),
        ]
    )
    assert not stderr, stderr

    expected: dict[int, tuple[str, str]] = {}
    for lineno, line in enumerate(USER_MODULE.splitlines(), start=1):
        marker = _MARKER.search(line)
        if marker:
            expected[lineno] = (marker.group(1), marker.group(2))

    got: dict[int, list[tuple[str, str]]] = {}
    for line in stdout.splitlines():
        if not line.startswith(str(user)):
            continue  # errors inside celeriac are the package check's business
        report = _REPORT.match(line[len(str(user)) - len(user.name) :])
        assert report, line
        lineno, kind, text, code = report.groups()
        if kind == "note" and text.startswith("Revealed type is "):
            got.setdefault(int(lineno), []).append(("N", text.removeprefix("Revealed type is ")))
        elif kind == "error":
            got.setdefault(int(lineno), []).append(("E", code or text))
        # other notes elaborate on an error already counted

    problems = []
    for lineno in sorted(set(expected) | set(got)):
        want = expected.get(lineno)
        have = got.get(lineno, [])
        source = USER_MODULE.splitlines()[lineno - 1].strip()
        if want is None:
            problems.append(f"line {lineno} should be clean, got {have}: {source}")
        elif want[0] == "N" and have != [("N", f'"{want[1]}"')]:
            problems.append(f"line {lineno} should reveal {want[1]}, got {have}: {source}")
        elif want[0] == "E" and have != [want]:
            problems.append(f"line {lineno} should fail with [{want[1]}], got {have}: {source}")
    assert not problems, "\n".join(problems) + "\n\nmypy said:\n" + stdout


def test_generic_subscripts_are_valid_at_run_time() -> None:
    """Annotations like ``Task[[int], int]`` evaluate (no ``from __future__ import annotations``
    needed), and a task made by the decorator is a plain subclass of Task."""
    from celeriac import Celery, Task
    from celeriac.result import AsyncResult, EagerResult

    assert Task[[int, str], int].__origin__ is Task
    assert AsyncResult[int].__origin__ is AsyncResult
    assert EagerResult[str].__origin__ is EagerResult

    app = Celery("typed-runtime", broker="memory://", backend="memory://")
    app.conf.task_always_eager = True

    @app.task(bind=True)
    def bound(self: Task, n: int) -> int:
        return n + self.request.retries

    assert isinstance(bound, Task)
    assert bound(2) == 2
    assert bound.delay(3).get() == 3
