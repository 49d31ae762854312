"""Fixtures of the Redis tests: URLs on the shared test server (databases 12 and 13) and private
``redis-server`` processes (TCP on a free port, or a Unix socket) that a test may stop and start
again, for reconnection tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.redis.proxy import Proxy
from tests.redis.support import (
    HOST,
    PORT,
    REDIS_BACKEND_DB,
    REDIS_BROKER_DB,
    SPARE_DB,
    _unavailable,
    drop_keys,
    redis_url,
    unique_prefix,
)

# Small retry budgets so calls during an outage fail in well under a second.
FAST_FAIL = {
    "max_retries": 1,
    "interval_start": 0.01,
    "interval_max": 0.02,
    "socket_connect_timeout": 0.5,
    "socket_timeout": 2,
}


#: the database of the outage tests (a proxy in front of the server; prefixed keys, deleted after)
OUTAGE_DB = SPARE_DB


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """A TCP proxy in front of the test Redis, to stage an outage (tests/redis/proxy.py)."""
    proxy = Proxy()
    yield proxy
    proxy.close()


@pytest.fixture
def outage_prefix() -> Iterator[str]:
    """A key prefix on database OUTAGE_DB, its keys deleted afterwards."""
    redis_url(REDIS_BROKER_DB)  # skips (fails in CI) without a server
    value = unique_prefix()
    yield value
    drop_keys(f"redis://{HOST}:{PORT}/{OUTAGE_DB}?global_keyprefix={value}")


@pytest.fixture
def prefix() -> str:
    """This test's key prefix on the shared server (see tests.redis.support)."""
    return unique_prefix()


@pytest.fixture
def broker_url(prefix: str) -> Iterator[str]:
    url = redis_url(REDIS_BROKER_DB, prefix)
    yield url
    drop_keys(url)


@pytest.fixture
def backend_url(prefix: str) -> Iterator[str]:
    url = redis_url(REDIS_BACKEND_DB, prefix)
    yield url
    drop_keys(url)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server (no persistence) that can be stopped and started again on the same
    port or socket."""

    def __init__(self, workdir: Path, *, unix: bool, durable: bool = False) -> None:
        self.workdir = workdir
        self.unix = unix
        #: keep data across restarts (AOF, fsync on every write), like a production server
        self.durable = durable
        self.port = 0 if unix else _free_port()
        self.socket_path = str(workdir / "r.sock")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.unix:
            return f"redis+socket://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--save", ""]
        if self.durable:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        args += ["--bind", "127.0.0.1", "--dir", str(self.workdir)]
        if self.unix:
            args += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._ping():
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def _ping(self) -> bool:
        family = socket.AF_UNIX if self.unix else socket.AF_INET
        address: str | tuple[str, int] = self.socket_path if self.unix else ("127.0.0.1", self.port)
        try:
            with socket.socket(family) as sock:
                sock.settimeout(0.5)
                sock.connect(address)
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(10)


def _server(tmp_path: Path, unix: bool, durable: bool = False) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")
    server = RedisServer(tmp_path, unix=unix, durable=durable)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    yield from _server(tmp_path, unix=False)


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    yield from _server(tmp_path, unix=False, durable=True)


@pytest.fixture
def socket_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    # A short directory: Unix socket paths are limited to about 100 bytes.
    yield from _server(tmp_path_factory.mktemp("rs"), unix=True)


@pytest.fixture
def raw(backend_url: str) -> Iterator[redis.Redis]:
    """A plain client on the results database (a module may override it, e.g. on the
    broker's)."""
    client = redis.Redis.from_url(backend_url.partition("?")[0])
    yield client
    client.close()
