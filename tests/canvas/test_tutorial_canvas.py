"""docs/canvas.md works as written: its ``python`` blocks are the tasks module, its ``pycon``
blocks run as doctests against a worker running in a thread."""

from __future__ import annotations

import doctest
import re
import sys
import threading
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, group
from celeriac.result import allow_join_result
from celeriac.worker import Worker
from tests.canvas.conftest import Drain
from tests.canvas.tasks import Tasks

DOC = Path(__file__).resolve().parents[2] / "docs" / "canvas.md"
_BLOCK = re.compile(r"^```(python|pycon)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def doc_blocks(kind: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(DOC.read_text()) if lang == kind]


@pytest.fixture
def docs_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """The page's ``tasks`` module, on a private memory:// broker, with a worker running."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CELERIAC_BROKER_URL", f"memory://canvas-docs-{uuid.uuid4().hex}")
    for name in ("CELERIAC_RESULT_BACKEND", "CELERY_RESULT_BACKEND", "CELERY_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    module = types.ModuleType("tasks")
    monkeypatch.setitem(sys.modules, "tasks", module)
    for number, source in enumerate(doc_blocks("python")):
        exec(compile(source, f"{DOC}:python-block-{number}", "exec"), module.__dict__)
    app: Celery = module.app
    worker = Worker(
        app, pool="threads", concurrency=4, install_signal_handlers=False, prefetch_multiplier=1
    )
    thread = threading.Thread(target=worker.start, name="docs-worker", daemon=True)
    thread.start()
    try:
        yield module
    finally:
        worker.stop()
        thread.join(timeout=10)
        app.close()


def test_every_example_in_docs_canvas_runs(docs_app: types.ModuleType) -> None:
    blocks = doc_blocks("pycon")
    assert len(blocks) >= 15
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    globs: dict[str, Any] = {}
    report: list[str] = []
    for number, block in enumerate(blocks):
        test = parser.get_doctest(block, globs, f"canvas.md pycon block {number}", str(DOC), 0)
        runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs  # each block sees the names the earlier ones defined
    assert runner.summarize(verbose=False).failed == 0, "".join(report)


def test_first_group_joins_inside_a_task_with_threads(
    canvas_app: Celery, tasks: Tasks, drain: Drain
) -> None:
    add = tasks.add

    @canvas_app.task(name="t.first_group")
    def first_group(n: int) -> list[int]:
        with allow_join_result():
            return group(add.s(i, i) for i in range(n))().get(timeout=10)  # type: ignore[no-any-return]

    @canvas_app.task(name="t.bad_join")
    def bad_join(n: int) -> list[int]:
        return group(add.s(i, i) for i in range(n))().get(timeout=10)  # type: ignore[no-any-return]

    good = first_group.delay(5)
    bad = bad_join.delay(2)
    drain(pool="threads", concurrency=2)
    assert good.get(timeout=10) == [0, 2, 4, 6, 8]
    with pytest.raises(RuntimeError, match=r"Never call result\.get"):
        bad.get(timeout=10)
