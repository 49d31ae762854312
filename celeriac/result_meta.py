"""Celery's result meta format: building, encoding and reading task result records.

A record is ``{"status", "result", "traceback", "children", "date_done", "task_id"}`` (plus
``name``, ``args``, ``kwargs``, ``worker``, ``retries``, ``queue`` with ``result_extended``).
Exceptions travel as ``{"exc_type", "exc_message", "exc_module"}``.

Rules for reading exceptions back (a record is data anyone with backend access can write):

- a type is rebuilt only from a module already in ``sys.modules`` (nothing is ever imported,
  the CVE-2021-23727 class), looked up without running module ``__getattr__`` hooks;
- only subclasses of :class:`Exception` are rebuilt: ``SystemExit``, ``KeyboardInterrupt``,
  ``GeneratorExit`` and other BaseException-only types never are, so ``AsyncResult.get()``
  never exits or interrupts its caller;
- anything else comes back as a stand-in: a subclass of Exception carrying the stored type
  name, module and message (one class per name, so ``except`` clauses can match it).

Records are bounded when built: tracebacks keep their last :data:`MAX_TRACEBACK_CHARS`
characters, exception messages their first :data:`MAX_EXC_MESSAGE_CHARS`.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from celeriac import serialization, states
from celeriac._utils.einfo import MAX_TRACEBACK_CHARS
from celeriac._utils.text import keep_head, keep_tail, saferepr
from celeriac.exceptions import ColdShutdown, DecodeError, EncodeError

__all__ = [
    "MAX_EXC_MESSAGE_CHARS",
    "MAX_TRACEBACK_CHARS",
    "build_meta",
    "decode_exception",
    "decode_meta",
    "encode_exception",
    "encode_meta",
    "encode_meta_checked",
    "is_encoded_exception",
    "pending_meta",
    "safe_repr",
]

_EXC_KEYS = frozenset({"exc_type", "exc_message"})
#: longest encoded exception message (the JSON text of its args) kept in a record
MAX_EXC_MESSAGE_CHARS = 8_192
#: longest exception type name rebuilt from a record (longer names are cut)
_MAX_TYPE_NAME_CHARS = 200
#: stand-in classes kept for reuse; past this, stand-ins are made afresh (records are input)
_MAX_STAND_INS = 1_024


def safe_repr(value: Any, max_chars: int = 1024) -> str:
    """:func:`saferepr`, and the type name when even that raises (a ``__repr__`` may raise
    any BaseException). Never raises except :class:`ColdShutdown`."""
    try:
        return saferepr(value, max_chars)
    except ColdShutdown:
        raise
    except BaseException:
        return f"<unrepresentable {type(value).__name__}>"


def encode_exception(exc: BaseException) -> dict[str, Any]:
    """Celery's encoded form of ``exc``. Arguments JSON cannot carry become safe reprs; a
    message longer than :data:`MAX_EXC_MESSAGE_CHARS` is cut (one string argument then)."""
    cls = type(exc)
    try:
        args = list(exc.args)
        text = serialization.json_dumps(args).decode("utf-8")
    except ColdShutdown:
        raise
    except BaseException:
        args = [safe_repr(a, MAX_EXC_MESSAGE_CHARS) for a in _args_of(exc)]
        text = serialization.json_dumps(args).decode("utf-8")
    if len(text) > MAX_EXC_MESSAGE_CHARS:
        whole = args[0] if len(args) == 1 and isinstance(args[0], str) else text
        args = [keep_head(whole, MAX_EXC_MESSAGE_CHARS)]
    return {"exc_type": cls.__qualname__, "exc_message": args, "exc_module": cls.__module__}


def _args_of(exc: BaseException) -> list[Any]:
    try:
        return list(exc.args)
    except ColdShutdown:
        raise
    except BaseException:  # an ``args`` property that raises
        return []


_stand_ins: dict[tuple[str, str], type[Exception]] = {}


def _known_class(module: str, name: str) -> type[Exception] | None:
    """The Exception subclass ``module.name`` if that module is already imported."""
    obj: Any = sys.modules.get(module)
    if obj is None:
        return None
    for part in name.split("."):
        try:
            # getattr_static: no module __getattr__ (which may import) and no descriptors run
            obj = inspect.getattr_static(obj, part)
        except AttributeError:
            return None
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None


def _exception_class(module: str | None, name: str) -> type[Exception]:
    """The named exception class (see the module rules), or its stand-in."""
    module = module or "builtins"
    name = name[:_MAX_TYPE_NAME_CHARS]
    cls = _known_class(module, name)
    if cls is not None:
        return cls
    key = (module, name)
    stand_in = _stand_ins.get(key)
    if stand_in is None:
        short = name.rsplit(".", 1)[-1] or "UnknownError"
        stand_in = type(short, (Exception,), {"__module__": module, "__qualname__": name})
        if len(_stand_ins) < _MAX_STAND_INS:
            _stand_ins[key] = stand_in
    return stand_in


def decode_exception(data: Any) -> BaseException:
    """Rebuild an exception from its encoded form (or wrap whatever was stored)."""
    if isinstance(data, BaseException):
        return data
    if isinstance(data, Mapping) and data.keys() >= _EXC_KEYS:
        module = data.get("exc_module")
        cls = _exception_class(str(module) if module is not None else None, str(data["exc_type"]))
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
        "traceback": keep_tail(traceback, MAX_TRACEBACK_CHARS) if traceback else traceback,
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
    """The record encoded; see :func:`encode_meta_checked` for a result that cannot be."""
    return encode_meta_checked(meta, serializer)[0]


def encode_meta_checked(
    meta: Mapping[str, Any], serializer: str = "json"
) -> tuple[bytes, EncodeError | None]:
    """Encode a record: ``(payload, None)``, or, when its result cannot be encoded (a type the
    serializer refuses, nesting too deep, a ``__reduce__`` that raises anything),
    ``(payload of a FAILURE record holding an EncodeError, that EncodeError)`` so the caller
    reports the state that was stored. Never raises except :class:`ColdShutdown`."""
    try:
        return serialization.dumps(meta, serializer)[2], None
    except ColdShutdown:
        raise
    except BaseException:
        pass
    result = meta.get("result")
    error = EncodeError(
        f"Result of type {type(result).__name__} is not {serializer}-serializable: "
        f"{safe_repr(result, 200)}"
    )
    fallback = dict(meta)
    fallback["status"] = states.FAILURE
    fallback["result"] = encode_exception(error)
    try:
        return serialization.dumps(fallback, serializer)[2], error
    except ColdShutdown:
        raise
    except BaseException:  # something else in the record (extended args...): the bare record
        bare = {key: fallback.get(key) for key in pending_meta("")}
        bare["traceback"] = None
        return serialization.dumps(bare, serializer)[2], error


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
