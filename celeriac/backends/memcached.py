"""``cache+memcached://`` result backend: records in memcached through pymemcache.

URL: ``cache+memcached://host:port/``; several servers separated by ``;`` as in Celery
(``cache+memcached://10.0.0.1:11211;10.0.0.2:11211/``), keys spread over them by hashing.
``?key_prefix=app1-`` puts every key under a prefix. ``cache_backend_options`` (Celery's
setting) are keyword arguments of pymemcache's client (``connect_timeout``, ``timeout``...).

Keys (Celery's cache backend names, so a Celery client reads the records):

* ``celery-task-meta-<task id>``: the encoded result record; a saved group's record keeps its
  own ``celery-taskset-meta-<group id>`` name;
* ``celeriac-task-state-<task id>``: the record's state alone, so ``get_state`` and waiting read
  a few bytes; written after the record, so a reader that sees a ready state reads the record
  it belongs to;
* ``celeriac-chord-<key>``: a chord counter (``add`` then ``incr``/``decr``: atomic in the
  server; a counter never goes below 0, as memcached's ``decr``).

With several servers, one that fails raises :class:`TransportError` for the call that met it
and leaves the ring for 5 s: its keys go to the other servers meanwhile (what they held there is
lost, as with any memcached failover).

Guarantees and limits: memcached may evict any key when full and forgets everything when
restarted, so a result can vanish before it expires (and a chord whose counter is evicted never
fires): use it for results you can lose. Expiry is in whole seconds (a lifetime is rounded up);
``cleanup`` has nothing to do. Values are bytes in and bytes out: nothing read is unpickled. A
record larger than the server's item size (1 MiB by default; the ``max_value_bytes`` option
when the server runs with a larger ``-I``) fails with :class:`TransportError` instead of being
dropped. Fork-safe: a child process opens its own connections.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from celeriac._utils.pid import PROCESS
from celeriac._utils.urls import mask_url
from celeriac.backends.base import ResultBackend
from celeriac.exceptions import ImproperlyConfigured, TransportError

DEFAULT_PORT = 11211
#: memcached's default item size (``-I 1m``) less room for the key and the item header
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024 - 512
_THIRTY_DAYS_S = 30 * 24 * 3600  # longer lifetimes are absolute Unix times to memcached
_VALID_KEY = re.compile(rb"^[!-~]{1,250}$")  # printable ASCII, no space, <= 250 bytes
_TASK_PREFIX = "celery-task-meta-"
_GROUP_PREFIX = "celery-taskset-meta-"
_STATE_PREFIX = "celeriac-task-state-"
_COUNTER_PREFIX = "celeriac-chord-"


def parse_servers(url: str) -> tuple[list[tuple[str, int]], str]:
    """``(host, port)`` of each server and the key prefix of a ``cache+memcached://`` URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in MemcachedBackend.schemes:
        raise ImproperlyConfigured(f"not a memcached URL: {mask_url(url)!r}")
    location, _, query = rest.partition("?")
    prefix = parse_qs(query).get("key_prefix", [""])[-1]
    servers: list[tuple[str, int]] = []
    for part in location.rstrip("/").split(";"):
        part = part.strip().rstrip("/")
        if not part:
            continue
        host, colon, port = part.rpartition(":")
        if not colon or host.endswith(":"):  # no port (or a bare IPv6 address)
            host, port = part, str(DEFAULT_PORT)
        try:
            servers.append((host.strip("[]") or "127.0.0.1", int(port)))
        except ValueError:
            raise ImproperlyConfigured(f"{mask_url(url)!r}: bad memcached port {port!r}")
    return servers or [("127.0.0.1", DEFAULT_PORT)], prefix


def _ttl(expires_s: float | None) -> int:
    """memcached's ``exptime`` for a lifetime: 0 keeps, whole seconds rounded up, absolute past
    30 days."""
    if not expires_s or expires_s <= 0:
        return 0
    seconds = math.ceil(expires_s)
    return int(time.time()) + seconds if seconds > _THIRTY_DAYS_S else seconds


