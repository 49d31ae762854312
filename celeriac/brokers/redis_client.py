"""What the Redis broker and the Redis result backend share: building a redis-py client from a
URL and options, one client per process (rebuilt after ``fork``), the Lua scripts, and the
translation of redis-py errors into celeriac's error tree.

Retries: redis-py's own :class:`~redis.retry.Retry` with exponential backoff re-runs a command
(reconnecting first) on ConnectionError/TimeoutError, so a Redis restart costs the caller a short
wait instead of an error. Once the retries are spent the error becomes a
:class:`~celeriac.exceptions.TransportError` (``BrokerConnectionError`` for the broker) naming the
server, which the worker loop catches and retries with its own backoff.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Mapping
from importlib import resources
from types import TracebackType
from typing import Any

import redis
import redis.sentinel
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry

from celeriac._utils.redis_url import RedisParams, parse_redis_url, redact
from celeriac.exceptions import ImproperlyConfigured, TransportError

# Options read from transport options or the URL query, with their types. Anything else in the
# query is an error (a typo must not be silently ignored); other transport options are ignored
# because the same dict also feeds settings of other layers (e.g. visibility_timeout).
_FLOAT_OPTIONS = ("socket_timeout", "socket_connect_timeout", "interval_start", "interval_max")
_INT_OPTIONS = ("max_connections", "health_check_interval", "max_retries")
_BOOL_OPTIONS = ("socket_keepalive", "ssl_check_hostname")
_STR_OPTIONS = (
    "client_name",
    "master_name",
    "global_keyprefix",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_ca_path",
)
# Broker/backend options that may also arrive in the URL query.
_OWNER_OPTIONS = ("visibility_timeout", "polling_interval", "priority_steps")
_SSL_KEYS = (
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_ca_path",
    "ssl_check_hostname",
    "ssl_password",
    "ssl_ciphers",
    "ssl_min_version",
)
_CERT_REQS = {
    "required": ssl.CERT_REQUIRED,
    "cert_required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "cert_optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
    "cert_none": ssl.CERT_NONE,
}

DEFAULTS: dict[str, Any] = {
    "socket_timeout": 10.0,
    "socket_connect_timeout": 5.0,
    "socket_keepalive": True,
    "health_check_interval": 25,
    # Backoff 0.1, 0.2, 0.4 s: a restart of a local Redis is bridged; a dead one is reported
    # within about a second (plus connect timeouts for unreachable hosts).
    "max_retries": 3,
    "interval_start": 0.05,
    "interval_max": 0.5,
}


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _convert(name: str, value: Any) -> Any:
    if name in _FLOAT_OPTIONS:
        return None if value is None else float(value)
    if name in _INT_OPTIONS:
        return None if value is None else int(value)
    if name in _BOOL_OPTIONS:
        return _bool(value)
    return value


def merged_options(params: RedisParams, options: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults < URL query < transport options, converted to their types."""
    merged = dict(DEFAULTS)
    known = {*_FLOAT_OPTIONS, *_INT_OPTIONS, *_BOOL_OPTIONS, *_STR_OPTIONS, *_OWNER_OPTIONS}
    for key, value in params.query.items():
        if key not in known:
            raise ImproperlyConfigured(
                f"{redact_params(params)}: unknown URL option {key!r} (known: {sorted(known)})"
            )
        merged[key] = value
    policy = options.get("retry_policy")
    if isinstance(policy, Mapping):
        merged.update({k: policy[k] for k in _FLOAT_OPTIONS + _INT_OPTIONS if k in policy})
    merged.update(options)
    try:
        return {key: _convert(key, value) for key, value in merged.items()}
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"Bad Redis transport option: {exc}") from exc


def redact_params(params: RedisParams) -> str:
    if params.kind == "unix":
        return f"{params.scheme}://{params.socket_path}"
    if params.kind == "sentinel":
        return ";".join(f"sentinel://{h}:{p}" for h, p in params.sentinels)
    return f"{params.scheme}://{params.host}:{params.port}/{params.db}"


