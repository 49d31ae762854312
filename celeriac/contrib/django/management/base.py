"""What ``manage.py celeriac_worker`` and ``celeriac_beat`` share: they become the celeriac
command (``python -m celeriac -A <app> worker|beat ...``, by ``exec``: same process id, same
signals, every option of the CLI), with ``DJANGO_SETTINGS_MODULE`` already set by manage.py so
the fix-up sets Django up.

The app is ``-A``/``--app`` when given, else the ``CELERIAC_APP`` setting, else the package of
the settings module (``celery_demo.settings`` -> ``celery_demo``, the Celery-docs layout).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

APP_OPTIONS = ("-A", "--app")


def default_app() -> str:
    configured = getattr(settings, "CELERIAC_APP", None)
    if configured:
        return str(configured)
    module = os.environ.get("DJANGO_SETTINGS_MODULE") or ""
    package = module.rpartition(".")[0]
    if not package:
        raise CommandError(
            "Which celeriac app? Give -A/--app or set CELERIAC_APP in the settings "
            f"(the settings module {module!r} is not inside the project's package)"
        )
    return package


def split_app(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """``(app, the other arguments)`` out of ``argv`` (``-A x``, ``--app x``, ``--app=x``)."""
    app: str | None = None
    rest: list[str] = []
    items = iter(argv)
    for item in items:
        if item in APP_OPTIONS:
            app = next(items, None)
            if app is None:
                raise CommandError(f"{item} needs a value")
        elif item.startswith("--app="):
            app = item.partition("=")[2]
        else:
            rest.append(item)
    return app, rest


def celeriac_argv(command: str, argv: Sequence[str]) -> list[str]:
    """The celeriac command line a management command runs."""
    app, rest = split_app(argv)
    return [sys.executable, "-m", "celeriac", "-A", app or default_app(), command, *rest]


class CeleriacCommand(BaseCommand):  # type: ignore[misc]  # django has no stubs
    """Hands its whole command line to ``celeriac <command>`` (its own options and ``--help``
    included), so Django's argument parser never sees them."""

    #: the celeriac command to run: "worker" or "beat"
    command = ""
    requires_system_checks: list[str] = []

    def run_from_argv(self, argv: list[str]) -> NoReturn:
        self.become(argv[2:])

    def handle(self, *args: Any, **options: Any) -> NoReturn:  # call_command(...)
        self.become([str(arg) for arg in args])

    def become(self, argv: Sequence[str]) -> NoReturn:
        command = celeriac_argv(self.command, argv)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(command[0], command)
