"""What every API module shares: the JSON response, :class:`HTTPError`, and reading parameters.

Parameters are read from the query string, then from a form or JSON-object body (Flower
accepts both); booleans are ``1/true/True/yes/on`` or ``0/false/False/no/off`` (anything
else is a 400; Flower took ``terminate=false`` as true). A bad parameter raises
:class:`HTTPError`, which the route wrapper in :mod:`.api` answers as ``{"error": ...}``
with its status; no parser here returns a guess.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from celeriac.dashboard.app import Dashboard

__all__ = [
    "DATE_FORMAT", "HTTPError", "Handler", "JSON", "MAX_BODY_BYTES", "MAX_WAIT_S",
    "RECEIVED_FORMAT", "call_body", "flag", "integer", "json_object", "number", "read_body",
    "read_params", "required", "timeout", "unless_all", "when",
]

#: Flower's date format for eta / expires / received_start / received_end
DATE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
RECEIVED_FORMAT = "%Y-%m-%d %H:%M"
#: at most this many bytes of request body are read
MAX_BODY_BYTES = 1 << 20
#: the longest ``?timeout=`` a request may wait for a result
MAX_WAIT_S = 3600.0
#: the spellings a boolean parameter accepts (anything else is a 400)
TRUE_VALUES = ("1", "true", "True", "yes", "on")
FALSE_VALUES = ("0", "false", "False", "no", "off", "")

_N = TypeVar("_N", int, float)


class JSON(Response):
    """JSON via orjson: non-finite floats become null, unknown objects their ``repr``."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=repr, option=orjson.OPT_NON_STR_KEYS)


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[["Dashboard", Request], Awaitable[Response]]


async def read_params(request: Request) -> dict[str, Any]:
    """Query parameters, overlaid by a form or JSON-object body's fields."""
    found: dict[str, Any] = dict(request.query_params)
    if request.method in ("GET", "HEAD"):
        return found
    body = await read_body(request)
    if not body:
        return found
    http_headers = request.headers  # HTTP headers (not a task message's)
    kind = http_headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        data = json_object(body)
        found.update(data)
    elif kind == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl

        found.update(parse_qsl(body.decode("utf-8", "replace")))
    return found


async def read_body(request: Request) -> bytes:
    """The whole body, or a 413 as soon as it passes :data:`MAX_BODY_BYTES`."""
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPError(413, f"request body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def call_body(request: Request) -> dict[str, Any]:
    """A task call's body: a JSON object, or nothing (``{}``)."""
    body = await read_body(request)
    return json_object(body) if body.strip() else {}


def json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise HTTPError(400, f"invalid JSON: {exc}")
    if not isinstance(data, dict):
        raise HTTPError(400, "the body must be a JSON object")
    return data


def flag(params: Any, name: str) -> bool:
    value = params.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    if str(value) in TRUE_VALUES:
        return True
    if str(value) in FALSE_VALUES:
        return False
    raise HTTPError(400, f"{name} must be one of {', '.join(TRUE_VALUES + FALSE_VALUES[:-1])}")


def _converted(params: dict[str, Any], name: str, kind: Callable[[Any], _N],
               what: str) -> _N | None:
    """``kind(value)``, None when absent or empty, a 400 naming ``what`` when it fails."""
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):  # int(inf) overflows
        raise HTTPError(400, f"{name} must be {what}")


def integer(params: dict[str, Any], name: str, default: int | None = None, *,
            minimum: int | None = None) -> int | None:
    found = _converted(params, name, int, "an integer")
    if found is None:
        return default
    if minimum is not None and found < minimum:
        raise HTTPError(400, f"{name} must be at least {minimum}")
    return found


def timeout(params: dict[str, Any]) -> float | None:
    """``?timeout=`` in seconds, within ``[0, MAX_WAIT_S]``; None when absent."""
    timeout_s = number(params, "timeout")
    if timeout_s is not None and not 0 <= timeout_s <= MAX_WAIT_S:
        raise HTTPError(400, f"timeout must be between 0 and {MAX_WAIT_S:.0f} seconds")
    return timeout_s


def number(params: dict[str, Any], name: str) -> float | None:
    """A finite number; None when absent or empty."""
    found = _converted(params, name, float, "a number")
    if found is not None and not math.isfinite(found):
        raise HTTPError(400, f"{name} must be a finite number")
    return found


def required(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or str(value) == "":
        raise HTTPError(400, f"missing argument {name}")
    return str(value)


def when(value: Any, name: str) -> float | None:
    """An epoch-seconds number, or Flower's ``%Y-%m-%d %H:%M`` (local time)."""
    if value is None or value == "":
        return None
    try:
        found = float(value)
        if math.isfinite(found):
            return found
    except (TypeError, ValueError):
        pass
    for fmt in (RECEIVED_FORMAT, DATE_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(str(value), fmt).timestamp()
        except (ValueError, OverflowError, OSError):
            continue
    raise HTTPError(400, f"{name} must be epoch seconds or {RECEIVED_FORMAT!r}")


def unless_all(value: Any) -> str | None:
    """Flower's filters treat ``All`` (and an empty value) as no filter."""
    return None if value in (None, "", "All") else str(value)
