"""tests/django/settings.py for beat subprocesses sharing the test SQLite file: a longer lock
timeout, since two beats and the test write to it at once."""

from __future__ import annotations

from tests.django.settings import *  # noqa: F403
from tests.django.settings import DATABASES

DATABASES = {**DATABASES, "default": {**DATABASES["default"], "OPTIONS": {"timeout": 30}}}
