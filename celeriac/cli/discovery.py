"""Finding the application ``-A``/``--app`` names, the way Celery does.

Accepted forms:

* ``proj``: a module with an attribute ``app`` or ``celery`` that is a Celery app, or a package
  whose ``proj/celery.py`` holds one, or a module holding exactly one app under any name;
* ``proj:app``, ``proj.module:attr``, ``proj.module.attr``: that attribute;
* ``proj:create_app`` or ``proj:create_app()``: a factory, called with no arguments.

The current directory goes first on ``sys.path`` so ``-A proj`` finds ``./proj``.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import types
from typing import Any

from celeriac.app.base import Celery
from celeriac.cli.usercode import import_error_line

__all__ = ["AppNotFound", "find_app", "find_app_in_module"]

HEADLINE = "Unable to load celeriac application."
#: module attributes looked at first, in this order (Celery's)
PREFERRED_ATTRS = ("app", "celery")


class AppNotFound(Exception):
    """``-A`` names nothing that is or makes a Celery application."""

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(f"{HEADLINE}\n{reason}")
        self.reason = reason
        #: True when the module itself does not exist (not: it exists and failed to import)
        self.missing = missing


def add_cwd_to_path() -> None:
    """Put the current directory first on ``sys.path`` (Celery does, so ``-A proj`` works)."""
    cwd = os.getcwd()
    if sys.path[:1] != [cwd]:
        if cwd in sys.path:
            sys.path.remove(cwd)
        sys.path.insert(0, cwd)


def find_app(spec: str) -> Celery:
    """The app ``spec`` names (see the module docstring); raises :class:`AppNotFound`."""
    add_cwd_to_path()
    text = spec.strip()
    call_it = text.endswith("()")
    if call_it:
        text = text[:-2]
    if not text or text.startswith((".", ":")):
        raise AppNotFound(f"{spec!r} is not a module path.")
    obj = _resolve(text)
    if call_it:
        if not callable(obj):
            raise AppNotFound(f"{text} is not callable, so {spec} cannot make an app.")
        obj = _call_factory(obj, text)
    if isinstance(obj, Celery):
        return obj
    if isinstance(obj, types.ModuleType):
        return find_app_in_module(obj)
    if callable(obj):
        app = _call_factory(obj, text)
        if isinstance(app, Celery):
            return app
        raise AppNotFound(f"{text}() returned {type(app).__name__}, not a Celery application.")
    raise AppNotFound(f"{text} is a {type(obj).__name__}, not a Celery application.")


def find_app_in_module(module: types.ModuleType) -> Celery:
    """The app in ``module``: ``app``, ``celery``, the ``<module>.celery`` submodule's app, or
    the one Celery instance the module holds."""
    found = _app_by_attribute(module)
    if found is not None:
        return found
    submodule = getattr(module, "celery", None)
    if not isinstance(submodule, types.ModuleType) and hasattr(module, "__path__"):
        submodule = _import_optional(f"{module.__name__}.celery")
    if isinstance(submodule, types.ModuleType):
        found = _app_by_attribute(submodule) or _single_app(submodule)
        if found is not None:
            return found
    found = _single_app(module)
    if found is not None:
        return found
    foreign = _celery_package_app(module) or (
        _celery_package_app(submodule) if isinstance(submodule, types.ModuleType) else None
    )
    if foreign is not None:
        raise AppNotFound(
            f"{foreign} is an app of the celery package, not celeriac's: change "
            "'from celery import Celery' to 'from celeriac import Celery' "
            "(celeriac migrate-imports DIR rewrites them)."
        )
    raise AppNotFound(
        f"The module {module.__name__} holds no Celery application (looked for the attributes "
        f"'app' and 'celery', the submodule {module.__name__}.celery, and any Celery instance). "
        f"Name it explicitly: -A {module.__name__}:<attribute>."
    )


def _app_by_attribute(module: types.ModuleType) -> Celery | None:
    for attr in PREFERRED_ATTRS:
        value = getattr(module, attr, None)
        if isinstance(value, Celery):
            return value
    return None


def _celery_package_app(module: types.ModuleType) -> str | None:
    """``module:attr`` of an app made with the celery package's own ``Celery`` class (a
    leftover import), if the module holds one."""
    for attr, value in vars(module).items():
        cls = type(value)
        if cls.__name__ == "Celery" and getattr(cls, "__module__", "").startswith("celery."):
            return f"{module.__name__}:{attr}"
    return None


def _single_app(module: types.ModuleType) -> Celery | None:
    apps: dict[int, tuple[str, Celery]] = {}
    for attr, value in vars(module).items():
        if isinstance(value, Celery):
            apps.setdefault(id(value), (attr, value))
    if len(apps) > 1:
        names = ", ".join(sorted(f"{module.__name__}:{attr}" for attr, _ in apps.values()))
        raise AppNotFound(f"The module {module.__name__} holds several apps; choose one: {names}.")
    if apps:
        return next(iter(apps.values()))[1]
    return None


def _resolve(text: str) -> Any:
    """The object ``module:attr``, ``module.attr`` or ``module`` names."""
    if ":" in text:
        module_name, _, attr = text.partition(":")
        return _attribute(_import(module_name), attr, text)
    try:
        return _import(text)
    except AppNotFound as exc:
        module_name, _, attr = text.rpartition(".")
        if not (exc.missing and module_name):
            raise
        try:
            parent = _import(module_name)
        except AppNotFound as parent_exc:
            if parent_exc.missing:
                raise exc from None
            raise
    return _attribute(parent, attr, text)


def _import(module_name: str) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise AppNotFound(f"The module {missing} was not found.", missing=True) from None
        raise AppNotFound(_import_failure(module_name, exc)) from exc
    except Exception as exc:
        raise AppNotFound(_import_failure(module_name, exc)) from exc


def _import_optional(module_name: str) -> types.ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise AppNotFound(_import_failure(module_name, exc)) from exc
    except Exception as exc:
        raise AppNotFound(_import_failure(module_name, exc)) from exc


def _import_failure(module_name: str, exc: BaseException) -> str:
    """One line: the user's file and line that failed and the error (``--debug`` shows the
    whole traceback)."""
    where = import_error_line(exc)
    if where is None:
        where = " ".join("".join(traceback.format_exception_only(exc)).split())
    return f"While importing {module_name!r}: {where}"


def _attribute(module: types.ModuleType, path: str, spec: str) -> Any:
    if not path:
        return module
    obj: Any = module
    for part in path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppNotFound(f"{spec}: module {module.__name__!r} has no attribute {path!r}.")
    return obj


def _call_factory(factory: Any, text: str) -> Any:
    try:
        return factory()
    except TypeError as exc:
        raise AppNotFound(f"Calling {text}() failed: {exc}") from exc
