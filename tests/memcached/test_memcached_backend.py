"""The ``cache+memcached://`` result backend against real memcached servers: key layout, server
lists, size limits, junk written straight into its keys, a restarted server, fork safety (the
shared contract is tests/backends)."""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import states
from celeriac.backends import create_backend
from celeriac.backends.memcached import MemcachedBackend, parse_servers
from celeriac.exceptions import ImproperlyConfigured, TransportError
from tests.memcached.support import HOST, PORT, drop_keys, keys_under, memcached_url

EVENTUALLY_S = 5.0


def _raw(command: bytes, host: str = HOST, port: int = PORT, end: bytes = b"\r\n") -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(command)
        data = b""
        while not data.endswith(end):
            chunk = sock.recv(65536)
            assert chunk, "memcached closed the connection"
            data += chunk
    return data


class _Evil:
    """Unpickling this creates ``path``: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (self.path.touch, ())


def _raw_set(key: bytes, value: bytes, flags: int = 0) -> None:
    reply = _raw(b"set %s %d 0 %d\r\n%s\r\n" % (key, flags, len(value), value))
    assert reply == b"STORED\r\n"


@pytest.fixture
def url() -> Iterator[str]:
    made = memcached_url()
    yield made
    drop_keys(made)


@pytest.fixture
def backend(url: str) -> Iterator[MemcachedBackend]:
    made = create_backend(url)
    assert isinstance(made, MemcachedBackend)
    yield made
    made.close()


def _prefix(url: str) -> str:
    return urllib.parse.parse_qs(url.partition("?")[2])["key_prefix"][0]


def test_url_forms() -> None:
    assert parse_servers("cache+memcached://10.0.0.1:11211;10.0.0.2:11212/") == (
        [("10.0.0.1", 11211), ("10.0.0.2", 11212)], "",
    )
    assert parse_servers("cache+memcached://h/?key_prefix=app1-") == ([("h", 11211)], "app1-")
    assert parse_servers("cache+memcached://") == ([("127.0.0.1", 11211)], "")
    with pytest.raises(ImproperlyConfigured, match="bad memcached port"):
        parse_servers("cache+memcached://h:eleven/")


def test_records_under_celerys_keys(url: str, backend: MemcachedBackend) -> None:
    prefix = _prefix(url).encode()
    backend.store("t1", states.SUCCESS, b'{"status": "SUCCESS"}', 60)
    backend.store("celery-taskset-meta-g1", states.SUCCESS, b"group", 60)
    keys = set(keys_under(prefix.decode()))
    assert prefix + b"celery-task-meta-t1" in keys
    assert prefix + b"celeriac-task-state-t1" in keys
    assert prefix + b"celery-taskset-meta-g1" in keys
    reply = _raw(b"get " + prefix + b"celery-task-meta-t1\r\n", end=b"END\r\n")
    assert b'{"status": "SUCCESS"}' in reply
    assert backend.get_state("celery-taskset-meta-g1") == states.SUCCESS


def test_counter_expires_in_whole_seconds(backend: MemcachedBackend) -> None:
    assert backend.incr("k", 1, 1) == 1
    assert backend.incr("k", 1, 1) == 2
    deadline = time.monotonic() + EVENTUALLY_S
    value = backend.incr("k", 0, 1)
    while value != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        value = backend.incr("k", 0, 1)
    assert value == 0
    assert backend.incr("k", 1, 1) == 1


def test_counter_never_goes_below_zero(backend: MemcachedBackend) -> None:
    assert backend.incr("k", -3, None) == 0
    assert backend.incr("k", 2, None) == 2
    assert backend.incr("k", -5, None) == 0


def test_too_large_records_fail_clearly(backend: MemcachedBackend, url: str) -> None:
    with pytest.raises(TransportError, match="up to 1048064 bytes") as info:
        backend.store("big", states.SUCCESS, b"x" * (2 * 1024 * 1024), None)
    assert "\n" not in str(info.value)
    assert backend.get("big") is None
    # A limit set above the server's: the server's refusal is an error too, never silence.
    lax = create_backend(url, {"max_value_bytes": 8 * 1024 * 1024})
    try:
        with pytest.raises(TransportError):
            lax.store("big", states.SUCCESS, b"x" * (2 * 1024 * 1024), None)
        assert lax.get("big") is None
    finally:
        lax.close()


def test_junk_in_its_keys_never_crashes_a_reader(url: str, backend: MemcachedBackend) -> None:
    prefix = _prefix(url).encode()
    _raw_set(prefix + b"celeriac-task-state-t1", b"\xff\xfe\x00")
    _raw_set(prefix + b"celery-task-meta-t1", b"\x80\x00not json")
    assert backend.get_state("t1") is None
    assert backend.get("t1") == b"\x80\x00not json"
    assert backend.wait("t1", 0.05) is None
    # A value a pickling client flagged as pickle (pymemcache's flag 1) comes back as bytes.
    marker = Path(f"/tmp/celeriac-pwned-{os.getpid()}")
    evil = pickle.dumps(_Evil(marker))
    _raw_set(prefix + b"celery-task-meta-t2", evil, flags=1)
    _raw_set(prefix + b"celeriac-task-state-t2", b"SUCCESS", flags=1)
    assert backend.wait("t2", 1) == evil
    assert backend.get_many(["t2", "t1"]) == [evil, b"\x80\x00not json"]
    assert not marker.exists()
    # A counter holding text cannot be incremented: one clear line.
    _raw_set(prefix + b"celeriac-chord-c", b"twelve")
    with pytest.raises(TransportError) as info:
        backend.incr("c", 1, None)
    assert "\n" not in str(info.value)


def test_ids_memcached_cannot_take_as_keys(backend: MemcachedBackend) -> None:
    odd = ["has space", "caf\u00e9", "x" * 400, "new\nline"]
    backend.store_many([(task_id, states.SUCCESS, task_id.encode()) for task_id in odd], 60)
    assert backend.get_many(odd) == [task_id.encode() for task_id in odd]
    assert backend.get_state("x" * 400) == states.SUCCESS
    backend.forget("has space")
    assert backend.get("has space") is None


def test_refused_connection_is_one_line() -> None:
    backend = create_backend("cache+memcached://127.0.0.1:1/")
    with pytest.raises(TransportError) as info:
        backend.get("t1")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("result backend cache+memcached://127.0.0.1:1/")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateMemcached:
    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("memcached")
        if binary is None:
            pytest.skip("no memcached binary")
        user = ["-u", "memcache"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            [binary, *user, "-l", "127.0.0.1", "-p", str(self.port), "-m", "16"]
        )
        deadline = time.monotonic() + EVENTUALLY_S
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("private memcached did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private() -> Iterator[list[PrivateMemcached]]:
    servers = [PrivateMemcached(), PrivateMemcached()]
    yield servers
    for server in servers:
        server.stop()


def test_restarted_server(private: list[PrivateMemcached]) -> None:
    server = private[0]
    server.start()
    backend = create_backend(f"cache+memcached://127.0.0.1:{server.port}/")
    try:
        backend.store("t1", states.SUCCESS, b"before", None)
        server.stop()
        with pytest.raises(TransportError):
            backend.get("t1")
        server.start()
        # memcached forgets everything when restarted: the record is gone, the backend works.
        assert backend.get("t1") is None
        backend.store("t1", states.SUCCESS, b"after", None)
        assert backend.get("t1") == b"after"
    finally:
        backend.close()


def test_keys_spread_over_several_servers(private: list[PrivateMemcached]) -> None:
    for server in private:
        server.start()
    url = "cache+memcached://" + ";".join(f"127.0.0.1:{s.port}" for s in private) + "/"
    backend = create_backend(url)
    try:
        items = [(f"t{i}", states.SUCCESS, f"r{i}".encode()) for i in range(60)]
        backend.store_many(items, 60)
        assert backend.get_many([f"t{i}" for i in range(60)]) == [p for _, _, p in items]
        assert all(backend.get_state(f"t{i}") == states.SUCCESS for i in range(60))
        for server in private:
            stats = _raw(b"stats\r\n", "127.0.0.1", server.port, end=b"END\r\n")
            items_line = next(x for x in stats.split(b"\r\n") if b"curr_items" in x)
            assert int(items_line.split()[-1]) > 10
        assert backend.incr("chord", 3, 60) == 3
        assert backend.incr("chord", 1, 60) == 4
    finally:
        backend.close()


def test_forked_child_uses_its_own_connections(backend: MemcachedBackend) -> None:
    backend.store("parent", states.SUCCESS, b"p", None)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            backend.store("child", states.SUCCESS, b"c", None)
            code = 0 if backend.get("parent") == b"p" else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend.get("child") == b"c"
    assert backend.get_state("parent") == states.SUCCESS


def test_a_failed_server_never_gives_silent_answers(private: list[PrivateMemcached]) -> None:
    for server in private:
        server.start()
    url = "cache+memcached://" + ";".join(f"127.0.0.1:{s.port}" for s in private) + "/"
    backend = create_backend(url)
    try:
        private[1].stop()
        answered = 0
        for i in range(40):
            # Each call fails loudly or really counted/stored (pymemcache's failover would
            # otherwise answer a failing server's keys with False/None).
            try:
                assert backend.incr(f"c{i}", 2, 60) == 2
                assert backend.incr(f"c{i}", 1, 60) == 3
                backend.store(f"t{i}", states.SUCCESS, f"r{i}".encode(), 60)
                assert backend.get(f"t{i}") == f"r{i}".encode()
                answered += 1
            except TransportError as exc:
                assert "\n" not in str(exc)
        assert answered > 0
    finally:
        backend.close()
