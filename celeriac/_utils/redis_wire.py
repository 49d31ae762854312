"""The stdlib-only half of the Redis transport (layer 0, testable without redis-py): URL parsing,
transport options, RESP command packing, and the length-prefixed framing of scheduled and
rejected messages. Errors are ValueError; the transport turns them into ImproperlyConfigured.

Accepted URL forms, as broker URL and as ``result_backend``::

    redis://[[username]:password@]host[:port][/db][?option=value...]
    rediss://...                        the same over TLS (ssl_* options in the query)
    redis+socket:///path/to.sock[?db=N]  a Unix socket (also ``virtual_host=N``)
    unix:///path/to.sock[?db=N]
    sentinel://[:password@]host:26379[/db];sentinel://host2:26379[/db]

Query options other than ``db``, ``virtual_host``, ``username`` and ``password`` are kept as
strings in :attr:`RedisParams.query`; the caller converts the ones it knows.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
#: the URL schemes parse_url accepts: the `schemes` of the Redis broker and backend
SCHEMES = ("redis", "rediss", "redis+socket", "unix", "sentinel")


@dataclass(frozen=True, slots=True)
class RedisParams:
    """Where a Redis URL points and how to authenticate."""

    scheme: str
    host: str = "localhost"
    port: int = DEFAULT_PORT
    db: int = 0
    username: str | None = None
    password: str | None = None
    #: path of the Unix socket (redis+socket:// and unix://)
    socket_path: str | None = None
    #: (host, port) of each sentinel (sentinel://)
    sentinels: tuple[tuple[str, int], ...] = ()
    ssl: bool = False
    query: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """"tcp", "unix" or "sentinel"."""
        if self.socket_path is not None:
            return "unix"
        return "sentinel" if self.sentinels else "tcp"


def _db(value: str, url: str) -> int:
    value = value.strip("/")
    if not value:
        return 0
    try:
        db = int(value)
    except ValueError:
        raise ValueError(f"{redact(url)}: database must be a number, not {value!r}") from None
    if db < 0:
        raise ValueError(f"{redact(url)}: database must not be negative")
    return db


def _port(netloc_port: int | None, default: int) -> int:
    return default if netloc_port is None else netloc_port


def parse_redis_url(url: str) -> RedisParams:
    """Split ``url`` into :class:`RedisParams`; raises ValueError for malformed URLs."""
    scheme = url.partition("://")[0].lower()
    if scheme not in SCHEMES:
        raise ValueError(f"Not a Redis URL: {redact(url)} (schemes: {', '.join(SCHEMES)})")
    if scheme == "sentinel":
        return _parse_sentinel(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"Malformed Redis URL {redact(url)}: {exc}") from None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    username = query.pop("username", username)
    password = query.pop("password", password)
    db_text = query.pop("db", None) or query.pop("virtual_host", None)
    if scheme in ("redis+socket", "unix"):
        path = unquote(parts.path)
        if not path:
            raise ValueError(f"{redact(url)}: a socket URL needs a path (unix:///path/to.sock)")
        return RedisParams(
            scheme=scheme,
            db=_db(db_text or "", url),
            username=username or None,
            password=password or None,
            socket_path=path,
            query=query,
        )
    return RedisParams(
        scheme=scheme,
        host=parts.hostname or "localhost",
        port=_port(port, DEFAULT_PORT),
        db=_db(db_text if db_text is not None else parts.path, url),
        username=username or None,
        password=password or None,
        ssl=scheme == "rediss",
        query=query,
    )


def _parse_sentinel(url: str) -> RedisParams:
    """``sentinel://h1:26379;sentinel://h2:26379/0``: every part names one sentinel; the
    password, database and query may be given on any part (the first one given wins)."""
    sentinels: list[tuple[str, int]] = []
    db: int | None = None
    username = password = None
    query: dict[str, str] = {}
    for part in url.split(";"):
        part = part.strip()
        if not part:
            continue
        if not part.lower().startswith("sentinel://"):
            raise ValueError(f"{redact(url)}: every part must start with sentinel://")
        try:
            parts = urlsplit(part)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"Malformed sentinel URL {redact(url)}: {exc}") from None
        sentinels.append((parts.hostname or "localhost", _port(port, DEFAULT_SENTINEL_PORT)))
        if parts.path.strip("/") and db is None:
            db = _db(parts.path, url)
        if parts.password is not None and password is None:
            password = unquote(parts.password)
            username = unquote(parts.username) if parts.username else None
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(key, value)
    if not sentinels:
        raise ValueError(f"{redact(url)}: no sentinel address given")
    db_text = query.pop("db", None) or query.pop("virtual_host", None)
    if db is None:
        db = _db(db_text or "", url)
    return RedisParams(
        scheme="sentinel",
        host=sentinels[0][0],
        port=sentinels[0][1],
        db=db,
        username=username or None,
        password=password or None,
        sentinels=tuple(sentinels),
        query=query,
    )


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    out = []
    for part in url.split(";"):
        scheme, sep, rest = part.partition("://")
        netloc, slash, tail = rest.partition("/")
        userinfo, at, hostport = netloc.rpartition("@")
        if sep and at and ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{hostport}"
        if "password=" in tail:
            head, _, query = tail.partition("?")
            pairs = [
                (k, "***" if k == "password" else v)
                for k, v in parse_qsl(query, keep_blank_values=True)
            ]
            tail = head + "?" + "&".join(f"{k}={quote(v, safe='*')}" for k, v in pairs)
        out.append(f"{scheme}{sep}{netloc}{slash}{tail}" if sep else part)
    return ";".join(out)


# -- options --------------------------------------------------------------------------------------
# Options read from transport options or the URL query, with their types. Anything else in the
# query is an error (a typo must not be silently ignored); other transport options are ignored
# because the same dict also feeds settings of other layers (e.g. visibility_timeout).
_FLOAT_OPTIONS = ("socket_timeout", "socket_connect_timeout", "interval_start", "interval_max")
_INT_OPTIONS = ("max_connections", "health_check_interval", "max_retries")
_BOOL_OPTIONS = ("socket_keepalive", "ssl_check_hostname")
_STR_OPTIONS: tuple[str, ...] = ("client_name", "master_name", "global_keyprefix")
_STR_OPTIONS += ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_ca_path")
# Broker/backend options that may also arrive in the URL query.
_OWNER_OPTIONS = ("visibility_timeout", "polling_interval", "priority_steps")
_SSL_KEYS = tuple(
    key
    for key in (*_STR_OPTIONS, *_BOOL_OPTIONS, "ssl_password", "ssl_ciphers", "ssl_min_version")
    if key.startswith("ssl_")
)
# Celery spells them CERT_REQUIRED etc.; redis-py "required".
_CERT_REQS = {
    alias: getattr(ssl, f"CERT_{level.upper()}")
    for level in ("required", "optional", "none")
    for alias in (level, f"cert_{level}")
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
            raise ValueError(
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
        raise ValueError(f"Bad Redis transport option: {exc}") from None


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
            raise ValueError(
                f"ssl_cert_reqs must be required, optional or none, not {reqs!r}"
            ) from None
    if found.get("ssl_cert_reqs") == ssl.CERT_NONE:
        # Without a certificate check a host name check is meaningless (and ssl refuses it).
        found.setdefault("ssl_check_hostname", False)
    return found


def wants_ssl(params: RedisParams, options: Mapping[str, Any], keys: tuple[str, ...]) -> bool:
    return params.ssl or any(options.get(k) for k in keys)


# -- RESP and framing -----------------------------------------------------------------------------
def _arg(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else str(value)).encode()


def pack_commands(commands: Sequence[tuple[Any, ...]]) -> bytes:
    """RESP for ``commands`` (bytes, str or int arguments)."""
    out = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for value in command:
            data = _arg(value)
            out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


_LEN = struct.Struct(">I")


def frame(parts: Iterable[bytes]) -> bytes:
    """Length-prefixed concatenation, cheap to split in Lua with struct.unpack('>I4')."""
    return b"".join(_LEN.pack(len(part)) + part for part in parts)


def unframe(data: bytes, offset: int = 0) -> list[bytes]:
    parts = []
    while offset < len(data):
        (size,) = _LEN.unpack_from(data, offset)
        offset += 4
        parts.append(data[offset : offset + size])
        offset += size
    return parts


def priority_steps(value: Any) -> tuple[int, ...]:
    """The priorities that get a stream of their own (``priority_steps`` option: a list or a
    comma-separated string); every priority goes to the highest step not above it."""
    if value is None:
        return tuple(range(10))
    if isinstance(value, str):
        value = value.split(",")
    steps = tuple(sorted({min(max(int(v), 0), 9) for v in value}))
    if not steps:
        raise ValueError("priority_steps must name at least one priority")
    return steps if steps[0] == 0 else (0, *steps)
