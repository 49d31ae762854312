"""``celeriac migrate-imports DIR``: celery imports become celeriac imports; nothing else
changes; a dry run unless --write."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner

from celeriac.cli.main import main
from tests.cli.workers import cli_env

CELERY_MODULE = textwrap.dedent('''\
    """Tasks. from celery import shared_task (a docstring stays)"""
    import os, celery
    import celery.schedules
    import celery.result as result_mod
    from celery import shared_task, Celery  # from celery import Celery
    from celery.schedules import (
        crontab,
    )
    from celery.exceptions import Retry
    from celery.app.task import Task
    from celery.utils.log import get_task_logger

    app = Celery("migrated", broker="memory://")
    TEXT = "import celery"
    every_minute = celery.schedules.crontab()
    KINDS = (celery.Celery, result_mod.AsyncResult, crontab, Retry, Task)
    logger = get_task_logger(__name__)
''')


def _run(*args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(main, ["migrate-imports", *args])
    return outcome.exit_code, outcome.output


def test_dry_run_prints_a_diff_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tasks.py"
    path.write_text(CELERY_MODULE)
    code, output = _run(str(tmp_path))
    assert code == 0, output
    assert path.read_text() == CELERY_MODULE
    assert f"--- a/{path}" in output
    assert "-from celery import shared_task, Celery  # from celery import Celery" in output
    assert "+from celeriac import shared_task, Celery  # from celery import Celery" in output
    assert "1 file would change (run again with --write to apply)." in output


def test_write_rewrites_imports_only(tmp_path: Path) -> None:
    path = tmp_path / "tasks.py"
    path.write_text(CELERY_MODULE)
    code, output = _run(str(tmp_path), "--write")
    assert code == 0, output
    text = path.read_text()
    assert text == CELERY_MODULE.replace(
        "import os, celery\n", "import os, celeriac as celery\n"
    ).replace(
        "import celery.schedules\n", "import celeriac.schedules, celeriac as celery\n"
    ).replace(
        "import celery.result as", "import celeriac.result as"
    ).replace(
        "\nfrom celery import shared_task", "\nfrom celeriac import shared_task"
    ).replace(
        "from celery.schedules import (", "from celeriac.schedules import ("
    ).replace(
        "from celery.exceptions", "from celeriac.exceptions"
    ).replace(
        "from celery.app.task", "from celeriac.app.task"
    ).replace(
        "from celery.utils.log", "from celeriac.utils.log"
    )


def test_the_rewritten_module_runs_on_celeriac(tmp_path: Path) -> None:
    (tmp_path / "migrated_tasks.py").write_text(CELERY_MODULE)
    assert _run(str(tmp_path), "--write")[0] == 0
    # celery is installed here too: the check is that every name now comes from celeriac
    probe = ("import migrated_tasks as m; "
             "print(sorted({k.__module__.split('.')[0] for k in m.KINDS}), "
             "type(m.app).__module__.split('.')[0], m.celery.__name__, "
             "type(m.every_minute).__module__.split('.')[0])")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, env=cli_env(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['celeriac']", "celeriac", "celeriac", "celeriac"]


def test_names_celeriac_lacks_are_left_with_one_line(tmp_path: Path) -> None:
    source = "from celery import bootsteps\nfrom celery.contrib import abortable\nimport celeryx\n"
    path = tmp_path / "steps.py"
    path.write_text(source)
    code, output = _run(str(path), "--write")
    assert code == 0
    assert path.read_text() == source
    assert f"{path}:1: bootsteps from celery: celeriac has no counterpart; left as it is" \
        in output
    assert f"{path}:2: abortable from celery.contrib" in output
    assert "0 files changed." in output


def test_bad_files_and_tool_dirs_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("from celery import (\n")
    venv = tmp_path / ".venv" / "lib"
    venv.mkdir(parents=True)
    (venv / "dep.py").write_text("import celery\n")
    (tmp_path / "latin.py").write_bytes(b"# \xe9\nimport celery\n")
    code, output = _run(str(tmp_path), "--write")
    assert code == 0
    assert "broken.py: skipped, not valid Python" in output
    assert "latin.py: skipped, not valid Python" in output
    assert (venv / "dep.py").read_text() == "import celery\n"
    assert "Traceback" not in output


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    code, output = _run(str(tmp_path / "nope"))
    assert code == 2
    assert "nope" in output


def test_kombus_queue_and_exchange_become_celeriacs(tmp_path: Path) -> None:
    source = textwrap.dedent('''\
        from kombu import Exchange, Queue
        from kombu import Connection, Queue as Q
        import kombu

        task_queues = [Queue("video", Exchange("media", type="topic"), routing_key="v.#")]
    ''')
    path = tmp_path / "settings.py"
    path.write_text(source)
    code, output = _run(str(path), "--write")
    assert code == 0, output
    assert path.read_text() == source.replace("from kombu import Exchange, Queue",
                                              "from celeriac import Exchange, Queue")
    assert f"{path}:2: Connection from kombu: celeriac has no counterpart; left as it is" \
        in output
    probe = ("import settings, celeriac; q = settings.task_queues[0]; "
             "print(type(q) is celeriac.Queue, q.exchange.type)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, env=cli_env(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "topic"]
