"""tests/django/settings.py plus TASKS naming CeleriacBackend (the ``django.tasks`` tests'
worker; the tests themselves override TASKS the same way)."""

from __future__ import annotations

from tests.django.settings import *  # noqa: F403

TASKS = {
    "default": {
        "BACKEND": "celeriac.contrib.django.tasks.CeleriacBackend",
        "OPTIONS": {"APP": "tests.django.tasks_app:app"},
    }
}
