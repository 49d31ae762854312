"""Run ``celeriac`` commands and workers as real subprocesses (shared by the CLI tests and the
tutorial test)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.workers import LoggedProcess, child_env

ROOT = Path(__file__).resolve().parents[2]
#: environment variables that would point the CLI at some other app
_APP_ENVVARS = ("CELERIAC_APP", "CELERY_APP")


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without the variables naming an app, plus ``extra``, with this
    checkout on PYTHONPATH."""
    env = child_env(extra=extra)
    for name in _APP_ENVVARS:
        if name not in (extra or {}):
            env.pop(name, None)
    return env


def run_cli(
    args: list[str],
    cwd: Path,
    *,
    timeout_s: float = 60,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m celeriac ARGS`` in ``cwd``; returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "celeriac", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        input=input_text,
        env=cli_env(env),
        check=False,
    )


class WorkerProcess(LoggedProcess):
    """A worker subprocess (``python -m celeriac ARGS``, or ``command`` + ARGS) whose output
    (stdout and stderr) goes to a log file."""

    def __init__(self, cwd: Path, args: list[str], env: dict[str, str] | None = None,
                 command: list[str] | None = None) -> None:
        log_name = f"worker-{uuid.uuid4().hex[:8]}.log"
        argv = (command or [sys.executable, "-m", "celeriac"]) + args
        with open(cwd / log_name, "wb") as log:
            process = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                       env=cli_env(env))
        super().__init__(process, cwd / log_name, "worker")
