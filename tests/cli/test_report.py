"""``celeriac report``: versions, platform and the changed settings, secrets never shown."""

from __future__ import annotations

import platform
from pathlib import Path

import celeriac
from tests.cli.project import make_project
from tests.cli.workers import run_cli


def test_report_shows_versions_and_settings_without_secrets(tmp_path: Path) -> None:
    name = make_project(tmp_path)
    done = run_cli(["-A", name, "-b", "redis://user:hunter2@127.0.0.1:6379/12", "report"],
                   tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"celeriac:{celeriac.__version__}" in out
    assert f"python:{platform.python_version()}" in out
    assert f"system:{platform.system()}" in out
    assert f"app      -> {name}" in out
    assert "transport:redis://user:**@127.0.0.1:6379/12" in out
    assert "my_api_key: ********" in out
    assert "hunter2" not in out and "s3cr3t-key" not in out


def test_report_without_an_app(tmp_path: Path) -> None:
    done = run_cli(["report"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "software -> celeriac:" in done.stdout
