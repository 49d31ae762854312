"""Live Redis Sentinel and TLS: the broker and the result backend find the master through
private sentinels and follow it across a failover, and ``rediss://`` connects with the CA given
in the URL or the options (and refuses a server it cannot verify).

Every server here is a private ``redis-server`` on a free port, started and killed by the
fixtures; nothing touches the shared test server.
"""

from __future__ import annotations

import functools
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

from celeriac import states
from celeriac.backends import create_backend
from celeriac.backends.base import ResultBackend
from celeriac.brokers import create_broker
from celeriac.brokers.base import Broker
from celeriac.brokers.redis import RedisBroker
from celeriac.exceptions import TransportError
from celeriac.result_meta import build_meta, encode_meta
from tests.brokers.conftest import envelope
from tests.redis.conftest import FAST_FAIL, _free_port
from tests.redis.support import _unavailable
from tests.support.tls import make_certs

MASTER_NAME = "mymaster"
# What a redis-server built without TLS says when asked for a TLS port (Redis < 7.2: the
# directive is unknown; 7.2+: the "tls" connection type is not compiled in).
_NO_TLS = re.compile(r"Bad directive|connection type tls|not built|TLS.*not supported", re.I)


# -- processes ----------------------------------------------------------------------------------
def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Server:
    """One redis-server (or sentinel) process; its output goes to ``<name>.log``."""

    def __init__(self, workdir: Path, name: str, port: int, args: list[str]) -> None:
        self.name = name
        self.port = port
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as log:
            # The child keeps its own copy of the descriptor.
            self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
                ["redis-server", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def wait_ready(self, ready: Callable[[int], bool] = _ping, timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready(self.port):
                return
            if self.process is None or self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.output()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.kill()  # SIGKILL: no goodbye to replicas or sentinels
            process.wait(10)


def _require_redis_server() -> None:
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")


def _client(port: int, **kwargs: Any) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=1, **kwargs
    )


def _ask(port: int, fn: Callable[[redis.Redis], Any]) -> Any:
    """``fn(client)`` on a short-lived client of ``port`` (closed afterwards)."""
    client = _client(port, decode_responses=True)
    try:
        return fn(client)
    finally:
        client.close()


def _wait_until(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def _retrying(call: Callable[[], Any], timeout_s: float = 10) -> Any:
    """``call()``, again while it raises TransportError (a failover in progress)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- sentinel -----------------------------------------------------------------------------------
class SentinelSetup:
    """A master, one replica and three sentinels (quorum 2) watching them as ``mymaster``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.servers: list[Server] = []
        self.master_port = _free_port()
        self.replica_port = _free_port()
        self.sentinel_ports = [_free_port() for _ in range(3)]

    def _data_server(self, name: str, port: int, *extra: str) -> Server:
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        # Full syncs without the default 5 s wait for more replicas.
        args += ["--repl-diskless-sync-delay", "0", "--dir", str(self.workdir), *extra]
        server = Server(self.workdir, name, port, args)
        self.servers.append(server)
        server.wait_ready()
        return server

    def start(self) -> None:
        self.master = self._data_server("master", self.master_port)
        replicaof = ["--replicaof", "127.0.0.1", str(self.master_port)]
        self.replica = self._data_server("replica", self.replica_port, *replicaof)
        _wait_until(
            "the replica to sync",
            lambda: (
                _ask(self.replica_port, lambda c: c.info("replication"))["master_link_status"]
                == "up"
            ),
            10,
        )
        for index, port in enumerate(self.sentinel_ports):
            # Sentinels rewrite their configuration file: one each.
            config = self.workdir / f"sentinel{index}.conf"
            config.write_text(
                f"port {port}\n"
                "bind 127.0.0.1\n"
                f'dir "{self.workdir}"\n'
                "sentinel resolve-hostnames no\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                # Also the pause before a second attempt after a split vote (twice this).
                f"sentinel failover-timeout {MASTER_NAME} 3000\n"
            )
            server = Server(self.workdir, f"sentinel{index}", port, [str(config), "--sentinel"])
            self.servers.append(server)
            server.wait_ready()

    def master_addr(self, sentinel_port: int) -> tuple[str, int]:
        addr = _ask(sentinel_port, lambda c: c.sentinel_get_master_addr_by_name(MASTER_NAME))
        return str(addr[0]), int(addr[1])

    def wait_until_settled(self) -> None:
        """Until every sentinel knows the other two and the replica: only then can they agree
        on a failover (hello messages go out every 2 s)."""

        def settled(port: int) -> bool:
            peers = _ask(port, lambda c: c.sentinel_sentinels(MASTER_NAME))
            replicas = _ask(port, lambda c: c.sentinel_slaves(MASTER_NAME))
            return len(peers) == 2 and any(
                int(r["port"]) == self.replica_port and not r["is_disconnected"] for r in replicas
            )

        for port in self.sentinel_ports:
            what = f"sentinel on {port} to see its peers and the replica"
            _wait_until(what, functools.partial(settled, port), 15)

    @property
    def url(self) -> str:
        # Two of the three sentinels: any one that answers is enough.
        first, second = self.sentinel_ports[:2]
        return f"sentinel://127.0.0.1:{first};sentinel://127.0.0.1:{second}/0"

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSetup]:
    _require_redis_server()
    setup = SentinelSetup(tmp_path)
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


def _meta(task_id: str) -> bytes:
    record = build_meta(task_id, states.SUCCESS, 4)
    record["date_done"] = "2024-01-01T00:00:00+00:00"
    return encode_meta(record)


def _roundtrip(broker: Broker, backend: ResultBackend, raw: redis.Redis, task_id: str) -> None:
    """Publish, consume and ack one message and store and read one result, checking with a
    plain client (``raw``) that both went to that server."""
    assert isinstance(broker, RedisBroker)
    stream = broker.stream_key("q", 0)
    broker.publish("q", envelope(task_id, priority=0))
    assert raw.xlen(stream) == 1
    [got] = broker.consume(["q"], 10, 2)
    assert got.task_id == task_id
    broker.ack([got])
    assert broker.queue_size("q") == 0  # also waits for the ack's reply
    assert raw.xlen(stream) == 0
    backend.store(task_id, states.SUCCESS, _meta(task_id), 60)
    assert backend.get(task_id) == _meta(task_id)
    assert raw.get(f"celery-task-meta-{task_id}") == _meta(task_id)


def test_sentinel_finds_the_master(sentinels: SentinelSetup) -> None:
    assert sentinels.master_addr(sentinels.sentinel_ports[0]) == (
        "127.0.0.1",
        sentinels.master_port,
    )
    options = {"master_name": MASTER_NAME, **FAST_FAIL}
    broker = create_broker(sentinels.url, options)
    backend = create_backend(sentinels.url, options)
    master, replica = _client(sentinels.master_port), _client(sentinels.replica_port)
    try:
        _roundtrip(broker, backend, master, "t1")
        # The writes went to the master, which replicated them: nothing was written elsewhere.
        assert master.execute_command("WAIT", 1, 2000) == 1
        assert replica.get("celery-task-meta-t1") == _meta("t1")
        assert replica.info("replication")["role"] == "slave"
    finally:
        broker.close()
        backend.close()
        master.close()
        replica.close()


def test_sentinel_failover_is_followed(sentinels: SentinelSetup) -> None:
    started = time.monotonic()
    sentinels.wait_until_settled()
    options = {"master_name": MASTER_NAME, **FAST_FAIL}
    broker = create_broker(sentinels.url, options)
    backend = create_backend(sentinels.url, options)
    master, replica = _client(sentinels.master_port), _client(sentinels.replica_port)
    try:
        _roundtrip(broker, backend, master, "before")
        assert master.execute_command("WAIT", 1, 2000) == 1  # "before" is on the replica too

        sentinels.master.stop()
        new_master = ("127.0.0.1", sentinels.replica_port)
        _wait_until(
            "the sentinels to promote the replica",
            lambda: all(
                sentinels.master_addr(port) == new_master for port in sentinels.sentinel_ports
            ),
            20,
        )
        assert replica.info("replication")["role"] == "master"

        # The same objects, now talking to the promoted replica.
        _retrying(lambda: _roundtrip(broker, backend, replica, "after"))
        assert _retrying(lambda: backend.get("before")) == _meta("before")
        broker.publish("q", envelope("more", priority=0))
        assert [d.task_id for d in broker.consume(["q"], 10, 2)] == ["more"]
    finally:
        broker.close()
        backend.close()
        master.close()
        replica.close()
    assert time.monotonic() - started < 40


# -- TLS ----------------------------------------------------------------------------------------
class TlsServer:
    def __init__(self, port: int, ca: Path) -> None:
        self.port = port
        self.ca = ca


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsServer]:
    _require_redis_server()
    ca, cert, key = make_certs(tmp_path)
    port = _free_port()
    args = ["--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
    args += ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    args += ["--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    server = Server(tmp_path, "tls", port, args)
    try:
        try:
            server.wait_ready(_listening)
        except RuntimeError:
            output = server.output()
            if _NO_TLS.search(output):
                # A property of how redis-server was built, not a failure of ours.
                pytest.skip(f"redis-server was built without TLS support: {output.strip()[-300:]}")
            raise
        yield TlsServer(port, ca)
    finally:
        server.stop()


def test_rediss_roundtrip_with_the_ca(tls_redis: TlsServer) -> None:
    ca = str(tls_redis.ca)
    url = (
        f"rediss://127.0.0.1:{tls_redis.port}/0"
        f"?ssl_cert_reqs=required&ssl_ca_certs={quote(ca, safe='/')}"
    )
    broker = create_broker(url, FAST_FAIL)
    # The options form: a plain URL and the backend's TLS dict.
    backend = create_backend(
        f"redis://127.0.0.1:{tls_redis.port}/0",
        {
            **FAST_FAIL,
            "redis_backend_use_ssl": {"ssl_cert_reqs": "CERT_REQUIRED", "ssl_ca_certs": ca},
        },
    )
    raw = _client(tls_redis.port, ssl=True, ssl_ca_certs=ca, ssl_cert_reqs="required")
    try:
        _roundtrip(broker, backend, raw, "tls1")
        _roundtrip(broker, backend, raw, "tls2")
    finally:
        broker.close()
        backend.close()
        raw.close()


def test_rediss_without_the_ca_is_refused(tls_redis: TlsServer) -> None:
    url = f"rediss://127.0.0.1:{tls_redis.port}/0?ssl_cert_reqs=required"
    broker = create_broker(url, FAST_FAIL)
    backend = create_backend(url, FAST_FAIL)
    try:
        for call in (
            lambda: broker.publish("q", envelope("t1")),
            lambda: broker.consume(["q"], 10, 0.5),
            lambda: backend.store("t1", states.SUCCESS, _meta("t1"), 60),
            lambda: backend.get("t1"),
        ):
            started = time.monotonic()
            with pytest.raises(TransportError, match="certificate verify failed"):
                call()
            assert time.monotonic() - started < 5
    finally:
        broker.close()
        backend.close()


def test_the_app_settings_reach_broker_backend_and_stores(tls_redis: TlsServer) -> None:
    """Celery's ``broker_use_ssl`` and ``redis_backend_use_ssl``, set on the app, reach the
    broker, the result backend, the coordination store and beat's schedule store."""
    from celeriac import Celery
    from celeriac.beat.store import store_for

    ca = str(tls_redis.ca)
    plain = f"rediss://127.0.0.1:{tls_redis.port}/0"
    app = Celery("tlsapp", broker=plain, backend=plain)
    app.conf.broker_use_ssl = {"ssl_cert_reqs": "required", "ssl_ca_certs": ca}
    app.conf.redis_backend_use_ssl = {"ssl_cert_reqs": "required", "ssl_ca_certs": ca}
    app.conf.broker_transport_options = dict(FAST_FAIL)
    app.conf.result_backend_transport_options = dict(FAST_FAIL)
    try:
        app.broker.publish("q-app", envelope("app1"))
        assert [d.task_id for d in app.broker.consume(["q-app"], 10, 2)] == ["app1"]
        app.backend.store("app1", states.SUCCESS, _meta("app1"), 60)
        assert app.backend.get("app1") == _meta("app1")
        assert app.coordination.revoked(["app1"]) == set()
        store_for(app).load()
    finally:
        app.close()
    # the same app without the settings is refused: the settings are what made it work
    bare = Celery("tlsbare", broker=plain, backend=plain)
    bare.conf.broker_transport_options = dict(FAST_FAIL)
    try:
        with pytest.raises(TransportError, match="certificate verify failed"):
            bare.broker.publish("q-app", envelope("bare"))
    finally:
        bare.close()
