"""Parsing of Redis URLs into connection parameters (stdlib only, so it is testable without
redis-py and lives in layer 0).

Accepted forms, as broker URL and as ``result_backend``::

    redis://[[username]:password@]host[:port][/db][?option=value...]
    rediss://...                        the same over TLS (ssl_* options in the query)
    redis+socket:///path/to.sock[?db=N]  a Unix socket (also ``virtual_host=N``)
    unix:///path/to.sock[?db=N]
    sentinel://[:password@]host:26379[/db];sentinel://host2:26379[/db]

Query options other than ``db``, ``virtual_host``, ``username`` and ``password`` are kept as
strings in :attr:`RedisParams.query`; the caller converts the ones it knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
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
