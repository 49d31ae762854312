"""The tutorial (docs/tutorial.md, examples/tutorial) works as written: a real worker
subprocess, and the tutorial's Python steps run here."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import states
from celeriac.result import AsyncResult
from tests.cli.workers import ROOT, WorkerProcess

TUTORIAL = ROOT / "examples" / "tutorial"
RETRY_DELAY_S = "0.2"


def _forget_proj() -> None:
    """Drop the tutorial's modules so the next import reads the copied files afresh."""
    app_module = sys.modules.get("proj.celery")
    app = getattr(app_module, "app", None)
    if app is not None:
        app.close()
    for name in list(sys.modules):
        if name == "proj" or name.startswith("proj."):
            del sys.modules[name]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    dest = tmp_path / "tutorial"
    shutil.copytree(TUTORIAL, dest, ignore=shutil.ignore_patterns("__pycache__", "*.db*"))
    monkeypatch.chdir(dest)
    monkeypatch.syspath_prepend(str(dest))
    monkeypatch.setenv("PROJ_RETRY_DELAY", RETRY_DELAY_S)
    _forget_proj()
    try:
        yield dest
    finally:
        _forget_proj()


def test_tutorial_first_steps(project: Path) -> None:
    worker = WorkerProcess(
        project,
        ["-A", "proj", "worker", "-l", "info", "-P", "solo"],
        env={"PROJ_RETRY_DELAY": RETRY_DELAY_S},
    )
    with worker:
        worker.wait_for("ready.")

        # The tutorial's Python steps.
        from proj.tasks import add, divide, fetch_page

        result = add.delay(10, 6)
        assert isinstance(result.id, str)
        assert AsyncResult(result.id).get(timeout=20) == 16
        assert result.get(timeout=20) == 16
        assert result.successful()

        flaky = fetch_page.delay("https://example.com/")
        with pytest.raises(ConnectionError, match="unreachable"):
            flaky.get(timeout=60)
        assert flaky.state == states.FAILURE
        assert isinstance(flaky.result, ConnectionError)

        good = divide.delay(10, 4)
        bad = divide.delay(1, 0)
        assert good.get(timeout=20) == 2.5
        with pytest.raises(ZeroDivisionError):
            bad.get(timeout=20)

        code = worker.stop()
    assert code == 0
    log = worker.output()

    # The banner.
    assert "[config]" in log
    assert f".> transport:   sqlite:///proj.db (file: {Path.cwd() / 'proj.db'})" in log
    assert ".> concurrency: 1 (solo)" in log
    assert ".> celery           exchange=celery(direct) key=celery" in log
    assert "[tasks]\n  . proj.tasks.add\n  . proj.tasks.divide\n  . proj.tasks.fetch_page" in log

    # Celery's log lines, in Celery's format.
    assert re.search(
        rf"\[\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d+: INFO/MainProcess\] "
        rf"Task proj\.tasks\.add\[{result.id}\] received",
        log,
    )
    assert re.search(rf"Task proj\.tasks\.add\[{result.id}\] succeeded in \d+\.\d+s: 16", log)

    # Exactly 4 retries, then the failure.
    assert log.count(f"Task proj.tasks.fetch_page[{flaky.id}] retry:") == 4
    assert log.count(f"proj.tasks.fetch_page[{flaky.id}]: attempt ") == 5
    assert f"Task proj.tasks.fetch_page[{flaky.id}] raised unexpected: ConnectionError" in log

    # The hooks of the custom base class ran, with the task logger's format.
    assert f"proj.tasks.divide[{good.id}]: on_success: proj.tasks.divide returned 2.5" in log
    assert f"proj.tasks.divide[{good.id}]: after_return: proj.tasks.divide ended in state " \
        "SUCCESS" in log
    assert f"ERROR/MainProcess] proj.tasks.divide[{bad.id}]: on_failure: proj.tasks.divide " \
        "raised ZeroDivisionError" in log
    assert f"proj.tasks.divide[{bad.id}]: after_return: proj.tasks.divide ended in state " \
        "FAILURE" in log

    assert "Warm shutdown (SIGTERM)" in log


def test_tutorial_code_matches_the_example_project() -> None:
    """Every module-level code block of docs/tutorial.md is in examples/tutorial verbatim."""
    doc = (ROOT / "docs" / "tutorial.md").read_text()
    sources = "\n".join(
        path.read_text() for path in sorted((TUTORIAL / "proj").glob("*.py"))
    )
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)
    module_blocks = [block for block in blocks if not block.startswith(">>>")]
    assert len(module_blocks) >= 4
    for block in module_blocks:
        assert block.strip() in sources, f"docs/tutorial.md block not in examples:\n{block}"
