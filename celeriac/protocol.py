"""Celery task message protocol v2 <-> :class:`Envelope`: the only module that knows the wire.

Protocol v2 puts the task's metadata in AMQP headers, the call in the body as
``[args, kwargs, embed]`` where ``embed`` holds ``callbacks``, ``errbacks``, ``chain`` and
``chord``, and the task id again in the ``correlation_id`` property.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celeriac import serialization
from celeriac._utils.text import saferepr
from celeriac.exceptions import EncodeError, InvalidTaskError
from celeriac.message import Envelope

_HOST = f"{os.getpid()}@{socket.gethostname()}"


def origin() -> str:
    return _HOST


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def build_task_message(
    *,
    task_id: str,
    name: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    serializer: str = "json",
    eta: datetime | str | None = None,
    expires: datetime | str | None = None,
    retries: int = 0,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
    root_id: str | None = None,
    parent_id: str | None = None,
    group_id: str | None = None,
    group_index: int | None = None,
    ignore_result: bool = False,
    callbacks: Sequence[Any] | None = None,
    errbacks: Sequence[Any] | None = None,
    chain: Sequence[Any] | None = None,
    chord: Any = None,
    priority: int | None = None,
    reply_to: str | None = None,
    shadow: str | None = None,
    extra_headers: Mapping[str, Any] | None = None,
) -> Envelope:
    """Encode one task call as a protocol v2 message."""
    args = list(args) if not isinstance(args, list) else args
    kwargs = dict(kwargs) if kwargs else {}
    embed = {"callbacks": callbacks, "errbacks": errbacks, "chain": chain, "chord": chord}
    try:
        content_type, content_encoding, body = serialization.dumps(
            [args, kwargs, embed], serializer
        )
    except EncodeError as exc:
        bad = serialization.find_unserializable(args, kwargs, serializer)
        raise EncodeError(
            f"Cannot send task {name!r}: {bad} is not {serializer}-serializable"
        ) from exc
    headers: dict[str, Any] = {
        "lang": "py",
        "task": name,
        "id": task_id,
        "shadow": shadow,
        "eta": _iso(eta),
        "expires": _iso(expires),
        "group": group_id,
        "group_index": group_index,
        "retries": retries,
        "timelimit": [time_limit, soft_time_limit],
        "root_id": root_id or task_id,
        "parent_id": parent_id,
        "argsrepr": saferepr(args),
        "kwargsrepr": saferepr(kwargs),
        "origin": _HOST,
        "ignore_result": ignore_result,
    }
    if extra_headers:
        headers.update(extra_headers)
    properties: dict[str, Any] = {"correlation_id": task_id, "reply_to": reply_to}
    if priority is not None:
        properties["priority"] = priority
    return Envelope(
        body=body,
        headers=headers,
        properties=properties,
        content_type=content_type,
        content_encoding=content_encoding,
    )


_NO_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def clone_task_message(
    template: Envelope,
    task_id: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
) -> Envelope:
    """The message of another call of the same task with the same options: ``template``'s
    headers and properties with a new id and arguments (bulk sends build thousands of these).
    The template must carry no workflow (callbacks, chain, chord)."""
    args = list(args) if not isinstance(args, list) else args
    kwargs = dict(kwargs) if kwargs else {}
    codec = serialization.codec(template.content_type)
    try:
        body = codec.encode([args, kwargs, _NO_EMBED])
    except Exception as exc:
        bad = serialization.find_unserializable(args, kwargs, codec.name)
        raise EncodeError(
            f"Cannot send task {template.task_name!r}: {bad} is not {codec.name}-serializable"
        ) from exc
    headers = dict(template.headers)
    if headers.get("root_id") == headers.get("id"):
        headers["root_id"] = task_id
    headers["id"] = task_id
    headers["argsrepr"] = saferepr(args)
    headers["kwargsrepr"] = saferepr(kwargs)
    properties = dict(template.properties)
    properties["correlation_id"] = task_id
    return Envelope(
        body=body,
        headers=headers,
        properties=properties,
        content_type=template.content_type,
        content_encoding=template.content_encoding,
    )


@dataclass(slots=True)
class TaskMessage:
    """A decoded task message."""

    id: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    headers: Mapping[str, Any]
    properties: Mapping[str, Any]
    embed: dict[str, Any] = field(default_factory=dict)

    @property
    def retries(self) -> int:
        return int(self.headers.get("retries") or 0)


def decode_task_message(envelope: Envelope, accept: Collection[str] | None) -> TaskMessage:
    """Decode and validate a v2 message; raises InvalidTaskError or a SerializationError."""
    headers = envelope.headers
    name = headers.get("task")
    task_id = headers.get("id") or envelope.properties.get("correlation_id")
    if not isinstance(name, str) or not name:
        raise InvalidTaskError("Message has no 'task' header: not a protocol v2 task message")
    if not isinstance(task_id, str) or not task_id:
        raise InvalidTaskError(f"Message for task {name!r} has no task id")
    payload = serialization.loads(envelope.body, envelope.content_type, accept)
    if not isinstance(payload, (list, tuple)) or len(payload) != 3:
        raise InvalidTaskError(
            f"Body of task {name}[{task_id}] is not [args, kwargs, embed] (protocol v2)"
        )
    args, kwargs, embed = payload
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise InvalidTaskError(f"Task {name}[{task_id}] has args/kwargs of the wrong type")
    return TaskMessage(
        id=task_id,
        name=name,
        args=list(args),
        kwargs=kwargs,
        headers=headers,
        properties=envelope.properties,
        embed=embed if isinstance(embed, dict) else {},
    )
