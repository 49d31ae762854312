"""Serializer registry: names, content types, ``accept_content`` checks.

JSON is the default and encodes datetimes, dates, times, UUIDs, Decimals and bytes with the
``{"__type__": ..., "__value__": ...}`` markers Celery/kombu 5.3+ use, so either side can read
the other's payloads. pickle is registered but refused unless a user lists it in
``accept_content``.
"""

from __future__ import annotations

import base64
import decimal
import re
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import orjson

from celeriac.exceptions import ContentDisallowed, DecodeError, EncodeError


@dataclass(frozen=True, slots=True)
class Codec:
    name: str
    content_type: str
    content_encoding: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


_registry: dict[str, Codec] = {}
_by_content_type: dict[str, Codec] = {}


def register(codec: Codec) -> None:
    _registry[codec.name] = codec
    _by_content_type[codec.content_type] = codec


# --- JSON ------------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return {"__type__": "datetime", "__value__": obj.isoformat()}
    if isinstance(obj, date):
        return {"__type__": "date", "__value__": obj.isoformat()}
    if isinstance(obj, time):
        return {"__type__": "time", "__value__": obj.isoformat()}
    if isinstance(obj, uuid.UUID):
        return {"__type__": "uuid", "__value__": {"hex": obj.hex}}
    if isinstance(obj, decimal.Decimal):
        return {"__type__": "decimal", "__value__": str(obj)}
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"__type__": "base64", "__value__": base64.b64encode(bytes(obj)).decode()}
    if isinstance(obj, (set, frozenset)):
        # As kombu's json: a set is refused, not silently made a list the task never expected.
        raise TypeError(
            f"Object of type {type(obj).__name__} is not JSON serializable; pass a list instead"
        )
    for_json = getattr(obj, "__json__", None)
    if callable(for_json):
        return for_json()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_JSON_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def json_dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj, default=_json_default, option=_JSON_OPTS)
    except orjson.JSONEncodeError as exc:
        if isinstance(exc.__cause__, TypeError):
            raise exc.__cause__ from None  # our own words (what to pass instead), not orjson's
        if "Integer exceeds 64-bit range" not in str(exc):
            raise
    # orjson refuses integers past 64 bits; the stdlib encoder does not.
    import json

    return json.dumps(obj, default=_json_default, separators=(",", ":")).encode("utf-8")


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "uuid": lambda v: uuid.UUID(hex=v["hex"] if isinstance(v, dict) else v),
    "decimal": decimal.Decimal,
    "base64": lambda v: base64.b64decode(v),
    "bytes": lambda v: v.encode("utf-8") if isinstance(v, str) else v,
}


def _revive(obj: Any) -> Any:
    if isinstance(obj, dict):
        kind = obj.get("__type__")
        if kind is not None and len(obj) == 2 and "__value__" in obj:
            decoder = _DECODERS.get(kind)
            if decoder is not None:
                return decoder(obj["__value__"])
        for key, value in obj.items():
            if isinstance(value, (dict, list)):
                obj[key] = _revive(value)
        return obj
    if isinstance(obj, list):
        for i, value in enumerate(obj):
            if isinstance(value, (dict, list)):
                obj[i] = _revive(value)
    return obj


# orjson reads integers past 64 bits as floats, silently losing digits; the stdlib does not.
# A run of 19+ digits is the only way such an integer can appear in the text.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def json_loads(data: bytes | str) -> Any:
    raw = data if isinstance(data, bytes) else data.encode()
    if _LONG_DIGITS.search(raw):
        import json

        obj = json.loads(raw)
    else:
        obj = orjson.loads(raw)
    if isinstance(obj, (dict, list)) and b"__type__" in raw:
        return _revive(obj)
    return obj


register(Codec("json", "application/json", "utf-8", json_dumps, json_loads))


# --- pickle (only when accepted) ---------------------------------------------------------------


def _pickle_dumps(obj: Any) -> bytes:
    import pickle

    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _pickle_loads(data: bytes) -> Any:
    import pickle

    return pickle.loads(data)


register(Codec("pickle", "application/x-python-serialize", "binary", _pickle_dumps, _pickle_loads))


# --- msgpack / yaml (optional libraries, imported on first use) --------------------------------


def _msgpack_dumps(obj: Any) -> bytes:
    import msgpack

    packed: bytes = msgpack.packb(obj, use_bin_type=True, default=_json_default)
    return packed


def _msgpack_loads(data: bytes) -> Any:
    import msgpack

    return _revive(msgpack.unpackb(data, raw=False, strict_map_key=False))


register(Codec("msgpack", "application/x-msgpack", "binary", _msgpack_dumps, _msgpack_loads))


def _yaml_dumps(obj: Any) -> bytes:
    import yaml

    text: str = yaml.safe_dump(obj)
    return text.encode("utf-8")


def _yaml_loads(data: bytes) -> Any:
    import yaml

    return yaml.safe_load(data)


register(Codec("yaml", "application/x-yaml", "utf-8", _yaml_dumps, _yaml_loads))


# --- lookups -----------------------------------------------------------------------------------


def codec(name_or_type: str) -> Codec:
    found = _registry.get(name_or_type) or _by_content_type.get(name_or_type)
    if found is None:
        raise EncodeError(f"No serializer registered for {name_or_type!r}")
    return found


def accepted_types(accept: Iterable[str] | None) -> frozenset[str]:
    """Content types for a list of serializer names or content types (``accept_content``)."""
    if accept is None:
        return frozenset({"application/json"})
    types = set()
    for item in accept:
        found = _registry.get(item) or _by_content_type.get(item)
        types.add(found.content_type if found else item)
    return frozenset(types)


def dumps(obj: Any, serializer: str = "json") -> tuple[str, str, bytes]:
    """Encode ``obj``; returns (content_type, content_encoding, payload)."""
    c = codec(serializer)
    try:
        return c.content_type, c.content_encoding, c.encode(obj)
    except EncodeError:
        raise
    except Exception as exc:
        raise EncodeError(f"Cannot encode with {c.name}: {exc}") from exc


def loads(data: bytes, content_type: str, accept: Collection[str] | None = None) -> Any:
    """Decode ``data``; ``accept`` is a set of content types (see :func:`accepted_types`)."""
    if accept is not None and content_type not in accept:
        raise ContentDisallowed(
            f"Refusing to decode content of type {content_type!r} "
            f"(accepted: {', '.join(sorted(accept))})"
        )
    c = _by_content_type.get(content_type)
    if c is None:
        raise DecodeError(f"Unknown content type {content_type!r}")
    try:
        return c.decode(data)
    except Exception as exc:
        raise DecodeError(f"Cannot decode {content_type} payload: {exc}") from exc


def find_unserializable(args: Any, kwargs: Any, serializer: str) -> str:
    """Name the first argument that ``serializer`` cannot encode (for a clear send-time error)."""
    c = codec(serializer)
    for i, value in enumerate(args or ()):
        try:
            c.encode(value)
        except Exception as exc:
            return f"argument {i} ({type(value).__name__}): {exc}"
    for key, value in (kwargs or {}).items():
        try:
            c.encode(value)
        except Exception as exc:
            return f"keyword argument {key!r} ({type(value).__name__}): {exc}"
    return "an option or header"


__all__ = [
    "Codec",
    "accepted_types",
    "codec",
    "dumps",
    "find_unserializable",
    "json_dumps",
    "json_loads",
    "loads",
    "register",
]
