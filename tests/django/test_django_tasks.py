"""Django's Tasks framework on celeriac: ``@task`` functions enqueued through Django's API run on
a real worker; status, return value and errors read back through Django's API; a message naming
anything but a registered Django task runs nothing."""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from celeriac.contrib.django import tasks as backend_module
from celeriac.contrib.django.tasks import RUNNER_NAME, UnknownDjangoTask, registered_task
from tests.cli.workers import WorkerProcess
from tests.django import tasks_settings
from tests.django.conftest import subprocess_env

try:
    from django.tasks import TaskResultStatus, default_task_backend  # type: ignore[attr-defined]
    from django.tasks.exceptions import TaskResultDoesNotExist  # type: ignore[import-not-found]
except ImportError:
    from django_tasks import TaskResultStatus, default_task_backend
    from django_tasks.exceptions import TaskResultDoesNotExist


@pytest.fixture
def funcs(settings: SettingsWrapper) -> ModuleType:
    """The @task module, defined while TASKS names CeleriacBackend."""
    settings.TASKS = tasks_settings.TASKS
    return importlib.import_module("tests.django.tasks_funcs")


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    cwd = tmp_path_factory.mktemp("djtasks")
    env = subprocess_env(DJANGO_SETTINGS_MODULE="tests.django.tasks_settings")
    process = WorkerProcess(cwd, ["-A", "tests.django.tasks_app", "worker", "-P", "solo",
                                  "-l", "info"], env=env)
    try:
        process.wait_for("ready.", timeout_s=60)
        yield process
        assert process.stop() == 0, process.output()
    finally:
        process.kill()


def finished(result: Any, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while not result.is_finished:
        assert time.monotonic() < deadline, f"{result.id} still {result.status}"
        time.sleep(0.1)
        result.refresh()
    return result


def test_enqueued_task_runs_on_a_worker(funcs: ModuleType, worker: WorkerProcess) -> None:
    result = funcs.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert result.backend == "default" and result.args == [2, 3]
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    # Read back by id through Django's API, from "another place" (the backend, the task).
    again = default_task_backend.get_result(result.id)
    assert again.status == TaskResultStatus.SUCCESSFUL and again.return_value == 5
    assert again.task.func is funcs.add.func
    assert funcs.add.get_result(result.id).return_value == 5
    assert f"Task {RUNNER_NAME}[{result.id}] succeeded" in worker.output()

    greeting = finished(funcs.greet.enqueue("ada", punctuation="?"))
    value = greeting.return_value
    assert value["text"] == "hello ada?"
    assert value["pid"] == worker.process.pid != os.getpid()


def test_failure_and_context_read_back(funcs: ModuleType, worker: WorkerProcess) -> None:
    failed = finished(funcs.fail.enqueue("boom"))
    assert failed.status == TaskResultStatus.FAILED
    assert failed.errors[0].exception_class_path == "builtins.ValueError"
    assert "boom" in failed.errors[0].traceback
    with pytest.raises(ValueError, match="Task failed"):
        failed.return_value  # noqa: B018 - Django's API raises here

    with_context = finished(funcs.with_context.enqueue("t"))
    assert with_context.return_value == ["t", 1, with_context.id]


def test_a_message_naming_a_plain_function_runs_nothing(
    funcs: ModuleType, worker: WorkerProcess, tmp_path: Path
) -> None:
    from tests.django.tasks_app import app

    marker = tmp_path / "ran.txt"
    refused = []
    for path in ("tests.django.tasks_funcs.not_a_task", "os.remove", "this.s"):
        async_result = app.send_task(RUNNER_NAME, [path, [str(marker)], {}])
        async_result.get(timeout=30, propagate=False)
        assert async_result.state == "FAILURE"
        refused.append(type(async_result.result).__name__)
    assert refused == ["UnknownDjangoTask"] * 3
    assert not marker.exists()
    assert "is not a Django task defined with CeleriacBackend" in worker.output()


def test_lookup_never_imports_what_a_message_or_id_names(funcs: ModuleType) -> None:
    sys.modules.pop("this", None)
    with pytest.raises(UnknownDjangoTask):
        registered_task("this.s")
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("0:this.s")
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("no-module-path")
    assert "this" not in sys.modules
    assert registered_task("tests.django.tasks_funcs.add") is funcs.add


def test_options_become_message_options(funcs: ModuleType, settings: SettingsWrapper,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    settings.TASKS = {"default": {**tasks_settings.TASKS["default"],
                                  "QUEUES": ["default", "slow"]}}
    sent: list[tuple[Any, ...]] = []
    from tests.django.tasks_app import app

    monkeypatch.setattr(app, "send_task", lambda *a, **kw: sent.append((a, kw)))
    when = datetime(2030, 1, 1, tzinfo=UTC)
    result = funcs.add.using(queue_name="slow", priority=100, run_after=when).enqueue(1, 2)
    (args, options), = sent
    assert args == (RUNNER_NAME, ["tests.django.tasks_funcs.add", [1, 2], {}])
    assert options == {"task_id": result.id, "queue": "slow", "priority": 9, "eta": when}
    assert result.id.endswith(":tests.django.tasks_funcs.add")
    assert backend_module.HAVE_TASKS
