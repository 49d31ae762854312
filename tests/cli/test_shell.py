"""``celeriac shell``: a real REPL (the standard one and IPython) with the app, its tasks and
celeriac's names loaded, fed on stdin."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.project import make_project
from tests.cli.workers import run_cli

PROBE = (
    "print('SUM', add(2, 3))\n"
    "print('APP', type(app).__module__, celery is app, app.main)\n"
    "print('NAMES', chain.__module__.split('.')[0], group.__module__.split('.')[0], "
    "AsyncResult.__module__)\n"
)


@pytest.mark.parametrize("flag", ["--python", "--ipython"])
def test_shell_has_the_app_and_tasks(tmp_path: Path, flag: str) -> None:
    if flag == "--ipython":
        pytest.importorskip("IPython")
    name = make_project(tmp_path)
    done = run_cli(["-A", name, "shell", flag], tmp_path, input_text=PROBE,
                   env={"IPYTHONDIR": str(tmp_path / ".ipython")})
    assert done.returncode == 0, done.stderr
    assert "SUM 5" in done.stdout
    assert f"APP celeriac.app.base True {name}" in done.stdout
    assert "NAMES celeriac celeriac celeriac.result" in done.stdout
    assert f"app='{name}'; tasks: add" in done.stderr


def test_default_is_ipython_when_installed(tmp_path: Path) -> None:
    pytest.importorskip("IPython")
    name = make_project(tmp_path)
    done = run_cli(["-A", name, "shell"], tmp_path,
                   input_text="import sys; print('IPY', 'IPython' in sys.modules)\n",
                   env={"IPYTHONDIR": str(tmp_path / ".ipython")})
    assert done.returncode == 0, done.stderr
    assert "IPY True" in done.stdout


def test_without_tasks(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    done = run_cli(["-A", name, "shell", "--python", "-T"], tmp_path,
                   input_text="print('HAS_ADD', 'add' in dir())\n")
    assert done.returncode == 0, done.stderr
    assert "HAS_ADD False" in done.stdout


def test_green_threads_get_one_line(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    done = run_cli(["-A", name, "shell", "--python", "--gevent"], tmp_path,
                   input_text="print('STILL', 1)\n")
    assert done.returncode == 0, done.stderr
    assert "celeriac: --gevent: celeriac has no green-thread pools" in done.stderr
    assert "STILL 1" in done.stdout


def test_missing_bpython_is_a_usage_error(tmp_path: Path) -> None:
    pytest.importorskip("IPython")  # any interpreter: the check is bpython's absence
    try:
        import bpython  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("bpython is installed")
    done = run_cli(["shell", "--bpython"], tmp_path, input_text="")
    assert done.returncode == 2
    assert "bpython is not installed (pip install bpython)" in done.stderr
