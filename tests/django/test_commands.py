"""``manage.py celeriac_worker`` / ``celeriac_beat`` become the celeriac CLI for the project."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from celeriac import Celery
from celeriac.contrib.django.management.base import celeriac_argv, default_app, split_app
from tests.django.test_fixup import demo_env, migrate, start, stop, wait_for


def test_worker_command_runs_the_projects_tasks(tmp_path: Path) -> None:
    env = demo_env(tmp_path)
    migrate(env)
    log = tmp_path / "worker.log"
    worker = start(
        [sys.executable, "manage.py", "celeriac_worker", "-l", "info", "--pool", "solo"], env, log
    )
    client = Celery("client", broker=env["CELERY_DEMO_BROKER_URL"], set_as_current=False)
    try:
        output = wait_for(log, "ready.", worker)
        assert "celery_app.tasks.user_count" in output
        assert client.send_task("celery_app.tasks.user_count").get(timeout=30) == 0
    finally:
        stop(worker)
        client.close()


@pytest.mark.slow
def test_beat_command_sends_the_settings_schedule(tmp_path: Path) -> None:
    env = demo_env(tmp_path, "celery_demo.settings_old")
    log = tmp_path / "beat.log"
    beat = start(
        [sys.executable, "manage.py", "celeriac_beat", "--app=celery_demo", "-l", "info",
         "-s", str(tmp_path / "schedule")],
        env, log,
    )
    try:
        wait_for(log, "Sending due task add-every-10-seconds", beat, timeout=40)
    finally:
        stop(beat)


def test_app_option_is_taken_out_of_the_arguments() -> None:
    assert split_app(["-A", "proj", "-l", "info"]) == ("proj", ["-l", "info"])
    assert split_app(["--app=proj.celery:app", "--pool", "solo"]) == (
        "proj.celery:app", ["--pool", "solo"],
    )
    assert split_app(["-l", "info"]) == (None, ["-l", "info"])
    with pytest.raises(CommandError):
        split_app(["--app"])


def test_default_app_is_the_settings_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "celery_demo.settings")
    assert default_app() == "celery_demo"
    assert celeriac_argv("beat", ["-l", "info"]) == [
        sys.executable, "-m", "celeriac", "-A", "celery_demo", "beat", "-l", "info",
    ]
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "settings")
    with pytest.raises(CommandError, match="CELERIAC_APP"):
        default_app()


def test_celeriac_app_setting_wins(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "celery_demo.settings")
    settings.CELERIAC_APP = "proj.celery:app"
    assert default_app() == "proj.celery:app"
