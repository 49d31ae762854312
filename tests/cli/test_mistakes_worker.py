"""Issue 14 items 2 and 3 with a running worker: the first Ctrl-C says a second one stops
running tasks; prefork children log under their own names (ForkPoolWorker-N, as Celery); a
task module left on Celery's decorators gets one warning line naming it."""

from __future__ import annotations

import signal
import textwrap
import time
import uuid
from pathlib import Path

from tests.cli.workers import WorkerProcess

SLOW_PROJECT = """
    import logging
    import os
    import time

    from celeriac import Celery
    from celeriac.utils.log import get_task_logger

    app = Celery({name!r}, broker={broker!r})
    task_logger = get_task_logger(__name__)
    plain_logger = logging.getLogger({name!r})

    @app.task
    def hold(flag_dir):
        task_logger.warning("task logger speaking")
        plain_logger.warning("plain logger speaking")
        open(os.path.join(flag_dir, "started"), "w").close()
        while not os.path.exists(os.path.join(flag_dir, "release")):
            time.sleep(0.05)
        return "done"
"""


def _wait_for_file(path: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_ctrl_c_hint_and_prefork_process_names(tmp_path: Path) -> None:
    name = f"mkw_{uuid.uuid4().hex[:8]}"
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(SLOW_PROJECT.format(name=name, broker=broker))
    )
    with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "prefork", "-c", "1",
                                  "-l", "info"]) as proc:
        proc.wait_for("ready.")
        import importlib
        import sys

        sys.path.insert(0, str(tmp_path))
        try:
            module = importlib.import_module(name)
            module.hold.delay(str(tmp_path))
        finally:
            sys.path.remove(str(tmp_path))
            sys.modules.pop(name, None)
        _wait_for_file(tmp_path / "started")
        proc.wait_for("plain logger speaking")
        proc.wait_for("task logger speaking")
        lines = proc.output().splitlines()
        task_line = next(line for line in lines if "task logger speaking" in line)
        plain_line = next(line for line in lines if "plain logger speaking" in line)
        # The child's records carry its own name, as Celery's do; never the parent's.
        assert "ForkPoolWorker-1" in task_line, task_line
        assert "ForkPoolWorker-1" in plain_line, plain_line
        assert "MainProcess" not in task_line + plain_line

        proc.process.send_signal(signal.SIGINT)
        proc.wait_for("press Ctrl-C again to stop running tasks")
        # The task is still running: a warm shutdown waits for it.
        assert proc.process.poll() is None
        proc.process.send_signal(signal.SIGINT)
        proc.wait_for("Cold shutdown (SIGINT)")
        assert proc.process.wait(30) is not None
    hint = next(line for line in proc.output().splitlines() if "Warm shutdown" in line)
    assert "Warm shutdown (SIGINT)" in hint


def test_task_module_left_on_celerys_decorators_gets_one_warning(tmp_path: Path) -> None:
    name = f"mkw_{uuid.uuid4().hex[:8]}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "celery.py").write_text(textwrap.dedent(f"""
        from celeriac import Celery
        app = Celery({name!r}, broker="memory://leftover", include=[{name + '.tasks'!r}])

        @app.task
        def native():
            return 1
    """))
    (package / "tasks.py").write_text(textwrap.dedent("""
        from celery import shared_task

        @shared_task
        def add(x, y):
            return x + y

        @shared_task(name="custom.mul")
        def mul(x, y):
            return x * y
    """))
    with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "solo", "-l", "info"]) as proc:
        proc.wait_for("ready.")
        assert proc.stop() == 0
    warnings = [line for line in proc.output().splitlines() if "WARNING/" in line
                and "decorators" in line]
    assert len(warnings) == 1, proc.output()
    assert f"] {name}/tasks.py: add, mul use Celery's decorators" in warnings[0], warnings[0]
    assert "from celery import" in warnings[0] and "celeriac" in warnings[0]


def _worker_log_of(tmp_path: Path, imports: str) -> tuple[str, str]:
    """Start a solo worker on a one-task module with ``imports`` at its top, stop it once
    ready; its module name and its log."""
    name = f"mkw_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(imports) + textwrap.dedent(f"""
        app = Celery({name!r}, broker="memory://{name}")

        @shared_task
        def add(x, y):
            return x + y
    """))
    with WorkerProcess(tmp_path, ["-A", name, "worker", "-P", "solo", "-l", "info"]) as proc:
        proc.wait_for("ready.")
        assert proc.stop() == 0
    return name, proc.output()


def test_one_leftover_task_is_named_in_the_singular(tmp_path: Path) -> None:
    name, log = _worker_log_of(tmp_path, """
        from celery import shared_task
        from celeriac import Celery
    """)
    assert (f"] {name}.py: add uses Celery's decorators (from celery import ...), so it is "
            "registered with Celery's app, not this one; import it from celeriac "
            f"(celeriac migrate-imports . shows how)") in log, log


def test_no_warning_for_celeriac_tasks(tmp_path: Path) -> None:
    name, log = _worker_log_of(tmp_path, """
        import celery  # imported (Celery installed beside celeriac) but not used for tasks
        from celeriac import Celery, shared_task
    """)
    assert "decorators" not in log
    assert f"{name}.add" in log
