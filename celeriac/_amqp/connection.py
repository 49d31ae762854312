"""AMQP URLs, connections and error translation (the stable API other transports use).

API (kept stable; the RPC result backend builds on it):

* ``parse_url(url, options=None) -> AmqpParams``: ``amqp://``, ``pyamqp://`` (the same) and
  ``amqps://`` (TLS) URLs as Celery users write them: ``amqp://user:password@host:port/vhost``,
  where ``//`` (an empty second path segment) and ``/%2F`` name the vhost ``/``, and an empty
  path names ``/`` too. Defaults: ``guest``/``guest`` on ``localhost``, port 5672 (5671 with
  TLS). Query parameters are options (``?heartbeat=30&connect_timeout=2``); the
  ``options`` mapping (``broker_transport_options``) wins over them. A malformed URL raises
  ImproperlyConfigured with one line.
* ``open_connection(params, *, connect_timeout_s=None, heartbeat_s=None, ssl=None)
  -> amqp.Connection``: connected and ready; any failure comes out translated (below).
* ``translate(exc, params) -> TransportError``: one clear line naming the URL (password
  masked) and the likely fix. Unreachable servers, refused logins and missing vhosts give
  :class:`~celeriac.exceptions.BrokerConnectionError` with distinct messages; other
  client-library errors give :class:`~celeriac.exceptions.TransportError`.
* ``open_channel(params, confirms=False) -> (connection, channel)`` and
  ``wait_until(connection, done, timeout_s)``, ``tick(connection)``: the pieces every AMQP
  client here repeats.
* ``CLIENT_ERRORS``: the exception types ``translate`` understands (catch these, then
  translate, at each module boundary).

TLS: ``amqps://``, or ``ssl`` / ``broker_use_ssl`` in the options (Celery's setting reaches
them): ``True`` for the system's CAs, or a dict as Celery users write it and py-amqp takes it
(``ca_certs``, ``certfile``, ``keyfile``, ``cert_reqs``, ``server_hostname``, ``ciphers``).
Rules:

* The server's certificate and its host name are checked unless ``cert_reqs`` is
  ``ssl.CERT_NONE``; the name checked is the URL's host unless ``server_hostname`` says
  another.
* ``cert_reqs`` may be the ``ssl`` constant or its name (``"required"``, ``"CERT_NONE"``...).
* An :class:`ssl.SSLContext` is refused in one line: py-amqp would ignore it silently.
"""

from __future__ import annotations

import socket
import ssl as ssl_module
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from celeriac._amqp import frames
from celeriac._utils.redis_wire import redact
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured, TransportError

if TYPE_CHECKING:
    import amqp

SCHEMES = ("amqp", "amqps", "pyamqp")
DEFAULT_CONNECT_TIMEOUT_S = 4.0
#: heartbeats let both sides notice a dead peer; consumers tick them while they wait
DEFAULT_HEARTBEAT_S = 60.0
_NUMERIC = ("connect_timeout", "heartbeat", "read_timeout", "write_timeout")


@dataclass(frozen=True, slots=True)
class AmqpParams:
    """Where and how to connect; ``display`` is the URL with its password masked."""

    host: str
    port: int
    userid: str
    password: str
    virtual_host: str
    ssl: bool | dict[str, Any]
    display: str
    options: Mapping[str, Any] = field(default_factory=dict)


