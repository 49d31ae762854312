"""One clear line for each mistake a user can make, instead of a traceback.

Rules:

* A mistake in the user's own input (an ``-A`` that names nothing, a task module that fails to
  import, a misspelt setting value such as ``timezone``) ends the command with ONE line on
  stderr, ``Error: ...``, naming what the user wrote (file and line, setting and value, URL) and
  the fix, and exit status 2 (:data:`EX_MISTAKE`, click's status for usage errors).
* ``--debug`` or ``-l debug`` shows the traceback instead (the caller re-raises).
* Anything else (a bug in celeriac, a task failing at run time) is not explained here: it
  keeps its traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection

import click

from celeriac.cli.context import CLIContext
from celeriac.cli.discovery import HEADLINE, AppNotFound
from celeriac.cli.usercode import foreign_task_modules, import_error_line
from celeriac.exceptions import ImproperlyConfigured

__all__ = ["EX_MISTAKE", "Mistake", "explain", "require_tasks", "warn_foreign_tasks"]

logger = logging.getLogger("celeriac.worker")

#: exit status of a command ended by a user's mistake (click's usage-error status)
EX_MISTAKE = 2
#: names of celeriac's built-in tasks (Celery's names: celery.map, celery.chunks...)
BUILTIN_PREFIX = "celery."


class Mistake(click.ClickException):
    """Ends a command with ``Error: <one line>`` and exit status 2."""

    exit_code = EX_MISTAKE

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def explain(exc: BaseException, listed: Collection[str] = ()) -> Mistake | None:
    """The one-line :class:`Mistake` for ``exc`` when it is the user's mistake, else None.
    ``listed``: the modules the app was told to import (``include``, ``imports``, ``-I``)."""
    if isinstance(exc, click.ClickException | click.exceptions.Exit | click.Abort):
        return None
    if isinstance(exc, AppNotFound):
        return Mistake(f"Invalid value for '-A' / '--app': {HEADLINE} {exc.reason}")
    if isinstance(exc, ImproperlyConfigured):
        return Mistake(str(exc))
    line = import_error_line(exc)
    if line is not None:
        return Mistake(line)
    return _missing_listed_module(exc, listed)


def _missing_listed_module(exc: BaseException, listed: Collection[str]) -> Mistake | None:
    """A module named in ``include``/``imports`` that Python cannot find (the name itself, or
    its package, is missing; a missing import inside it is :func:`import_error_line`'s)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    for module in listed:
        if module == exc.name or module.startswith(f"{exc.name}."):
            return Mistake(f"include names the module {module!r}, which cannot be imported "
                           f"(ModuleNotFoundError: {exc}): correct the name, or run from the "
                           "directory that holds it (--workdir)")
    return None


def require_tasks(cli: CLIContext) -> None:
    """A worker of the default app (no ``-A``, no ``$CELERIAC_APP``) with no task of the user's
    has nothing to run: say so, before anything connects (the default broker would create
    ``celeriac.db`` in the current directory)."""
    app = cli.app  # loads it, which tells whether it is the default one
    if not cli.default_app:
        return
    app.ensure_configured()
    if any(not name.startswith(BUILTIN_PREFIX) for name in app.tasks):
        return
    raise Mistake(
        "no app given, so this worker has no tasks to run: name the module holding your "
        "Celery app with -A (celeriac -A proj worker) or set CELERIAC_APP=proj"
    )


def warn_foreign_tasks() -> None:
    """One warning line per module whose tasks use Celery's decorators, not celeriac's."""
    for filename, names in foreign_task_modules():
        several = ", " in names
        logger.warning(
            "%s: %s %s Celery's decorators (from celery import ...), so %s registered "
            "with Celery's app, not this one; import %s from celeriac "
            "(celeriac migrate-imports %s shows how)",
            filename, names, "use" if several else "uses", "they are" if several else "it is",
            "them" if several else "it", os.path.dirname(filename) or ".",
        )
