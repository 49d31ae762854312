"""The demo's dashboard step: ``celeriac dashboard`` on the demo's broker, watched over HTTP.

The step starts the dashboard in a subprocess on a free loopback port (no auth: loopback only,
as the dashboard's own rule allows), opens its first page as a browser would (the page's
session cookie lets the API answer), sends a task and waits until the dashboard's API shows it
SUCCESS and the worker online, all learnt from the worker's events (the demo's worker runs with
``-E``). The dashboard keeps running until the demo ends, so with ``--serve`` it can be opened
beside the Django site.
"""

from __future__ import annotations

import http.cookiejar
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from celeriac.cli.demo_django import free_port

__all__ = ["DashboardStep"]

START_TIMEOUT_S = 60.0
SEEN_TIMEOUT_S = 30.0
POLL_S = 0.1


class DashboardStep:
    """Runs the step; :meth:`stop` ends the dashboard process (at the demo's end)."""

    def __init__(self, workdir: Path, broker_url: str, app_module: str,
                 preexec: Callable[[], None]) -> None:
        self.workdir = workdir
        self.broker_url = broker_url
        self.app_module = app_module
        self.preexec = preexec
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "dashboard.log"
        self.base = ""
        jar = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    @staticmethod
    def available() -> bool:
        """Whether the dashboard extra (Starlette, uvicorn) is installed."""
        return all(importlib.util.find_spec(name) is not None
                   for name in ("starlette", "uvicorn"))

    def start(self, package_root: str) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        command = [sys.executable, "-m", "celeriac", "-A", self.app_module, "-b",
                   self.broker_url, "--no-color", "dashboard", "--port", str(port),
                   "--db", f"sqlite:///{self.workdir / 'dashboard.db'}"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, preexec_fn=self.preexec)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with self._opener.open(self.base + path, timeout=10) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, b""
        except (urllib.error.URLError, OSError):
            return 0, b""

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        if status != 200:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    def wait_until(self, probe: Callable[[], Any], timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return None
            found = probe()
            if found:
                return found
            time.sleep(POLL_S)
        return None

    def run(self, tasks: ModuleType, hostname: str, say: Callable[[str], None],
            check: Callable[[bool, str], bool], package_root: str) -> bool:
        self.start(package_root)
        say(f"    celeriac -A {self.app_module} dashboard --port {self.base.rsplit(':', 1)[1]}"
            f" (log: {self.log_path})")
        up = self.wait_until(lambda: self.get("/healthcheck")[0] == 200, START_TIMEOUT_S)
        if not up:
            say("    the dashboard did not start; its log ends with:")
            for line in self.log_path.read_text(errors="replace").splitlines()[-15:]:
                say(f"      | {line}")
            return check(False, "the dashboard answers")
        status, page = self.get("/")
        say(f"    GET / -> {status} ({len(page)} bytes; the page's cookie opens the API)")
        result = tasks.add.delay(20, 22)
        say(f"    add.delay(20, 22) -> {result.id}")
        quoted = urllib.parse.quote(result.id)
        info = self.wait_until(
            lambda: (found := self.get_json(f"/api/task/info/{quoted}"))
            and found.get("state") == "SUCCESS" and found, SEEN_TIMEOUT_S)
        if info:
            say(f"    GET /api/task/info/{result.id[:8]}... -> state {info.get('state')}, "
                f"result {info.get('result')}, worker {info.get('worker')}")
        online = self.wait_until(
            lambda: (self.get_json("/api/workers?status=1") or {}).get(hostname),
            SEEN_TIMEOUT_S)
        say(f"    GET /api/workers?status=1 -> {hostname}: {'online' if online else 'not seen'}")
        say(f"    open {self.base}/ to watch workers and tasks live")
        return check(bool(info) and bool(online) and status == 200,
                     "the dashboard saw the task succeed and the worker online")

    def stop(self) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
        try:
            return process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
