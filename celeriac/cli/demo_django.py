"""The Django step of ``celeriac demo``: the tutorial's Django site (examples/django_demo).

It starts the project's own worker (``celeriac -A celery_demo worker``) and Django's
development server, both on an embedded SQLite broker of their own in the demo's directory (no
other server), calls the site's URLs as a browser would, and prints them. With ``--serve`` (the
default on a terminal) the site stays up until Ctrl-C. Nothing here imports Django: the site
and its worker are subprocesses.

The project ships with the source tree, not with the installed package: without it (or
without Django) the step says so and is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import celeriac

__all__ = ["DJANGO_DEMO", "find_project", "run_django_site"]

#: where the tutorial's project lives in a source checkout
DJANGO_DEMO = Path(celeriac.__file__).resolve().parent.parent / "examples" / "django_demo"
START_TIMEOUT_S = 60.0
POLL_S = 0.1


def find_project() -> Path | None:
    """The project's directory, or None when Django or the project is missing."""
    if importlib.util.find_spec("django") is None:
        return None
    return DJANGO_DEMO if (DJANGO_DEMO / "manage.py").is_file() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "celery_demo.settings"
    env["CELERY_DEMO_DATA_DIR"] = str(workdir)
    env["CELERY_DEMO_BROKER_URL"] = f"sqlite:///{workdir / 'django-broker.db'}"
    env["PYTHONUNBUFFERED"] = "1"
    root = str(DJANGO_DEMO.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


@contextmanager
def _process(
    command: list[str], env: dict[str, str], log: Path, preexec: Callable[[], None],
    stop: Callable[[subprocess.Popen[bytes]], int],
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=DJANGO_DEMO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=preexec,
        )
    try:
        yield process
    finally:
        stop(process)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait_for_site(url: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(POLL_S)
    return False


def _wait_for_result(base: str, task_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = _get_json(f"{base}/celery_app/get_result/?task_id={task_id}")
        if body["status"] in ("SUCCESS", "FAILURE") or time.monotonic() > deadline:
            return body
        time.sleep(POLL_S)


def run_django_site(
    workdir: Path, say: Callable[[str], None], check: Callable[[bool, str], bool],
    preexec: Callable[[], None], stop: Callable[[subprocess.Popen[bytes]], int], serve: bool,
) -> bool:
    """The step: migrate, start the project's worker and site, call the URLs, maybe serve."""
    env = _env(workdir)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=DJANGO_DEMO, env=env,
        capture_output=True, text=True, timeout=120,
    )
    if migrate.returncode != 0:
        say(migrate.stdout + migrate.stderr)
        return check(False, "manage.py migrate")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    worker_cmd = [sys.executable, "-m", "celeriac", "-A", "celery_demo", "--no-color", "worker",
                  "-l", "info", "-P", "threads", "-c", "4"]
    site_cmd = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    worker_log, site_log = workdir / "django-worker.log", workdir / "django-site.log"
    say(f"    project:  {DJANGO_DEMO}")
    say(f"    broker:   {env['CELERY_DEMO_BROKER_URL']}")
    say(f"    logs:     {worker_log}, {site_log}")
    with _process(worker_cmd, env, worker_log, preexec, stop), \
            _process(site_cmd, env, site_log, preexec, stop) as site:
        if not _wait_for_site(f"{base}/celery_app/get_result/?task_id=none", site):
            say(site_log.read_text(errors="replace")[-2000:])
            return check(False, "the Django site started")
        say(f"    site:     {base}/celery_app/  (starts add(2, 3), returns its id)")
        started = _get_json(f"{base}/celery_app/?x=2&y=3")
        url = f"{base}/celery_app/get_result/?task_id={started['task_id']}"
        say(f"              {url}")
        body = _wait_for_result(base, started["task_id"])
        say(f"              -> {json.dumps(body)}")
        say(f"              {base}/celery_app/primitive/  (group, chain, chord, map, starmap, "
            "chunks)")
        say(f"              {base}/admin/")
        primitives = _get_json(f"{base}/celery_app/primitive/")
        chord = _wait_for_result(base, primitives["chord"])
        say(f"              chord(add(i, i) for i in range(5))(xsum) -> {json.dumps(chord)}")
        ok = check(body == {"status": "SUCCESS", "result": 5}
                   and chord == {"status": "SUCCESS", "result": 20},
                   "the site's tasks ran on the project's worker")
        if serve and ok:
            say("    The site and its worker keep running: open the URLs above; Ctrl-C stops.")
            try:
                while site.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                say("    Ctrl-C: stopping the site and its worker...")
        return ok
