"""Workers for tests: real worker processes (start one on a task module, wait until it is ready,
stop it with SIGTERM or SIGKILL its whole process group, read its log), any other child process
logging to a file (:class:`LoggedProcess`: the CLI tests' ``celeriac worker`` runs), and a
worker in a thread of the test process for memory:// (:class:`ThreadWorker`).

Rules for :class:`WorkerProcess`:
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
import threading
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


class LoggedProcess:
    """A child process whose stdout and stderr go to ``log_path`` (see :func:`spawn`)."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path, name: str,
                 *, session: bool = False) -> None:
        """``session``: the process leads a session of its own (``spawn(new_session=True)``),
        so :meth:`kill` takes every process in it."""
        self.process = process
        self.log_path = log_path
        self.name = name
        self.session = session

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, text: str, timeout_s: float = 30) -> None:
        """Wait until ``text`` is in the log; fail early, with the log, if the process exits."""
        deadline = time.monotonic() + timeout_s
        while text not in self.output():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.process.returncode}) before printing {text!r}:\n"
                    f"{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} after {timeout_s}s:\n{self.output()}")
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
        """SIGKILL the process (and, when it leads a session of its own, every process in it:
        prefork children)."""
        if self.session:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        elif self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def __enter__(self) -> LoggedProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()


class WorkerProcess(LoggedProcess):
    """One worker process on ``module`` (a module importable from ``root`` with an ``app``)."""

    def __init__(self, root: Path, module: str, *, hostname: str | None = None,
                 env: dict[str, str] | None = None, **options: Any) -> None:
        name = hostname or f"w-{uuid.uuid4().hex[:8]}@test"
        options["hostname"] = name
        self.root = root
        tag = f"{name.split('@')[0]}-{uuid.uuid4().hex[:6]}"
        self._ready = root / f"{tag}.ready"
        code = _BOOT.format(module=module, ready=str(self._ready),
                            options=", ".join(f"{k}={v!r}" for k, v in options.items()))
        process = spawn(root, [sys.executable, "-c", code], env, f"{tag}.log", new_session=True)
        super().__init__(process, root / f"{tag}.log", f"worker {name}", session=True)
        self.hostname = name

    def ready(self, timeout_s: float = 30) -> WorkerProcess:
        """Wait until the worker sent ``worker_ready``; fail early, with its log, if it exits."""
        deadline = time.monotonic() + timeout_s
        while not self._ready.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.process.returncode}) "
                                     f"before it was ready:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready after {timeout_s}s:\n"
                                     f"{self.output()}")
            time.sleep(0.05)
        return self


class ThreadWorker:
    """A worker in a thread of this process (memory:// lives in one process), with the part
    of Popen the tests use (``poll``, ``send_signal``, ``kill``, ``wait``) and ``stop``."""

    def __init__(self, app: Any, **options: Any) -> None:
        from celeriac.worker import Worker

        self.worker = Worker(app, install_signal_handlers=False, **options)
        self.events = self.worker.events
        self.returncode: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ThreadWorker:
        self.thread.start()
        return self

    def _run(self) -> None:
        self.returncode = self.worker.start()

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self.worker.stop()

    def kill(self) -> None:
        self.worker.stop("cold")

    def wait(self, timeout: float | None = None) -> int:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise subprocess.TimeoutExpired("worker thread", timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def stop(self, timeout_s: float = 20) -> None:
        """Warm shutdown; fails if the thread outlives ``timeout_s``."""
        self.worker.stop()
        self.thread.join(timeout=timeout_s)
        assert not self.thread.is_alive()
