"""What the Redis broker, result backend and coordination store share: redis-py clients built
from a URL and options (one pool per process, rebuilt after ``fork``; one connection per
thread), the Lua scripts, the translation of redis-py errors into celeriac's error tree, and
the write-behind channel the broker's acks use.

Retries: redis-py's own :class:`~redis.retry.Retry` with exponential backoff re-runs a command
(reconnecting first) on ConnectionError/TimeoutError, so a Redis restart costs the caller a short
wait instead of an error. Once the retries are spent the error becomes a
:class:`~celeriac.exceptions.TransportError` (``BrokerConnectionError`` for the broker) naming the
server, which the worker loop catches and retries with its own backoff.
"""

from __future__ import annotations

import hashlib
import logging
import select
import threading
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from importlib import resources
from types import TracebackType
from typing import Any

import hiredis
import redis
import redis.sentinel
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry

from celeriac._utils.pid import PROCESS
from celeriac._utils.redis_wire import (
    RedisParams,
    merged_options,
    parse_redis_url,
    redact,
    redact_params,
    ssl_kwargs,
    wants_ssl,
)
from celeriac._utils.redis_wire import pack_commands as _pack_python
from celeriac.exceptions import ImproperlyConfigured, TransportError

logger = logging.getLogger("celeriac.redis")


def client_kwargs(
    params: RedisParams, options: Mapping[str, Any], ssl_option_keys: tuple[str, ...]
) -> dict[str, Any]:
    """Keyword arguments of ``redis.Redis`` (or of a sentinel's ``master_for``)."""
    retry = Retry(
        ExponentialBackoff(cap=options["interval_max"], base=options["interval_start"]),
        max(0, options["max_retries"]),
    )
    kwargs: dict[str, Any] = {
        "db": params.db,
        "username": params.username,
        "password": params.password,
        "socket_timeout": options["socket_timeout"],
        "socket_connect_timeout": options["socket_connect_timeout"],
        "socket_keepalive": options["socket_keepalive"],
        "health_check_interval": options["health_check_interval"] or 0,
        "max_connections": options.get("max_connections"),
        "client_name": options.get("client_name"),
        "retry": retry,
        # RESP2 keeps replies (and pub/sub messages) in the shapes this module parses.
        "protocol": 2,
    }
    if params.kind != "unix" and wants_ssl(params, options, ssl_option_keys):
        kwargs["ssl"] = True
        kwargs.update(ssl_kwargs(options, ssl_option_keys))
    return kwargs


def readable(fd: int, timeout_s: float | None) -> bool:
    """Whether ``fd`` has data within ``timeout_s`` (None: wait). poll(), not select(): select
    fails on descriptors past 1023, which a busy process reaches."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout_s is None else timeout_s * 1000))


def _raw(response: Any, **options: Any) -> Any:
    return response


_script_cache: dict[str, str] = {}


def lua_source(name: str) -> str:
    """The text of ``scripts/<name>.lua`` (read once per process)."""
    text = _script_cache.get(name)
    if text is None:
        path = resources.files("celeriac._redis").joinpath(f"scripts/{name}.lua")
        text = _script_cache[name] = path.read_text(encoding="utf-8")
    return text


class _SentinelConnection(redis.sentinel.SentinelManagedConnection):
    """A sentinel-managed connection that asks the sentinels for the master on every connect.

    redis-py connects a closed connection from ``send_packed_command`` through
    ``connect_check_health``, which skips ``SentinelManagedConnection.connect`` (the master
    lookup): a connection from the pool's ``make_connection`` (redis_direct's) would go to the
    default localhost:6379, and one reconnecting in a retry would go back to the old master after
    a failover."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        # redis-py leaves both unannotated, and untyped_calls_exclude misses inherited methods
        if not self._sock:
            self.connect()  # type: ignore[no-untyped-call]
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


class _SentinelSSLConnection(_SentinelConnection, redis.sentinel.SentinelManagedSSLConnection):
    pass