def ssl_kwargs(options: Mapping[str, Any], ssl_option_keys: tuple[str, ...]) -> dict[str, Any]:
    """redis-py's ssl_* keyword arguments from the options (URL query included) and from any of
    ``ssl_option_keys`` (``broker_use_ssl``-style dicts; ``True`` means defaults)."""
    found: dict[str, Any] = {k: options[k] for k in _SSL_KEYS if options.get(k) is not None}
    for key in ssl_option_keys:
        extra = options.get(key)
        if isinstance(extra, Mapping):
            found.update({k: v for k, v in extra.items() if k.startswith("ssl_")})
    reqs = found.get("ssl_cert_reqs")
    if isinstance(reqs, str):
        try:
            found["ssl_cert_reqs"] = _CERT_REQS[reqs.strip().lower()]
        except KeyError:
            raise ImproperlyConfigured(
                f"ssl_cert_reqs must be required, optional or none, not {reqs!r}"
            ) from None
    if found.get("ssl_cert_reqs") == ssl.CERT_NONE:
        # Without a certificate check a host name check is meaningless (and ssl refuses it).
        found.setdefault("ssl_check_hostname", False)
    return found


def wants_ssl(params: RedisParams, options: Mapping[str, Any], keys: tuple[str, ...]) -> bool:
    return params.ssl or any(options.get(k) for k in keys)


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
        "retry_on_timeout": True,
        # RESP2 keeps replies (and pub/sub messages) in the shapes this module parses.
        "protocol": 2,
    }
    if params.kind != "unix" and wants_ssl(params, options, ssl_option_keys):
        kwargs["ssl"] = True
        kwargs.update(ssl_kwargs(options, ssl_option_keys))
    return kwargs


_script_cache: dict[str, str] = {}


def lua_source(name: str) -> str:
    """The text of ``redis_scripts/<name>.lua`` (read once per process)."""
    text = _script_cache.get(name)
    if text is None:
        path = resources.files("celeriac.brokers").joinpath(f"redis_scripts/{name}.lua")
        text = _script_cache[name] = path.read_text(encoding="utf-8")
    return text


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
    ) -> bool:
        if exc is None or not isinstance(exc, redis.RedisError):
            return False
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            raise self._connection_error(
                f"Redis at {self._where} is unreachable after retries "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        raise TransportError(f"Redis at {self._where}: {type(exc).__name__}: {exc}") from exc


class RedisConnection:
    """One redis-py client (and its connection pool) per process for one URL.

    Built on first use, so nothing connects at import or construction time; rebuilt when the
    process id changes, because a pool's sockets must never be shared with a forked child.
    """

    def __init__(
        self,
        url: str,
        options: Mapping[str, Any],
        *,
        connection_error: type[TransportError],
        ssl_option_keys: tuple[str, ...],
    ) -> None:
        try:
            self.params = parse_redis_url(url)
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        self.options = merged_options(self.params, options)
        self.prefix: str = str(self.options.get("global_keyprefix") or "")
        self._kwargs = client_kwargs(self.params, self.options, ssl_option_keys)
        if self.params.kind == "sentinel" and not self.options.get("master_name"):
            raise ImproperlyConfigured(
                f"{redact(url)}: a sentinel URL needs the transport option 'master_name'"
            )
        self.where = redact_params(self.params)
        self.errors = Translate(self.where, connection_error)
        self._lock = threading.Lock()
        self._pid = 0
        self._client: redis.Redis | None = None
        self._sentinel: redis.sentinel.Sentinel | None = None
        self._scripts: dict[str, Script] = {}

    @property
    def client(self) -> redis.Redis:
        client = self._client
        if client is not None and self._pid == os.getpid():
            return client
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                # A forked child drops (never closes) its parent's client: closing would
                # disturb sockets the parent still uses.
                self._client = self._build()
                self._pid = os.getpid()
                self._scripts = {}
            return self._client

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
        return self._sentinel.master_for(str(self.options["master_name"]), **kwargs)

    def script(self, name: str) -> Script:
        """The registered script ``name``: EVALSHA, loading it again after a Redis restart."""
        client = self.client
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = client.register_script(lua_source(name))
        return script

    def key(self, name: str) -> str:
        return self.prefix + name

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            sentinel, self._sentinel = self._sentinel, None
            if self._pid != os.getpid():
                return
        if client is not None:
            client.close()
            client.connection_pool.disconnect()
        if sentinel is not None:
            for sentinel_client in sentinel.sentinels:
                sentinel_client.close()
