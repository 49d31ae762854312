"""Eager mode and the ``celeriac_eager`` pytest fixture (celeriac.contrib.django.testing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from celeriac import Celery
from celeriac.contrib.django.testing import eager
from tests.django.test_fixup import DEMO, demo_env


@pytest.mark.django_db
def test_eager_task_runs_in_the_callers_transaction(app: Celery) -> None:
    @app.task
    def make_user(name: str) -> int:
        return int(User.objects.create(username=name).pk)

    with eager(app):
        pk = make_user.delay("grace").get()
    assert User.objects.get(pk=pk).username == "grace"
    assert app.conf.task_always_eager is False  # put back


def test_eager_propagates_errors(app: Celery) -> None:
    @app.task
    def boom() -> None:
        raise KeyError("x")

    with eager(app), pytest.raises(KeyError):
        boom.delay()


def test_the_fixture_plugin_in_a_django_projects_own_tests(tmp_path: Path) -> None:
    """examples/django_demo's pytest.ini loads the plugin; its tests use ``celeriac_eager``
    with no broker or worker running."""
    env = demo_env(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "celery_app/tests.py"],
        cwd=DEMO, env=env, capture_output=True, text=True, timeout=100,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout
