"""Helpers of the tests that drive real worker processes: a task module written into a
temporary directory and imported here too, a worker started on it, and waiting for a
condition. Starting processes is :mod:`tests.support.workers`' (shared by every suite)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.workers import REPO_ROOT, spawn, wait_until, worker_code

__all__ = ["REPO_ROOT", "start_worker", "task_module", "wait_until", "worker_code"]


def task_module(name: str, source: str, root: Path, monkeypatch: pytest.MonkeyPatch,
                env: dict[str, str]) -> Iterator[Any]:
    """Write ``source`` as ``root/<name>.py``, set ``env``, import it; closes its app and
    forgets it afterwards (use with ``yield from`` in a fixture)."""
    (root / f"{name}.py").write_text(source)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(root))
    sys.modules.pop(name, None)
    module = importlib.import_module(name)
    try:
        yield module
    finally:
        module.app.close()
        sys.modules.pop(name, None)


def start_worker(root: Path, code: str, env: dict[str, str] | None = None,
                 log_name: str = "worker.log") -> subprocess.Popen[bytes]:
    """Run ``code`` in ``root`` (importable from there), output appended to ``log_name``."""
    return spawn(root, [sys.executable, "-c", code], env, log_name)
