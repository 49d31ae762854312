"""Helpers of the browser tests: headless Chromium through Playwright (skipped on a laptop
without them, failing in CI), a task module on a SQLite broker and result store, the
dashboard run by its own command (``celeriac -A dashtasks dashboard``) and real worker
processes sending events.

Screenshots go to the test's temporary directory; with ``CELERIAC_SCREENSHOTS=docs`` they are
also written to ``docs/img/dashboard-<page>.png`` (how the pictures in docs/monitoring.md are
made: ``CELERIAC_SCREENSHOTS=docs python -m pytest tests/dashboard/browser``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.worker.support import REPO_ROOT, start_worker, worker_code

CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
DOCS_IMG = REPO_ROOT / "docs" / "img"

TASKS = textwrap.dedent(
    """
    import os, time
    from celeriac import Celery

    app = Celery("dashtasks", broker=os.environ["DASHTASKS_URL"],
                 backend=os.environ["DASHTASKS_URL"])
    app.conf.task_routes = {"dashtasks.parked": {"queue": "parked"}}
    app.conf.task_send_sent_event = True

    @app.task(name="dashtasks.add")
    def add(x, y):
        return x + y

    @app.task(name="dashtasks.echo")
    def echo(*args, **kwargs):
        return [list(args), kwargs]

    @app.task(name="dashtasks.slow")
    def slow(seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.05)
        return seconds

    @app.task(name="dashtasks.boom")
    def boom(why):
        raise ValueError(why)

    @app.task(name="dashtasks.flaky", bind=True, max_retries=2)
    def flaky(self):
        if self.request.retries < 2:
            raise self.retry(countdown=0)
        return "third try"

    @app.task(name="dashtasks.parked")
    def parked():
        return "never run: no worker consumes the parked queue"
    """
)


def require_browser() -> None:
    """Skip (fail in CI) when Playwright or Debian's chromium is missing."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install playwright)")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Stack:
    """The task module (imported here too), the dashboard process and worker processes."""

    def __init__(self, root: Path, module: Any) -> None:
        self.root = root
        self.module = module
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dashboard: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def start_dashboard(self) -> None:
        code = ("import sys; from celeriac.cli.main import main; "
                f"sys.argv = ['celeriac', '-A', 'dashtasks', 'dashboard', '--port', "
                f"'{self.port}', '--db', 'sqlite:///{self.root / 'history.db'}']; main()")
        self.dashboard = start_worker(self.root, code, log_name="dashboard.log")
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthcheck", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            if self.dashboard.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the dashboard did not start:\n{self.log('dashboard')}")
            time.sleep(0.1)

    def start_worker(self, hostname: str = "w1@dash", **options: Any) -> None:
        options = {"pool": "prefork", "concurrency": 2, "send_events": True, **options}
        code = worker_code("dashtasks", hostname=hostname, **options)
        self.workers[hostname] = start_worker(self.root, code, log_name=f"{hostname}.log")

    def ensure_worker(self, hostname: str = "w1@dash") -> None:
        if hostname not in self.workers:
            self.start_worker(hostname)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for proc in [*self.workers.values(), self.dashboard]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers.values(), self.dashboard]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@contextlib.contextmanager
def stack(root: Path) -> Iterator[Stack]:
    """A Stack on ``root``: the module written and imported, the dashboard started."""
    (root / "dashtasks.py").write_text(TASKS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DASHTASKS_URL", f"sqlite:///{root / 'broker.db'}")
        mp.syspath_prepend(str(root))
        sys.modules.pop("dashtasks", None)
        import importlib

        module = importlib.import_module("dashtasks")
        found = Stack(root, module)
        try:
            found.start_dashboard()
            yield found
        finally:
            found.stop()
            module.app.close()
            sys.modules.pop("dashtasks", None)


def screenshot(page: Any, name: str, tmp_dir: Path) -> Path:
    """Save a full-page PNG of ``page`` as dashboard-<name>.png (and into docs/img when asked)."""
    path = tmp_dir / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("CELERIAC_SCREENSHOTS") == "docs":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / path.name)
    return path