def parse_url(url: str, options: Mapping[str, Any] | None = None) -> AmqpParams:
    """See the module docstring."""
    display = redact(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ImproperlyConfigured(f"Malformed AMQP URL {display}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ImproperlyConfigured(
            f"Not an AMQP URL: {display} (expected amqp://, amqps:// or pyamqp://)"
        )
    merged: dict[str, Any] = dict(parse_qsl(parts.query))
    merged.update(options or {})
    for key in _NUMERIC:
        if isinstance(merged.get(key), str):
            try:
                merged[key] = float(merged[key])
            except ValueError:
                raise ImproperlyConfigured(
                    f"AMQP option {key}={merged[key]!r} in {display} is not a number"
                ) from None
    tls: bool | dict[str, Any] = scheme == "amqps"
    for key in ("ssl", "broker_use_ssl"):
        value = merged.get(key)
        if isinstance(value, ssl_module.SSLContext):
            raise ImproperlyConfigured(
                f"{key} for {display} is an ssl.SSLContext, which py-amqp ignores: give a dict "
                "instead (ca_certs, certfile, keyfile, cert_reqs)"
            )
        if isinstance(value, Mapping):
            tls = _tls_options(value, display)
        elif isinstance(value, str):
            tls = tls or value.lower() in {"1", "true", "yes", "on"}
        elif value:
            tls = True
    path = parts.path
    vhost = unquote(path[1:]) if len(path) > 1 else "/"
    return AmqpParams(
        host=parts.hostname or "localhost",
        port=port or (5671 if tls else 5672),
        userid=unquote(parts.username) if parts.username else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        virtual_host=vhost,
        ssl=tls,
        display=display,
        options=merged,
    )


_CERT_REQS = {
    "none": ssl_module.CERT_NONE, "optional": ssl_module.CERT_OPTIONAL,
    "required": ssl_module.CERT_REQUIRED,
}


def _tls_options(given: Mapping[str, Any], display: str) -> dict[str, Any]:
    """``broker_use_ssl``'s dict as py-amqp takes it (``cert_reqs`` by name made a constant)."""
    options = dict(given)
    reqs = options.get("cert_reqs")
    if isinstance(reqs, str):
        name = reqs.strip().lower().removeprefix("cert_")
        if name not in _CERT_REQS:
            raise ImproperlyConfigured(
                f"cert_reqs={reqs!r} for {display}: use ssl.CERT_REQUIRED, ssl.CERT_OPTIONAL "
                "or ssl.CERT_NONE (or 'required', 'optional', 'none')"
            )
        options["cert_reqs"] = _CERT_REQS[name]
    return options


def _with_host_check(tls: bool | dict[str, Any], host: str) -> bool | dict[str, Any]:
    """py-amqp checks the host name exactly when ``server_hostname`` is given: give the URL's
    host unless certificates are not checked at all (then a name check cannot be asked)."""
    if tls is False:
        return False
    options = {} if tls is True else dict(tls)
    if options.get("cert_reqs") == ssl_module.CERT_NONE:
        options.pop("server_hostname", None)
    else:
        options.setdefault("server_hostname", host)
    return options


def open_connection(
    params: AmqpParams,
    *,
    connect_timeout_s: float | None = None,
    heartbeat_s: float | None = None,
    ssl: bool | dict[str, Any] | None = None,
) -> amqp.Connection:
    """A connected py-amqp connection (see the module docstring); errors are translated."""
    import amqp

    options = params.options
    timeout_s = connect_timeout_s or float(
        options.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT_S
    )
    beat_s = heartbeat_s if heartbeat_s is not None else options.get("heartbeat")
    tls = _with_host_check(params.ssl if ssl is None else ssl, params.host)
    conn = amqp.Connection(
        host=f"{params.host}:{params.port}",
        userid=params.userid,
        password=params.password,
        virtual_host=params.virtual_host,
        ssl=tls,
        connect_timeout=timeout_s,
        heartbeat=int(DEFAULT_HEARTBEAT_S if beat_s is None else beat_s),
        read_timeout=options.get("read_timeout"),
        write_timeout=options.get("write_timeout"),
        client_properties={"product": "celeriac"},
    )
    try:
        conn.connect()
    except CLIENT_ERRORS as exc:
        _close_quietly(conn)
        raise translate(exc, params) from exc
    frames.install(conn)  # whole frames per recv: docs in celeriac/_amqp/frames.py
    return conn


def open_channel(params: AmqpParams, *, confirms: bool = False) -> tuple[Any, Any]:
    """A new connection and a channel on it that hands bodies over as bytes (never decoded),
    in confirm mode when ``confirms``; errors are translated."""
    conn = open_connection(params)
    try:
        channel = conn.channel()
        channel.auto_decode = False
        if confirms:
            channel.confirm_select()
    except CLIENT_ERRORS as exc:
        close_quietly(conn)
        raise translate(exc, params) from exc
    return conn, channel


def wait_until(conn: Any, done: Callable[[], bool], timeout_s: float) -> None:
    """Handle what arrives on ``conn`` until ``done()`` or ``timeout_s`` passed, sending
    heartbeats as due (client-library errors are the caller's to translate)."""
    deadline = time.monotonic() + max(0.0, timeout_s)
    conn.heartbeat_tick()
    while not done():
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            return
        try:
            conn.drain_events(timeout=min(remaining_s, 1.0))
        except TimeoutError:
            conn.heartbeat_tick()


def tick(conn: Any, max_frames: int = 100) -> None:
    """Handle what already arrived on ``conn`` (without waiting) and send a heartbeat when one
    is due: what an idle connection needs now and then so RabbitMQ does not close it."""
    try:
        for _ in range(max_frames):
            conn.drain_events(timeout=0)
    except TimeoutError:
        pass
    conn.heartbeat_tick()


def _close_quietly(conn: Any) -> None:
    try:
        conn.collect()
    except Exception:  # the connection is already broken; nothing to report
        pass


def close_quietly(conn: Any) -> None:
    """Close ``conn`` politely if it still works, else drop its socket; never raises."""
    try:
        conn.close()
    except Exception:
        _close_quietly(conn)


def _client_errors() -> tuple[type[BaseException], ...]:
    try:
        import amqp
    except ImportError:
        return (OSError,)
    return (amqp.exceptions.AMQPError, OSError, amqp.exceptions.RecoverableConnectionError)


#: exception types :func:`translate` understands
CLIENT_ERRORS: tuple[type[BaseException], ...] = _client_errors()


def is_channel_only(exc: BaseException) -> bool:
    """Whether ``exc`` closed only a channel (the connection still works)."""
    import amqp

    return isinstance(exc, amqp.exceptions.ChannelError) and not isinstance(
        exc, amqp.exceptions.AccessRefused
    )


def translate(exc: BaseException, params: AmqpParams) -> TransportError:
    """One line naming the URL (password masked) and the fix; see the module docstring."""
    import amqp

    if isinstance(exc, TransportError):
        return exc  # already ours (BrokerConnectionError is an OSError too)
    where = params.display
    text = str(getattr(exc, "reply_text", "") or exc)
    if isinstance(exc, amqp.exceptions.AccessRefused) and "Login was refused" in text:
        return BrokerConnectionError(
            f"RabbitMQ at {where} refused the login of user {params.userid!r}: check the user "
            "name and password in the broker URL"
        )
    if isinstance(exc, amqp.exceptions.NotAllowed) and "vhost" in text:
        return BrokerConnectionError(
            f"RabbitMQ at {where}: virtual host {params.virtual_host!r} does not exist or user "
            f"{params.userid!r} may not use it: create it (rabbitmqctl add_vhost) and grant "
            "permissions, or fix the vhost in the broker URL"
        )
    if isinstance(exc, amqp.exceptions.AccessRefused):
        return BrokerConnectionError(
            f"RabbitMQ at {where} refused access: {text} (grant user {params.userid!r} "
            f"permissions on vhost {params.virtual_host!r})"
        )
    if isinstance(exc, amqp.exceptions.PreconditionFailed) and "inequivalent arg" in text:
        return TransportError(
            f"RabbitMQ at {where}: {text}: the queue or exchange exists with other arguments "
            "(e.g. declared by Celery or by other settings); make the settings match it "
            "(task_queue_max_priority, queue_type, task_queues) or delete it"
        )
    if isinstance(exc, ConnectionRefusedError):
        return BrokerConnectionError(
            f"Cannot connect to RabbitMQ at {where}: connection refused (is it running, and "
            "are the host and port in the broker URL right?)"
        )
    if isinstance(exc, socket.gaierror):
        return BrokerConnectionError(
            f"Cannot connect to RabbitMQ at {where}: unknown host {params.host!r} (fix the "
            "host in the broker URL)"
        )
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return BrokerConnectionError(
            f"Cannot connect to RabbitMQ at {where}: timed out (is the host reachable, and is "
            "it RabbitMQ on that port?)"
        )
    if isinstance(exc, ssl_module.SSLError):
        return BrokerConnectionError(f"TLS to RabbitMQ at {where} failed: {exc}")
    if isinstance(exc, (OSError, amqp.exceptions.RecoverableConnectionError,
                        amqp.exceptions.ConnectionError)):
        reason = text or type(exc).__name__
        return BrokerConnectionError(f"Lost the connection to RabbitMQ at {where}: {reason}")
    return TransportError(f"RabbitMQ at {where}: {type(exc).__name__}: {text}")