class Translate:
    """``with conn.errors:`` turns redis-py errors into celeriac's, naming the server."""

    __slots__ = ("_connection_error", "_where")

    def __init__(self, where: str, connection_error: type[TransportError]) -> None:
        self._where = where
        self._connection_error = connection_error

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or not isinstance(exc, redis.RedisError):
            return
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            raise self._connection_error(
                f"Redis at {self._where} is unreachable after retries "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        raise TransportError(f"Redis at {self._where}: {type(exc).__name__}: {exc}") from exc


class RedisConnection:
    """The redis-py clients of one URL: one connection pool per process, and per thread a client
    holding one connection of it.

    Built on first use, so nothing connects at import or construction time; rebuilt when the
    process id changes, because a pool's sockets must never be shared with a forked child. A
    thread keeps its connection (released when the thread ends or on :meth:`close`): taking
    and returning a pooled connection for every command costs more than the command itself on
    a local Redis.
    """

    def __init__(
        self,
        url: str,
        options: Mapping[str, Any],
        *,
        connection_error: type[TransportError],
        ssl_option_keys: tuple[str, ...],
        raw_replies: tuple[str, ...] = (),
    ) -> None:
        try:
            self.params = parse_redis_url(url)
            self.options = merged_options(self.params, options)
            self._kwargs = client_kwargs(self.params, self.options, ssl_option_keys)
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        self.prefix: str = str(self.options.get("global_keyprefix") or "")
        if self.params.kind == "sentinel" and not self.options.get("master_name"):
            raise ImproperlyConfigured(
                f"{redact(url)}: a sentinel URL needs the transport option 'master_name'"
            )
        self.where = redact_params(self.params)
        self.errors = Translate(self.where, connection_error)
        self._lock = threading.Lock()
        self._pid = 0
        self._base: redis.Redis | None = None
        self._sentinel: redis.sentinel.Sentinel | None = None
        self._local = threading.local()
        # Weak: the client of a finished thread is collected, which returns its connection.
        self._thread_clients: weakref.WeakSet[redis.Redis] = weakref.WeakSet()
        self._scripts: dict[str, Script] = {}
        self._raw_replies = raw_replies

    @property
    def base(self) -> redis.Redis:
        """The client owning this process's pool (for pipelines and dedicated connections)."""
        base = self._base
        if base is not None and self._pid == PROCESS.pid:
            return base
        with self._lock:
            if self._base is None or self._pid != PROCESS.pid:
                # A forked child drops (never closes) its parent's clients: closing would
                # disturb sockets the parent still uses.
                self._base = self._build()
                self._thread_clients = weakref.WeakSet()
                self._local = threading.local()
                self._scripts = {}
                self._pid = PROCESS.pid
            return self._base

    @property
    def client(self) -> redis.Redis:
        """This thread's client."""
        client: redis.Redis | None = getattr(self._local, "client", None)
        if client is not None and self._pid == PROCESS.pid:
            return client
        pool = self.base.connection_pool
        client = redis.Redis(connection_pool=pool, single_connection_client=True)
        for command in self._raw_replies:
            # Nested lists as hiredis parsed them, not redis-py's slower dicts.
            client.set_response_callback(command, _raw)
        with self._lock:
            self._thread_clients.add(client)
        self._local.client = client
        return client

    def _build(self) -> redis.Redis:
        params, kwargs = self.params, self._kwargs
        if params.kind == "unix":
            return redis.Redis(unix_socket_path=params.socket_path, **kwargs)
        if params.kind == "tcp":
            return redis.Redis(host=params.host, port=params.port, **kwargs)
        sentinel_kwargs = dict(self.options.get("sentinel_kwargs") or {})
        sentinel_kwargs.setdefault("socket_timeout", kwargs["socket_timeout"])
        sentinel_kwargs.setdefault("socket_connect_timeout", kwargs["socket_connect_timeout"])
        self._sentinel = redis.sentinel.Sentinel(
            list(params.sentinels), sentinel_kwargs=sentinel_kwargs
        )
        # The sentinel connection pool asks the sentinels for the master on every (re)connect,
        # so a failover is followed without anything here.
        kwargs = dict(kwargs)
        ssl_on = kwargs.pop("ssl", False)
        kwargs["connection_class"] = _SentinelSSLConnection if ssl_on else _SentinelConnection
        client: redis.Redis = self._sentinel.master_for(str(self.options["master_name"]), **kwargs)
        return client

    def run(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run ``scripts/<name>.lua`` on this thread's connection: EVALSHA, loading the
        script again when Redis lost it (a restart)."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.base.register_script(lua_source(name))
        return script(keys=keys, args=args, client=self.client)

    def key(self, name: str) -> str:
        return self.prefix + name

    @property
    def server(self) -> tuple[Any, ...]:
        """Which Redis database this connection reaches (not the key prefix): two connections
        with the same value can take part in one MULTI/EXEC transaction."""
        p = self.params
        return (p.kind, p.host, p.port, p.socket_path, p.sentinels,
                self.options.get("master_name"), p.db)

    def close(self) -> None:
        with self._lock:
            base, self._base = self._base, None
            sentinel, self._sentinel = self._sentinel, None
            clients = list(self._thread_clients)
            self._thread_clients = weakref.WeakSet()
            self._local = threading.local()
            if self._pid != PROCESS.pid:
                return
        for client in clients:
            client.close()
        if base is not None:
            base.close()
            base.connection_pool.disconnect()
        if sentinel is not None:
            for sentinel_client in sentinel.sentinels:
                sentinel_client.close()


def pack_commands(commands: Sequence[tuple[Any, ...]]) -> bytes:
    """RESP for ``commands`` without redis-py's per-command overhead: hiredis's packer when
    installed, else the plain one."""
    if _hiredis_pack is None:
        return _pack_python(commands)
    return b"".join([_hiredis_pack(command) for command in commands])


_hiredis_pack: Any
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis comes with the redis extra
    _hiredis_pack = None


class WriteBehind:
    """Idempotent commands (the broker's ``EVALSHA ack.lua``) sent at once on a connection of
    their own, their replies read later.

    The broker's acks go this way: an ack has left the process when ``send`` returns (so a worker
    killed by its next task does not get the acked message back, as with a synchronous ack), but
    the caller does not wait a round trip for the reply. Replies wait in the socket buffer and
    are read in bulk (hiredis, ~0.2 µs each) by :meth:`flush`, which the broker calls before any
    other operation so its callers see acks as done. If the connection breaks with replies
    outstanding, those commands are sent again on a fresh connection; being idempotent, running
    twice is harmless. An ``EVALSHA`` answered NOSCRIPT (Redis restarted, or SCRIPT FLUSH) is
    sent again as ``EVAL`` with the script's text, which also loads it. Other error replies are
    logged (the message then comes back once its lease lapses). redis-py's Connection does the
    connecting (TLS, auth, db, sentinel); the socket is then used directly.
    """

    def __init__(self, conn: RedisConnection, max_unread: int = 4_096) -> None:
        self._conn = conn
        self._max_unread = max_unread
        self._lock = threading.Lock()
        self._pid = 0
        self._pool: Any = None
        self._connection: Any = None
        #: [replies still to read, commands] per send, oldest first
        self._batches: deque[list[Any]] = deque()
        self._unread = 0
        self._reader = hiredis.Reader()
        #: script name -> sha1, and sha1 -> text (for the NOSCRIPT fallback)
        self._shas: dict[str, str] = {}
        self._sources: dict[str, str] = {}

    def script_sha(self, name: str) -> str:
        """The sha1 under which ``scripts/<name>.lua`` runs in an ``EVALSHA`` sent here."""
        sha = self._shas.get(name)
        if sha is None:
            source = lua_source(name)
            sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()
            self._sources[sha] = source
            self._shas[name] = sha
        return sha

    def send(self, commands: Sequence[tuple[Any, ...]]) -> None:
        packet = pack_commands(commands)
        with self._lock:
            sock = self._socket()
            if self._unread > self._max_unread:
                self._collect(block=True)
                sock = self._socket()
            self._batches.append([len(commands), commands])
            self._unread += len(commands)
            try:
                sock.sendall(packet)
            except OSError:
                self._resend()

    def read_ready(self) -> None:
        """Read the replies that have arrived, waiting for none (errors are handled as in
        :meth:`flush`)."""
        if not self._unread:
            return
        with self._lock:
            if self._unread and self._pid == PROCESS.pid:
                self._collect(block=False)

    def flush(self) -> None:
        """Wait for every reply outstanding."""
        if not self._unread:
            return
        with self._lock:
            if self._unread and self._pid == PROCESS.pid:
                self._collect(block=True)

    def _socket(self) -> Any:
        if self._pid != PROCESS.pid:
            # A forked child must not read its parent's replies: start afresh.
            self._connection = None
            self._batches.clear()
            self._unread = 0
            self._pid = PROCESS.pid
        conn = self._connection
        if conn is None:
            self._pool = self._conn.base.connection_pool
            conn = self._connection = self._pool.get_connection()
            self._reader = hiredis.Reader()
        if conn._sock is None:
            conn.connect()
            self._reader = hiredis.Reader()
        return conn._sock

    def _collect(self, block: bool) -> None:
        resends = 0
        while self._unread:
            try:
                sock = self._connection._sock
                if sock is None:
                    raise redis.ConnectionError("connection lost")
                if not block and not readable(sock.fileno(), 0):
                    return
                data = sock.recv(65536)
                if not data:
                    raise redis.ConnectionError("Redis closed the connection")
            except (redis.ConnectionError, OSError) as exc:
                resends += 1
                if resends > 2:
                    self._drop()
                    raise redis.ConnectionError(f"acks not confirmed: {exc}") from exc
                self._resend()
                continue
            self._reader.feed(data)
            again: list[tuple[Any, ...]] = []
            reply = self._reader.gets()
            while reply is not False:
                self._unread -= 1
                head = self._batches[0]
                if isinstance(reply, hiredis.ReplyError):
                    self._failed(head[1][len(head[1]) - head[0]], reply, again)
                head[0] -= 1
                if not head[0]:
                    self._batches.popleft()
                reply = self._reader.gets()
            if again:
                self._batches.append([len(again), again])
                self._unread += len(again)
                try:
                    self._connection._sock.sendall(pack_commands(again))
                except OSError:
                    self._resend()

    def _failed(self, command: tuple[Any, ...], error: Exception, again: list[Any]) -> None:
        source = self._sources.get(command[1]) if command[0] == "EVALSHA" else None
        if source is not None and str(error).startswith("NOSCRIPT"):
            again.append(("EVAL", source, *command[2:]))
            return
        logger.warning("Redis refused a write-behind %s: %s", command[0], error)

    def _resend(self) -> None:
        commands = [command for batch in self._batches for command in batch[1]]
        self._batches = deque([[len(commands), commands]])
        self._unread = len(commands)
        conn = self._connection
        conn.disconnect()
        packet = pack_commands(commands)

        def send() -> None:
            self._socket().sendall(packet)

        try:
            conn.retry.call_with_retry(send, lambda _error: conn.disconnect())
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        """Forget outstanding commands (their messages come back once their leases lapse)."""
        self._batches.clear()
        self._unread = 0
        if self._connection is not None:
            self._connection.disconnect()

    def close(self) -> None:
        with self._lock:
            conn = self._connection
            if conn is None or self._pid != PROCESS.pid:
                self._connection = None
                return
            try:
                self._collect(block=True)
            except (redis.RedisError, OSError):
                pass  # unconfirmed acks: those messages come back once their leases lapse
            finally:
                self._connection = None
                self._batches.clear()
                self._unread = 0
                conn.disconnect()
                self._pool.release(conn)
