"""Reaching the test memcached: skip on a laptop without one, fail in CI (CI=true).

Location: CELERIAC_TEST_MEMCACHED (``host:port``, default ``127.0.0.1:11211``). Several test
runs share the server, so each test works under a key prefix of its own (the URL's
``key_prefix``) and deletes its keys afterwards (found with ``lru_crawler metadump``).
"""

from __future__ import annotations

import os
import socket
import urllib.parse
import uuid

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ADDRESS = os.environ.get("CELERIAC_TEST_MEMCACHED", "127.0.0.1:11211")
HOST, _, _PORT = ADDRESS.rpartition(":")
PORT = int(_PORT)

_reachable: bool | None = None


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}-"


def _command(line: bytes, end: bytes) -> bytes:
    with socket.create_connection((HOST, PORT), timeout=10) as sock:
        sock.sendall(line)
        data = b""
        while not data.endswith(end):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def memcached_url(prefix: str | None = None) -> str:
    """A ``cache+memcached://`` URL of the test server under a fresh key prefix; skips (fails
    in CI) when there is no server."""
    global _reachable
    if _reachable is None:
        try:
            _reachable = _command(b"version\r\n", b"\r\n").startswith(b"VERSION")
        except OSError:
            _reachable = False
    if not _reachable:
        reason = f"no memcached on {HOST}:{PORT}"
        if IN_CI:
            pytest.fail(f"memcached is required in CI: {reason}")
        pytest.skip(reason)
    return f"cache+memcached://{HOST}:{PORT}/?key_prefix={prefix or unique_prefix()}"


def keys_under(prefix: str) -> list[bytes]:
    """Every live key starting with ``prefix``."""
    dump = _command(b"lru_crawler metadump all\r\n", b"END\r\n")
    keys = []
    for line in dump.splitlines():
        if line.startswith(b"key="):
            key = urllib.parse.unquote_to_bytes(line.split(b" ", 1)[0][4:])
            if key.startswith(prefix.encode()):
                keys.append(key)
    return keys


def drop_keys(url: str) -> None:
    """Delete every key under the URL's prefix."""
    prefix = urllib.parse.parse_qs(url.partition("?")[2])["key_prefix"][0]
    assert prefix.startswith("test-"), "not a test URL"
    with socket.create_connection((HOST, PORT), timeout=10) as sock:
        for key in keys_under(prefix):
            sock.sendall(b"delete " + key + b" noreply\r\n")
