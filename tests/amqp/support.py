"""Reaching the test RabbitMQ: skip on a laptop without one, fail in CI (CI=true).

``CELERIAC_TEST_AMQP_URL`` names the server (default ``amqp://guest:guest@127.0.0.1:5672//``).
Several test runs may share it at once, so each run works in a virtual host of its own, made
with ``rabbitmqctl`` when that works here (deleted when the run ends), else in the URL's vhost.
Each test deletes the queues and exchanges its brokers declared (``cleanup``), so the shared
delay queues never hand a test a message an earlier one scheduled.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import uuid
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672//"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

_state: dict[str, Any] = {}


def base_url() -> str:
    return os.environ.get("CELERIAC_TEST_AMQP_URL") or DEFAULT_URL


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str] | None:
    """Run ``rabbitmqctl`` (None when it is not installed or cannot reach the node)."""
    if shutil.which("rabbitmqctl") is None:
        return None
    try:
        done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done if done.returncode == 0 else None


def with_vhost(url: str, vhost: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def amqp_url(**query: Any) -> str:
    """The URL of this run's vhost (plus ``query`` options); skips (fails in CI) when no
    RabbitMQ answers."""
    if "url" not in _state:
        _state["url"] = _prepare()
    url: str | None = _state["url"]
    if url is None:
        _unavailable(f"no RabbitMQ at {base_url()}")
    assert url is not None
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


def _prepare() -> str | None:
    from celeriac._amqp.connection import open_connection, parse_url

    try:
        open_connection(parse_url(base_url()), connect_timeout_s=2).close()
    except Exception:  # any failure means: not reachable
        return None
    if os.environ.get("CELERIAC_TEST_AMQP_URL"):
        return base_url()
    vhost = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    user = urlsplit(base_url()).username or "guest"
    if rabbitmqctl("add_vhost", vhost) is None:
        return base_url()
    rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    atexit.register(rabbitmqctl, "delete_vhost", vhost)
    _state["vhost"] = vhost
    return with_vhost(base_url(), vhost)


def cleanup(broker: Any) -> None:
    """Delete what ``broker`` declared: its queues (dead-letter and delay queues included)."""
    from celeriac._amqp.connection import close_quietly, open_connection, parse_url

    names = sorted(getattr(broker, "declared_queues", ()))
    if not names:
        return
    params = getattr(broker, "params", None) or parse_url(broker.url)
    conn = open_connection(params)  # the broker's own TLS options included
    try:
        for name in names:
            channel = conn.channel()
            try:
                channel.queue_delete(name)
                channel.close()
            except Exception:  # already gone
                continue
    finally:
        close_quietly(conn)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"RabbitMQ is required in CI: {reason}")
    pytest.skip(reason)


def close_connections(vhost: str) -> int:
    """Close, from the server side, every connection to ``vhost`` (this run's own vhost, so
    no other run is touched); returns how many. Needs rabbitmqctl."""
    listed = rabbitmqctl("list_connections", "-q", "--no-table-headers", "pid", "vhost")
    if listed is None:
        pytest.skip("needs rabbitmqctl on this machine")
    assert listed is not None
    pids = [line.split("\t")[0] for line in listed.stdout.splitlines()
            if line.split("\t")[-1:] == [vhost]]
    for pid in pids:
        rabbitmqctl("close_connection", pid, "celeriac test: connection closed on purpose")
    return len(pids)


def run_vhost() -> str:
    """This run's own vhost (skips when there is none: no rabbitmqctl here)."""
    amqp_url()
    vhost = _state.get("vhost")
    if not vhost:
        pytest.skip("needs a vhost of this run's own (rabbitmqctl)")
    return str(vhost)


def queue_info(vhost: str, name: str) -> dict[str, str]:
    """``rabbitmqctl list_queues`` columns of queue ``name`` in ``vhost`` ({} when missing)."""
    columns = ["name", "type", "messages_ready", "messages_unacknowledged", "arguments"]
    listed = rabbitmqctl("list_queues", "-q", "--no-table-headers", "-p", vhost, *columns)
    if listed is None:
        pytest.skip("needs rabbitmqctl on this machine")
    assert listed is not None
    for line in listed.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == name:
            return dict(zip(columns, fields, strict=False))
    return {}
