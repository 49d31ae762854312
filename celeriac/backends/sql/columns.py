"""Celery's columns as a copy of celeriac's record, and records rebuilt from rows Celery wrote.

Rules (docs/decisions/0022):

* ``payload`` keeps the record exactly as it was encoded and is what celeriac reads back.
* When the record is JSON (the default serializer), Celery's columns get a copy, written the way
  Celery's database backend writes them, so Celery processes and SQL tools read the task's
  value: ``result`` (the value, JSON-encoded), ``traceback``, ``children`` and the
  ``result_extended`` fields ``name, args, kwargs, worker, retries, queue``. Any other record
  (msgpack, YAML, not a record) leaves them NULL: nothing is decoded with another serializer,
  and pickle never is.
* A row Celery wrote has no ``payload``: its record is rebuilt from ``status``, ``result``
  (JSON only), ``traceback``, ``children`` and ``date_done``; a ``result`` that is not JSON
  (Celery's pickle serializer) is no record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

#: the Celery columns :func:`celery_columns` fills
COPIED = ("result", "traceback", "children", "name", "args", "kwargs", "worker", "retries", "queue")
_SHORT_CHARS = 155  # Celery's String(155) columns
_JSON_ERRORS = (orjson.JSONDecodeError, orjson.JSONEncodeError, TypeError, ValueError)
_INT_BOUND = 2**31


def _text(value: object, max_chars: int | None = None) -> str | None:
    if not isinstance(value, str):
        return None
    # PostgreSQL's text refuses NUL; a too long name would fail the whole store.
    value = value.replace("\x00", "\ufffd")
    return value[:max_chars] if max_chars else value


def _json(value: object) -> bytes | None:
    return None if value is None else orjson.dumps(value)


def celery_columns(payload: bytes) -> dict[str, Any]:
    """Celery's column values for ``payload``; all None unless it is a JSON record."""
    if payload[:1] == b"{":
        try:
            meta = orjson.loads(payload)
            if isinstance(meta, dict):
                return _columns_of(meta)
        except _JSON_ERRORS:
            pass
    return dict.fromkeys(COPIED)


def _columns_of(meta: Mapping[str, Any]) -> dict[str, Any]:
    retries = meta.get("retries")
    children = meta.get("children")
    return {
        "result": orjson.dumps(meta.get("result")),
        "traceback": _text(meta.get("traceback")),
        "children": orjson.dumps(children) if children else None,
        "name": _text(meta.get("name"), _SHORT_CHARS),
        "args": _json(meta.get("args")),
        "kwargs": _json(meta.get("kwargs")),
        "worker": _text(meta.get("worker"), _SHORT_CHARS),
        "retries": retries if type(retries) is int and -_INT_BOUND < retries < _INT_BOUND else None,
        "queue": _text(meta.get("queue"), _SHORT_CHARS),
    }


def record_from_celery_row(
    task_id: str, status: object, result: object, traceback: object, children: object,
    date_done: object,
) -> bytes | None:
    """The JSON record of a row Celery wrote, or None when it cannot be read without pickle."""
    if not isinstance(status, str):
        return None
    try:
        value = None if result is None else orjson.loads(_bytes(result))
        kids = [] if children is None else orjson.loads(_bytes(children))
    except _JSON_ERRORS:
        return None
    meta = {
        "status": status,
        "result": value,
        "traceback": traceback if isinstance(traceback, str) else None,
        "children": kids if isinstance(kids, list) else [],
        "date_done": date_done.isoformat() if isinstance(date_done, datetime) else None,
        "task_id": task_id,
    }
    return orjson.dumps(meta)


def _bytes(value: object) -> bytes | str:
    if isinstance(value, bytes | str):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(type(value).__name__)
