"""Helpers of the tests that drive real worker processes: a task module written into a
temporary directory and imported here too, a worker started on it, and waiting for a
condition."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


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


def worker_code(module: str, **worker_options: Any) -> str:
    """``python -c`` source that runs a Worker on ``module.app`` and exits with its status."""
    options = ", ".join(f"{key}={value!r}" for key, value in worker_options.items())
    return (f"import sys; import {module}; from celeriac.worker import Worker; "
            f"sys.exit(Worker({module}.app, {options}).start())")


def start_worker(root: Path, code: str, env: dict[str, str] | None = None,
                 log_name: str = "worker.log") -> subprocess.Popen[bytes]:
    """Run ``code`` in ``root`` (importable from there), output appended to ``log_name``."""
    full_env = dict(os.environ, **(env or {}))
    # The checkout under test first, whatever celeriac is installed elsewhere.
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(root), str(REPO_ROOT), full_env.get("PYTHONPATH", "")) if p)
    with open(root / log_name, "ab") as log:
        return subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=log,
                                stderr=subprocess.STDOUT, env=full_env)


def wait_until(predicate: Callable[[], object], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)