class MemcachedBackend(ResultBackend):
    schemes = ("cache+memcached",)
    #: Celery settings the app passes in ``options`` when they are set
    app_settings = ("cache_backend_options",)

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        self.servers, self.key_prefix = parse_servers(url)
        opts = dict(self.options)
        self.max_value_bytes = int(opts.pop("max_value_bytes", DEFAULT_MAX_VALUE_BYTES))
        client_options = opts.get("cache_backend_options") or {}
        if not isinstance(client_options, Mapping):
            raise ImproperlyConfigured("cache_backend_options must be a dict")
        self._client_options: dict[str, Any] = {
            "connect_timeout": 5.0, "timeout": 10.0, **client_options,
        }
        self._client: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    # -- connections -------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """This process's pymemcache client (thread-safe: pooled connections)."""
        client = self._client
        if client is not None and self._pid == PROCESS.pid:
            return client
        if self._pid != PROCESS.pid:
            # Another thread may have held the lock at fork time; the parent's sockets are the
            # parent's: the child only forgets them.
            self._lock, self._client = threading.Lock(), None
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
                self._pid = PROCESS.pid
            return self._client

    def _make_client(self) -> Any:
        from pymemcache.client.base import PooledClient
        from pymemcache.client.hash import HashClient

        # No serde: values are bytes both ways, so nothing read is ever unpickled.
        options = {**self._client_options, "default_noreply": False}
        if len(self.servers) == 1:
            return PooledClient(self.servers[0], **options)
        # retry_attempts=0: a server that fails is taken out of the ring at once (its keys go
        # to the others) and tried again after dead_timeout. With retries, pymemcache would
        # answer calls for a failing server with defaults (None, False) and no error.
        return HashClient(
            self.servers, use_pooling=True, retry_attempts=0, dead_timeout=5, **options
        )

    def _error(self, exc: BaseException, what: str = "") -> TransportError:
        text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        return TransportError(f"result backend {mask_url(self.url)}: {what}{text}")

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from pymemcache.exceptions import MemcacheError

        try:
            return getattr(self.client, method)(*args, **kwargs)
        except (MemcacheError, OSError) as exc:
            raise self._error(exc) from exc

    def _key(self, name: str) -> bytes:
        key = (self.key_prefix + name).encode("utf-8", "surrogateescape")
        if _VALID_KEY.match(key):
            return key
        # memcached keys are <= 250 printable ASCII bytes without spaces: hash other ids.
        return (self.key_prefix + "celeriac-sha1-" + hashlib.sha1(key).hexdigest()).encode()

    def _meta_key(self, task_id: str) -> bytes:
        name = task_id if task_id.startswith(_GROUP_PREFIX) else _TASK_PREFIX + task_id
        return self._key(name)

    # -- records -----------------------------------------------------------------------------

    def store(self, task_id: str, state: str, payload: bytes, expires_s: float | None) -> None:
        self.store_many([(task_id, state, payload)], expires_s)

    def store_many(self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None) -> None:
        if not items:
            return
        records: dict[bytes, bytes] = {}
        states_by_key: dict[bytes, bytes] = {}
        for task_id, state, payload in items:
            if len(payload) > self.max_value_bytes:
                raise TransportError(
                    f"result backend {mask_url(self.url)}: the record of {task_id} is "
                    f"{len(payload)} bytes; memcached holds items up to {self.max_value_bytes} "
                    "bytes (its -I option, then this backend's max_value_bytes option)"
                )
            records[self._meta_key(task_id)] = payload
            states_by_key[self._key(_STATE_PREFIX + task_id)] = state.encode()
        ttl = _ttl(expires_s)
        if len(self.servers) == 1:
            # One connection runs commands in order: records before states in one round trip.
            failed = self._call("set_many", {**records, **states_by_key}, expire=ttl)
        else:
            failed = self._call("set_many", records, expire=ttl)
            failed += self._call("set_many", states_by_key, expire=ttl)
        if failed:
            raise TransportError(
                f"result backend {mask_url(self.url)}: memcached did not store {len(failed)} "
                "key(s)"
            )

    def get(self, task_id: str) -> bytes | None:
        value = self._call("get", self._meta_key(task_id))
        return None if value is None else bytes(value)

    def get_many(self, task_ids: Sequence[str]) -> list[bytes | None]:
        if not task_ids:
            return []
        keys = {task_id: self._meta_key(task_id) for task_id in task_ids}
        found = self._call("get_many", list(set(keys.values())))
        return [
            None if found.get(keys[task_id]) is None else bytes(found[keys[task_id]])
            for task_id in task_ids
        ]

    def get_state(self, task_id: str) -> str | None:
        if task_id.startswith(_GROUP_PREFIX):
            return "SUCCESS" if self.get(task_id) is not None else None
        value = self._call("get", self._key(_STATE_PREFIX + task_id))
        if value is None:
            return None
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:  # not a state celeriac wrote: no state
            return None

    def forget(self, task_id: str) -> None:
        self._call("delete_many", [self._meta_key(task_id), self._key(_STATE_PREFIX + task_id)])

    # -- chord counters ----------------------------------------------------------------------

    def incr(self, key: str, amount: int, expires_s: float | None) -> int:
        name = self._key(_COUNTER_PREFIX + key)
        for _ in range(100):
            if amount >= 0:
                value = self._call("incr", name, amount)
            else:
                value = self._call("decr", name, -amount)
            if value is not None:
                return int(value)
            # No counter yet: create it holding this amount; losing that race to another
            # process means its counter exists now, so count on it.
            start = max(amount, 0)
            if self._call("add", name, str(start).encode(), expire=_ttl(expires_s)):
                return start
        # Only a server that deletes the key between every add and incr gets here.
        raise TransportError(f"result backend {mask_url(self.url)}: counter {key!r} kept vanishing")

    def delete_counter(self, key: str) -> None:
        self._call("delete", self._key(_COUNTER_PREFIX + key))

    def cleanup(self) -> int:
        return 0  # memcached expires keys itself

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._pid == PROCESS.pid:
            try:
                client.close()
            except Exception:  # closing a broken connection is not an error of the caller
                pass
