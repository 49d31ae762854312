"""Where the user's own code is, and what went wrong in it (for one-line messages).

A file is the user's when it is not Python's, not an installed package's and not celeriac's.
"""

from __future__ import annotations

import functools
import os
import site
import sys
import sysconfig
import types
from collections.abc import Iterator
from typing import Any

__all__ = ["foreign_task_modules", "import_error_line", "shown_path"]

_CELERIAC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def import_error_line(exc: BaseException) -> str | None:
    """``proj/tasks.py:3: ModuleNotFoundError: No module named 'requests'`` when ``exc`` was
    raised while Python imported a module of the user's (its code at module level, or a
    SyntaxError in it), else None.

    The line named is the deepest module-level line of the user's own files: the import or
    call in their module that failed, even when the error itself came from a library."""
    if isinstance(exc, SyntaxError) and exc.filename and not exc.filename.startswith("<"):
        where = f"{shown_path(exc.filename)}:{exc.lineno or 0}"
        return f"{where}: {type(exc).__name__}: {exc.msg}"
    frames = list(_frames(exc.__traceback__))
    if not any(_is_import_machinery(f.f_code.co_filename) for f, _ in frames):
        return None
    module_level = [
        (frame, lineno) for frame, lineno in frames
        if frame.f_code.co_name == "<module>" and _is_users(frame.f_code.co_filename)
    ]
    if not module_level:
        return None
    frame, lineno = module_level[-1]
    message = str(exc)
    detail = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return f"{shown_path(frame.f_code.co_filename)}:{lineno}: {detail}"


def _frames(tb: types.TracebackType | None) -> Iterator[tuple[types.FrameType, int]]:
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next


def _is_import_machinery(filename: str) -> bool:
    return filename.startswith("<frozen importlib")


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    dirs.update(site.getsitepackages())
    dirs.add(site.getusersitepackages())
    return (*sorted(os.path.abspath(d) + os.sep for d in dirs), _CELERIAC_DIR)


def _is_users(filename: str) -> bool:
    """A file of the user's project: not Python's, not an installed package's, not ours."""
    if filename.startswith("<"):
        return False
    return not os.path.abspath(filename).startswith(_library_dirs())


def shown_path(filename: str) -> str:
    """``filename`` relative to the current directory when it is inside it."""
    path = os.path.abspath(filename)
    cwd = os.getcwd() + os.sep
    return path[len(cwd):] if path.startswith(cwd) else path


# -- tasks left on Celery's decorators -----------------------------------------------------------

#: names of the callables behind Celery's lazy task proxies (``shared_task``, ``app.task``)
_CELERY_TASK_MAKERS = frozenset({"task_by_cons", "_task_from_fun"})


def _is_celery_task(value: Any) -> bool:
    """Whether ``value`` is a task of the ``celery`` package: never evaluates a lazy proxy
    (that would create Celery's default app), only looks at types."""
    modules = {getattr(klass, "__module__", "") for klass in type(value).__mro__}
    if "celery.app.task" in modules:
        return True
    if "celery.local" not in modules:
        return False
    try:
        maker = object.__getattribute__(value, "_Proxy__local")
    except AttributeError:
        return False
    return getattr(maker, "__name__", None) in _CELERY_TASK_MAKERS


def foreign_task_modules() -> list[tuple[str, str]]:
    """``(module file, task names)`` for each of the user's modules that defines tasks with
    Celery's own decorators (a leftover ``from celery import shared_task``): those tasks
    register with Celery's app, and a celeriac worker never sees them."""
    if "celery" not in sys.modules:
        return []
    found: list[tuple[str, str]] = []
    for module in list(sys.modules.values()):
        try:
            filename = getattr(module, "__file__", None)
            if not isinstance(filename, str) or not _is_users(filename):
                continue
            names = [
                name for name, value in list(vars(module).items())
                if not name.startswith("__") and _is_celery_task(value)
            ]
        except Exception:  # a module object that refuses to be looked at is no evidence
            continue
        if names:
            found.append((shown_path(filename), ", ".join(sorted(names))))
    return sorted(found)
