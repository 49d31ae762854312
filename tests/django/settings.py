"""The one Django settings module for the whole test run (Django is configured once per pytest
process: every Django test lives under tests/django/ and uses these settings).

Real worker and beat subprocesses of a test use the same module: run them with
``DJANGO_SETTINGS_MODULE=tests.django.settings`` and the repository root on ``PYTHONPATH``
(``tests/django/conftest.py``'s ``django_subprocess_env`` fixture builds that environment). The
database names come from environment variables set once by the test process and inherited by its
subprocesses, so a worker opens the very test database the test wrote to (and two pytest runs
side by side never share one).
"""

from __future__ import annotations

import os
import tempfile

_DIR = os.environ.setdefault(
    "CELERIAC_DJANGO_TEST_DIR", tempfile.mkdtemp(prefix="celeriac-django-tests-")
)
_PG_NAME = os.environ.setdefault("CELERIAC_DJANGO_TEST_PG", f"celeriac_django_{os.getpid()}")
_SQLITE = os.path.join(_DIR, "test.sqlite3")

SECRET_KEY = "celeriac-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.django.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "celeriac.contrib.django",
    "celeriac.contrib.django.results",
    "celeriac.contrib.django.beat",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# NAME and TEST NAME are the same file / database: a worker subprocess (not in test mode) opens
# the database the test runner created. "postgres" is for tests that must run on PostgreSQL
# (pytest.mark.django_db(databases=["default", "postgres"])); it is created only when such a
# test is collected.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _SQLITE,
        "TEST": {"NAME": _SQLITE},
    },
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _PG_NAME,
        "USER": os.environ.get("PGUSER", "postgres"),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        # set up on its own too (django_db(databases=["postgres"])), not only after "default"
        "TEST": {"NAME": _PG_NAME, "DEPENDENCIES": []},
    },
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
