"""Run ``celeriac`` commands and workers as real subprocesses (shared by the CLI tests and the
tutorial test)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]
#: environment variables that would point the CLI at some other app
_APP_ENVVARS = ("CELERIAC_APP", "CELERY_APP")


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _APP_ENVVARS}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
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


class WorkerProcess:
    """A worker subprocess whose output (stdout and stderr) goes to a log file."""

    def __init__(self, cwd: Path, args: list[str], env: dict[str, str] | None = None,
                 command: list[str] | None = None) -> None:
        self.log_path = cwd / f"worker-{uuid.uuid4().hex[:8]}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            (command or [sys.executable, "-m", "celeriac"]) + args,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=cli_env(env),
        )

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, text: str, timeout_s: float = 30) -> None:
        """Wait until ``text`` appears in the output; fail early if the worker exits."""
        deadline = time.monotonic() + timeout_s
        while text not in self.output():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"worker exited ({self.process.returncode}) before printing {text!r}:\n"
                    f"{self.output()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} after {timeout_s}s:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM (warm shutdown) and the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()
