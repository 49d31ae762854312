"""The public API: ``celeriac.__all__`` and the Celery import paths users already have."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

import celeriac

CANVAS_NAMES = frozenset(
    {"signature", "subtask", "chain", "chord", "group", "chunks", "xmap", "xstarmap",
     "maybe_signature", "Signature"}
)
HAS_CANVAS = importlib.util.find_spec("celeriac.canvas") is not None

REEXPORT_MODULES = [
    "celeriac.exceptions",
    "celeriac.result",
    "celeriac.app",
    "celeriac.app.task",
    "celeriac.states",
    "celeriac.serialization",
]


def _isort_key(name: str) -> tuple[int, str]:
    """ruff's RUF022 "isort-style" order: CONSTANTS, then Classes, then everything else."""
    if name.isupper() and len(name) > 1:
        return 0, name
    if name[:1].isupper():
        return 1, name
    return 2, name


def test_all_is_sorted() -> None:
    assert celeriac.__all__ == sorted(celeriac.__all__, key=_isort_key)
    assert len(set(celeriac.__all__)) == len(celeriac.__all__)


@pytest.mark.parametrize("name", sorted(set(celeriac.__all__) - CANVAS_NAMES))
def test_public_name_resolves(name: str) -> None:
    assert getattr(celeriac, name) is not None


@pytest.mark.skipif(not HAS_CANVAS, reason="celeriac/canvas.py does not exist yet")
@pytest.mark.parametrize("name", sorted(CANVAS_NAMES))
def test_canvas_name_resolves(name: str) -> None:
    assert name in celeriac.__all__
    assert getattr(celeriac, name) is getattr(importlib.import_module("celeriac.canvas"), name)


def test_canvas_names_are_all_promised() -> None:
    assert set(celeriac.__all__) >= CANVAS_NAMES


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        celeriac.no_such_thing  # noqa: B018
    assert not hasattr(celeriac, "no_such_thing")


@pytest.mark.parametrize("module_name", REEXPORT_MODULES)
def test_module_all_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__all__
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    assert len(set(module.__all__)) == len(module.__all__)


def test_version() -> None:
    assert isinstance(celeriac.__version__, str)
    assert tuple(int(p) for p in celeriac.__version__.split(".")) == celeriac.VERSION


def test_top_level_celery_imports() -> None:
    from celeriac import Celery, Task, shared_task, states
    from celeriac.app.base import Celery as AppCelery
    from celeriac.app.shared import shared_task as app_shared_task
    from celeriac.task import Task as CoreTask

    assert Celery is AppCelery
    assert shared_task is app_shared_task
    assert Task is CoreTask
    assert states.SUCCESS == "SUCCESS"


def test_result_import_path() -> None:
    from celeriac.result import (
        AsyncResult,
        EagerResult,
        GroupResult,
        ResultSet,
        allow_join_result,
    )

    assert issubclass(EagerResult, AsyncResult)
    assert issubclass(GroupResult, ResultSet)
    with allow_join_result():
        pass


def test_exceptions_import_path() -> None:
    from celeriac.exceptions import (
        Ignore,
        MaxRetriesExceededError,
        Reject,
        Retry,
        SoftTimeLimitExceeded,
        TimeLimitExceeded,
        TimeoutError,
    )

    for cls in (Retry, Ignore, Reject, MaxRetriesExceededError, SoftTimeLimitExceeded,
                TimeLimitExceeded, TimeoutError):
        assert issubclass(cls, Exception)


def test_app_task_import_path() -> None:
    from celeriac.app.task import Context, Task

    assert Task is celeriac.Task
    assert Context(id="x").id == "x"


def test_app_shared_task_import_path() -> None:
    from celeriac.app import Celery, shared_task

    assert shared_task is celeriac.shared_task
    assert Celery is celeriac.Celery
