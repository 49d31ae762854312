"""Celery's result meta format: building, encoding and reading task result records.

A record is ``{"status", "result", "traceback", "children", "date_done", "task_id"}`` (plus
``name``, ``args``, ``kwargs``, ``worker``, ``retries``, ``queue`` with ``result_extended``).
Exceptions travel as ``{"exc_type", "exc_message", "exc_module"}`` and come back as the
task's own exception type when that type can be imported.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from celeriac import serialization, states
from celeriac.exceptions import DecodeError

_EXC_KEYS = frozenset({"exc_type", "exc_message"})


def encode_exception(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    args = list(exc.args)
    try:
        serialization.json_dumps(args)
    except Exception:
        args = [repr(a) for a in args]
    return {"exc_type": cls.__qualname__, "exc_message": args, "exc_module": cls.__module__}


_synthetic: dict[tuple[str, str], type[BaseException]] = {}


def _exception_class(module: str | None, name: str) -> type[BaseException]:
    """The named exception class, or a stand-in subclass of Exception with the same name."""
    module = module or "builtins"
    try:
        mod = sys.modules.get(module) or importlib.import_module(module)
        obj: Any = mod
        for part in name.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return obj
    except Exception:
        pass
    key = (module, name)
    cls = _synthetic.get(key)
    if cls is None:
        cls = type(name.rsplit(".", 1)[-1], (Exception,), {"__module__": module})
        _synthetic[key] = cls
    return cls


def decode_exception(data: Any) -> BaseException:
    """Rebuild an exception from its encoded form (or wrap whatever was stored)."""
    if isinstance(data, BaseException):
        return data
    if isinstance(data, Mapping) and data.keys() >= _EXC_KEYS:
        cls = _exception_class(data.get("exc_module"), str(data["exc_type"]))
        message = data.get("exc_message")
        args = message if isinstance(message, (list, tuple)) else [message]
        try:
            return cls(*args)
        except Exception:
            exc = Exception.__new__(cls)
            exc.args = tuple(args)
            return exc
    return Exception(data)


def is_encoded_exception(data: Any) -> bool:
    return isinstance(data, Mapping) and data.keys() >= _EXC_KEYS


def build_meta(
    task_id: str,
    state: str,
    result: Any,
    *,
    traceback: str | None = None,
    children: list[Any] | None = None,
    request: Any = None,
    extended: bool = False,
    worker: str | None = None,
) -> dict[str, Any]:
    if isinstance(result, BaseException):
        result = encode_exception(result)
    meta: dict[str, Any] = {
        "status": state,
        "result": result,
        "traceback": traceback,
        "children": children or [],
        "date_done": datetime.now(UTC).isoformat() if state in states.READY_STATES else None,
        "task_id": task_id,
    }
    if request is not None:
        group = getattr(request, "group", None)
        if group:
            meta["group_id"] = group
        parent = getattr(request, "parent_id", None)
        if parent:
            meta["parent_id"] = parent
        if extended:
            delivery_info = getattr(request, "delivery_info", None) or {}
            meta.update(
                name=getattr(request, "task", None),
                args=getattr(request, "args", None),
                kwargs=getattr(request, "kwargs", None),
                worker=worker or getattr(request, "hostname", None),
                retries=getattr(request, "retries", 0),
                queue=delivery_info.get("routing_key"),
            )
    return meta


def encode_meta(meta: Mapping[str, Any], serializer: str = "json") -> bytes:
    try:
        return serialization.dumps(meta, serializer)[2]
    except Exception:
        # The task returned something the result serializer cannot carry: store why instead.
        fallback = dict(meta)
        fallback["status"] = states.FAILURE
        fallback["result"] = encode_exception(
            serialization.EncodeError(
                f"Result of type {type(meta.get('result')).__name__} "
                f"is not {serializer}-serializable: {meta.get('result')!r:.200}"
            )
        )
        return serialization.dumps(fallback, serializer)[2]


def decode_meta(
    payload: bytes, serializer: str = "json", accept: Collection[str] | None = None
) -> dict[str, Any]:
    content_type = serialization.codec(serializer).content_type
    meta = serialization.loads(payload, content_type, accept)
    if not isinstance(meta, dict) or "status" not in meta:
        raise DecodeError("Stored result is not a result meta record")
    return meta


def pending_meta(task_id: str) -> dict[str, Any]:
    return {
        "status": states.PENDING,
        "result": None,
        "traceback": None,
        "children": [],
        "date_done": None,
        "task_id": task_id,
    }
