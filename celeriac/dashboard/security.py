"""Who may call the dashboard, and what every response carries: one ASGI middleware.

Rules (in this order, for every request):

1. ``GET {prefix}/healthcheck`` is always answered (load balancers probe it without credentials).
2. With basic auth configured (``--basic-auth=user:pass``), every other request needs one of
   the configured pairs (compared with :func:`hmac.compare_digest`, every pair checked, so the
   time taken does not tell which part was wrong); else 401 with ``WWW-Authenticate``.
3. Without basic auth, pages render for anyone who can reach the address (127.0.0.1 by
   default); the HTTP API (``/api/...``, ``/metrics``) answers 401 unless the environment
   variable ``FLOWER_UNAUTHENTICATED_API`` is set (as Flower 2.x) or the request carries the
   session cookie that a page of this dashboard set (the browser showing the pages).
4. ``--read-only``: every state-changing request (any method but GET, HEAD, OPTIONS) gets 403.
5. CSRF, on state-changing requests: a browser sending a cross-site request (``Origin`` naming
   another host, or ``Sec-Fetch-Site: cross-site/same-site``) gets 403; a request carrying the
   session cookie must carry the CSRF token in the ``X-CSRF-Token`` header (the pages read it
   from the ``celeriac_csrf`` cookie: a double submit bound to the session by an HMAC). Scripts
   (no cookie, no ``Origin``) need no token.
6. Every response carries a strict Content-Security-Policy (no inline script or style) and
   ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from http.cookies import SimpleCookie
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "CSP",
    "SESSION_COOKIE",
    "SecurityMiddleware",
    "parse_basic_auth",
    "unauthenticated_api_allowed",
]

#: the environment variable Flower 2.x reads to open its API without authentication
UNAUTHENTICATED_API_ENV = "FLOWER_UNAUTHENTICATED_API"
SESSION_COOKIE = "celeriac_session"
CSRF_COOKIE = "celeriac_csrf"
CSRF_HEADER = "x-csrf-token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


def unauthenticated_api_allowed() -> bool:
    """Flower's rule: the variable set to anything but an empty string, ``0``/``false``/``no``."""
    value = os.environ.get(UNAUTHENTICATED_API_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def parse_basic_auth(value: str | Sequence[str] | None) -> list[tuple[str, str]]:
    """``"user:pass,user2:pass2"`` (Flower's ``--basic-auth``) -> pairs; ValueError when an
    item has no ``:`` or an empty user name. A password may contain ``:``."""
    items: list[str] = []
    for part in [value] if isinstance(value, str) else list(value or ()):
        items.extend(item for item in part.split(",") if item.strip())
    pairs = []
    for item in items:
        user, sep, password = item.partition(":")
        if not sep or not user.strip():
            raise ValueError(f"--basic-auth wants user:password, got {item.split(':')[0]!r}...")
        pairs.append((user.strip(), password))
    return pairs


class SecurityMiddleware:
    """Applies the module's rules in front of ``app`` (HTTP only; lifespan passes through)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        basic_auth: Sequence[tuple[str, str]] = (),
        url_prefix: str = "",
        read_only: bool = False,
        unauthenticated_api: bool | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.app = app
        self.credentials = [(u.encode(), p.encode()) for u, p in basic_auth]
        self.prefix = url_prefix.rstrip("/")
        self.read_only = read_only
        self._unauthenticated_api = unauthenticated_api
        self.secret = secret or secrets.token_bytes(32)

    @property
    def unauthenticated_api(self) -> bool:
        if self._unauthenticated_api is None:
            return unauthenticated_api_allowed()
        return self._unauthenticated_api

    # -- tokens ---------------------------------------------------------------------------------
    def _sign(self, purpose: bytes, value: str) -> str:
        return hmac.new(self.secret, purpose + b":" + value.encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        sid = secrets.token_urlsafe(24)
        return f"{sid}.{self._sign(b'session', sid)}"

    def session_valid(self, cookie: str | None) -> bool:
        if not cookie or "." not in cookie:
            return False
        sid, _, mac = cookie.rpartition(".")
        return hmac.compare_digest(mac, self._sign(b"session", sid))

    def csrf_token(self, session: str) -> str:
        """The token a page must echo in ``X-CSRF-Token``: bound to its session cookie."""
        return self._sign(b"csrf", session)

    # -- checks ---------------------------------------------------------------------------------
    def _authorized(self, headers: Headers) -> bool:
        value = headers.get("authorization", "")
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        ok = False
        for want_user, want_password in self.credentials:
            # both comparisons always run, for every pair: no early exit to time
            same_user = hmac.compare_digest(user, want_user)
            same_password = hmac.compare_digest(password, want_password)
            ok |= same_user and same_password
        return ok

    def _is_api(self, path: str) -> bool:
        rel = path[len(self.prefix):] if path.startswith(self.prefix) else path
        return rel == "/metrics" or rel.startswith("/api/") or rel == "/api"

    def _cross_site(self, headers: Headers) -> bool:
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return True
        origin = headers.get("origin")
        if origin is None:
            return False
        host = headers.get("host", "")
        origin_host = origin.split("://", 1)[-1].rstrip("/")
        return origin == "null" or origin_host != host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path: str = scope["path"]
        method: str = scope["method"]
        cookies = _cookies(headers)
        session = cookies.get(SESSION_COOKIE)
        has_session = self.session_valid(session)
        if path == f"{self.prefix}/healthcheck":
            await self.app(scope, receive, _with_headers(send, []))
            return
        refusal = self._refusal(headers, path, method, session if has_session else None)
        if refusal is not None:
            await refusal(scope, receive, _with_headers(send, []))
            return
        extra: list[tuple[bytes, bytes]] = []
        if not has_session and not self._is_api(path) and method in SAFE_METHODS:
            # a page view: give the browser its session and CSRF token
            session = self.new_session()
            cookie_path = (self.prefix or "") + "/"
            extra.append((b"set-cookie", (
                f"{SESSION_COOKIE}={session}; Path={cookie_path}; HttpOnly; SameSite=Strict"
            ).encode()))
            extra.append((b"set-cookie", (
                f"{CSRF_COOKIE}={self.csrf_token(session)}; Path={cookie_path}; SameSite=Strict"
            ).encode()))
        scope.setdefault("state", {})["csrf_token"] = (
            self.csrf_token(session) if session else None)
        await self.app(scope, receive, _with_headers(send, extra))

    def _refusal(self, headers: Headers, path: str, method: str,
                 session: str | None) -> Response | None:
        if self.credentials:
            if not self._authorized(headers):
                return JSONResponse(
                    {"error": "authentication required"}, status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="celeriac dashboard"'})
        elif self._is_api(path) and session is None and not self.unauthenticated_api:
            return JSONResponse(
                {"error": "the API needs authentication: start the dashboard with "
                          "--basic-auth=user:pass, or set FLOWER_UNAUTHENTICATED_API=true"},
                status_code=401)
        if method in SAFE_METHODS:
            return None
        if self.read_only:
            return JSONResponse({"error": "the dashboard runs read-only"}, status_code=403)
        if self._cross_site(headers):
            return JSONResponse({"error": "cross-site request refused"}, status_code=403)
        if session is not None:
            given = headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(given.encode(), self.csrf_token(session).encode()):
                return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
        return None


def _cookies(headers: Headers) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header: no cookies
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            added: list[Any] = [h for h in _SECURITY_HEADERS if h[0] not in present]
            message = dict(message)
            message["headers"] = [*message.get("headers", []), *added, *extra]
        await send(message)

    return wrapped
