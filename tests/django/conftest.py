"""Django for the tests under tests/django/: configured here, once per pytest process, from
``tests/django/settings.py``.

The settings are applied with ``settings.configure()`` rather than by exporting
``DJANGO_SETTINGS_MODULE``: an exported variable would reach every subprocess the rest of the
suite starts (workers, beats, the CLI), and celeriac's Django fix-up turns on when it sees that
variable. Tests here that start a real worker or beat pass ``django_subprocess_env`` instead.
pytest-django (the ``test`` extra) provides ``django_db``, ``client``, ``settings``...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import django
import pytest
from django.conf import settings

from tests.django import settings as test_settings

REPO = Path(__file__).resolve().parents[2]

if not settings.configured:
    settings.configure(
        **{name: getattr(test_settings, name) for name in dir(test_settings) if name.isupper()}
    )
# Now, not at pytest-django's session start: in a run from the repository root this conftest
# loads during collection, and test modules here import models at module level.
django.setup()


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a worker/beat/manage.py subprocess using the test settings (and the
    test databases, through the variables tests/django/settings.py set)."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.django.settings"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [env.get("PYTHONPATH", "")])]
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@pytest.fixture
def django_subprocess_env() -> dict[str, str]:
    return subprocess_env()


@pytest.fixture
def python() -> str:
    return sys.executable
