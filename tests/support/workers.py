"""Real worker processes for tests: start one on a task module, wait until it is ready, stop it
(warm shutdown with SIGTERM, or SIGKILL of its whole process group), read its log.

Rules:
- The worker runs ``Worker(<module>.app, **options).start()`` in a fresh interpreter whose
  ``sys.path`` starts with the task module's directory, then this checkout (whatever celeriac is
  installed elsewhere). Broker and backend URLs reach the task module through ``env``.
- "Ready" means the worker sent ``worker_ready`` (it touches a file then): it consumes from
  then on. A worker that exits before that fails the wait with its log.
- Each worker gets its own session, so :meth:`WorkerProcess.kill` takes prefork children too.
- Its stdout and stderr (logging at INFO) go to ``<root>/<name>.log``, appended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

_BOOT = """\
import logging, pathlib, sys
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
import {module}
from celeriac import signals
from celeriac.worker import Worker
signals.worker_ready.connect(lambda **kw: pathlib.Path({ready!r}).touch())
sys.exit(Worker({module}.app, {options}).start())
"""


def worker_code(module: str, **worker_options: Any) -> str:
    """``python -c`` source that runs a Worker on ``module.app`` and exits with its status."""
    options = ", ".join(f"{key}={value!r}" for key, value in worker_options.items())
    return (f"import sys; import {module}; from celeriac.worker import Worker; "
            f"sys.exit(Worker({module}.app, {options}).start())")


def child_env(root: Path | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus ``extra``, with ``root`` and this checkout first on
    PYTHONPATH and unbuffered output (a log read mid-run shows every line written)."""
    env = dict(os.environ, **(extra or {}))
    first = [str(root)] if root is not None else []
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (*first, str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(root: Path, argv: list[str], env: dict[str, str] | None = None,
          log_name: str = "worker.log", new_session: bool = False) -> subprocess.Popen[bytes]:
    """Run ``argv`` in ``root`` with :func:`child_env`, output appended to ``root/log_name``."""
    with open(root / log_name, "ab") as log:
        return subprocess.Popen(argv, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                env=child_env(root, env), start_new_session=new_session)


def wait_until(predicate: Callable[[], object], timeout_s: float = 20,
               what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what} never became true"
        time.sleep(0.05)


class WorkerProcess:
    """One worker process on ``module`` (a module importable from ``root`` with an ``app``)."""

    def __init__(self, root: Path, module: str, *, hostname: str | None = None,
                 env: dict[str, str] | None = None, **options: Any) -> None:
        self.name = hostname or f"w-{uuid.uuid4().hex[:8]}@test"
        options["hostname"] = self.name
        self.root = root
        tag = f"{self.name.split('@')[0]}-{uuid.uuid4().hex[:6]}"
        self.log_path = root / f"{tag}.log"
        self._ready = root / f"{tag}.ready"
        code = _BOOT.format(module=module, ready=str(self._ready),
                            options=", ".join(f"{k}={v!r}" for k, v in options.items()))
        self.process = spawn(root, [sys.executable, "-c", code], env, self.log_path.name,
                             new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def ready(self, timeout_s: float = 30) -> WorkerProcess:
        """Wait until the worker sent ``worker_ready``; fail early, with its log, if it exits."""
        deadline = time.monotonic() + timeout_s
        while not self._ready.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited ({self.process.returncode}) "
                                     f"before it was ready:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name} not ready after {timeout_s}s:\n"
                                     f"{self.output()}")
            time.sleep(0.05)
        return self

    def wait_for_log(self, text: str, timeout_s: float = 30) -> None:
        """Wait until ``text`` is in the log; fail early if the worker exits."""
        deadline = time.monotonic() + timeout_s
        while text not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from {self.name}:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 30) -> int:
        """Warm shutdown (SIGTERM) and its exit status; SIGKILL if it outlives ``timeout_s``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the worker and every process of its session (prefork children)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()
