"""A worker reports ready only once its broker and result backend answer (issue 13 item 6);
until then it logs each failed attempt with the delay before the next, and a signal stops it.
A command that cannot reach the broker ends with one line naming the URL, exit status 69.

The outage is staged with a TCP proxy in front of the test Redis (tests/redis/proxy.py); the
shared server is never stopped."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.cli.main import _debug_wanted
from tests.cli.workers import WorkerProcess, run_cli
from tests.redis.conftest import OUTAGE_DB
from tests.redis.proxy import Proxy
from tests.redis.support import HOST, PORT

#: a port nothing listens on (below 1024, not a service on this machine)
CLOSED_URL = "redis://127.0.0.1:1/0"

PROJ = textwrap.dedent(
    """
    import os
    from celeriac import Celery

    app = Celery("proj", broker=os.environ["T_BROKER"], backend=os.environ["T_BACKEND"])

    @app.task
    def add(x, y):
        return x + y
    """
)


def _project(tmp_path: Path) -> Path:
    (tmp_path / "proj.py").write_text(PROJ)
    return tmp_path


def test_worker_is_ready_only_once_the_broker_answers(
    tmp_path: Path, proxy: Proxy, outage_prefix: str
) -> None:
    proxied = f"redis://127.0.0.1:{proxy.port}/{OUTAGE_DB}?global_keyprefix={outage_prefix}"
    direct = f"redis://{HOST}:{PORT}/{OUTAGE_DB}?global_keyprefix={outage_prefix}"
    proxy.down()
    env = {"T_BROKER": proxied, "T_BACKEND": direct}
    with WorkerProcess(_project(tmp_path), ["-A", "proj", "worker", "-P", "solo", "-l", "info"],
                       env=env) as worker:
        worker.wait_for("retrying in 2 s (attempt 2)")
        log = worker.output()
        assert "ready." not in log
        assert f"cannot reach the broker redis://127.0.0.1:{proxy.port}/{OUTAGE_DB}" in log
        assert "Traceback" not in log
        proxy.up()
        worker.wait_for(" ready.", timeout_s=60)
        assert "connected after" in worker.output()
        app = Celery("client", broker=direct, backend=direct)
        try:
            assert app.send_task("proj.add", (2, 3)).get(timeout=30) == 5
        finally:
            app.close()
        assert worker.stop() == 0


def test_a_worker_that_never_connects_stops_on_sigterm(tmp_path: Path) -> None:
    env = {"T_BROKER": CLOSED_URL, "T_BACKEND": CLOSED_URL}
    with WorkerProcess(_project(tmp_path), ["-A", "proj", "worker", "-P", "solo"],
                       env=env) as worker:
        worker.wait_for("(attempt 1)")
        assert worker.stop(timeout_s=20) == 0
        log = worker.output()
    assert "ready." not in log
    assert "Traceback" not in log
    lines = [line for line in log.splitlines() if "cannot reach the broker" in line]
    assert lines and all(re.search(r"retrying in \d+ s \(attempt \d+\)$", line) for line in lines)


def test_the_backend_is_checked_too(tmp_path: Path, outage_prefix: str) -> None:
    direct = f"redis://{HOST}:{PORT}/{OUTAGE_DB}?global_keyprefix={outage_prefix}"
    env = {"T_BROKER": direct, "T_BACKEND": "redis://user:s3cret@127.0.0.1:1/0"}
    with WorkerProcess(_project(tmp_path), ["-A", "proj", "worker", "-P", "solo"],
                       env=env) as worker:
        worker.wait_for("(attempt 1)")
        worker.stop(timeout_s=20)
        log = worker.output()
    assert "cannot reach the result backend redis://user:**@127.0.0.1:1/0" in log
    assert "s3cret" not in log
    assert "ready." not in log


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", "ping", "--timeout", "0.5"],
        ["call", "proj.add", "--args", "[1, 2]"],
        ["purge", "-f"],
    ],
    ids=["inspect", "call", "purge"],
)
def test_commands_end_with_one_line_when_the_broker_is_down(
    tmp_path: Path, args: list[str]
) -> None:
    env = {"T_BROKER": "redis://user:s3cret@127.0.0.1:1/0", "T_BACKEND": CLOSED_URL}
    done = run_cli(["-A", "proj", *args], _project(tmp_path), env=env)
    assert done.returncode == 69, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert "127.0.0.1:1" in errors[0]
    assert "s3cret" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["worker", "-l", "debug"], True),
        (["worker", "--loglevel=DEBUG"], True),
        (["worker", "-ldebug"], True),
        (["worker", "--loglevel", "debug"], True),
        (["worker", "-l", "info"], False),
        (["inspect", "ping"], False),
        (["worker", "-l"], False),
    ],
)
def test_debug_logging_keeps_the_traceback(argv: list[str], wanted: bool) -> None:
    assert _debug_wanted(argv) is wanted
