"""Celery task message protocol v2 <-> :class:`Envelope`: the only module that knows the wire.

Protocol v2 puts the task's metadata in AMQP headers, the call in the body as
``[args, kwargs, embed]`` where ``embed`` holds ``callbacks``, ``errbacks``, ``chain`` and
``chord``, and the task id again in the ``correlation_id`` property.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from celeriac import serialization
from celeriac._utils.stored import StoredParts
from celeriac._utils.text import saferepr
from celeriac.compression import compress, decompress
from celeriac.exceptions import EncodeError, InvalidTaskError
from celeriac.message import Envelope

_HOST = f"{os.getpid()}@{socket.gethostname()}"


def origin() -> str:
    return _HOST


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def _cannot_send(name: str, args: Any, kwargs: Any, serializer: str) -> EncodeError:
    """The error a send raises when its arguments cannot be encoded, naming the argument and
    the serializer's reason (which may say what to pass instead)."""
    bad = serialization.find_unserializable(args, kwargs, serializer)
    where, _, why = bad.partition(": ")
    detail = f" ({why})" if why else ""
    return EncodeError(
        f"Cannot send task {name!r}: {where} is not {serializer}-serializable{detail}"
    )


def build_task_message(
    *,
    task_id: str,
    name: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    serializer: str = "json",
    compression: str | None = None,
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
        raise _cannot_send(name, args, kwargs, serializer) from exc
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
    if compression:
        body, headers["compression"] = compress(body, compression)
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
        raise _cannot_send(template.task_name, args, kwargs, codec.name) from exc
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


#: the headers a :class:`StoredTemplate` fills per call, in build_task_message's order, with
#: and without ``root_id`` (the call is its own root unless it was sent from inside a task)
_HOLES_OWN_ROOT = ("id", "root_id", "argsrepr", "kwargsrepr")
_HOLES = ("id", "argsrepr", "kwargsrepr")
_EMPTY_KWARGS_REPR = orjson.dumps("{}")


class StoredTemplate:
    """Further calls of one task with one set of options, encoded straight to the parts a
    broker stores (:data:`StoredParts`) without a headers dict per call: the template's
    headers and properties JSON are cut once around what changes per call (the id, the root
    id when the call is its own root, ``argsrepr``, ``kwargsrepr``, ``correlation_id``) and
    each call joins its values in. The bytes are exactly what :func:`clone_task_message`
    followed by ``envelope_parts`` gives (tests/test_send_many.py compares them).

    Made only by :meth:`of`, which returns None for a template it cannot cut: one that
    carries a workflow, an ``eta``, or headers other than :func:`build_task_message`'s.
    """

    __slots__ = ("_codec", "_headers", "_properties", "content_encoding", "content_type",
                 "name", "priority")

    def __init__(self, template: Envelope, headers: list[bytes], properties: list[bytes],
                 codec: serialization.Codec) -> None:
        self._headers = headers
        self._properties = properties
        self._codec = codec
        self.content_type = template.content_type
        self.content_encoding = template.content_encoding
        self.name = template.task_name
        #: the ``priority`` property (0 when unset), which every call shares
        self.priority = template.priority

    @classmethod
    def of(cls, template: Envelope) -> StoredTemplate | None:
        """The template for further calls like ``template`` (a message from
        :func:`build_task_message` with no workflow), or None when it cannot be cut."""
        headers = dict(template.headers)
        if headers.get("eta") or list(headers) != _HEADER_ORDER:
            return None
        holes = _HOLES_OWN_ROOT if headers.get("root_id") == headers.get("id") else _HOLES
        try:
            codec = serialization.codec(template.content_type)
            header_cuts = _cut(headers, holes)
            property_cuts = _cut(dict(template.properties), ("correlation_id",))
        except (KeyError, ValueError, TypeError, orjson.JSONEncodeError):
            return None
        if header_cuts is None or property_cuts is None:
            return None
        return cls(template, header_cuts, property_cuts, codec)

    def parts(self, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None
              ) -> StoredParts:
        """The stored parts of the call ``(args, kwargs)`` sent as ``task_id``."""
        args = list(args) if type(args) is not list else args
        kwargs = dict(kwargs) if kwargs else {}
        try:
            body = self._codec.encode([args, kwargs, _NO_EMBED])
        except Exception as exc:
            raise _cannot_send(self.name, args, kwargs, self._codec.name) from exc
        ident = orjson.dumps(task_id)
        argsrepr = orjson.dumps(saferepr(args))
        kwargsrepr = orjson.dumps(saferepr(kwargs)) if kwargs else _EMPTY_KWARGS_REPR
        h = self._headers
        if len(h) == 5:
            headers = b"".join((h[0], ident, h[1], ident, h[2], argsrepr, h[3], kwargsrepr, h[4]))
        else:
            headers = b"".join((h[0], ident, h[1], argsrepr, h[2], kwargsrepr, h[3]))
        p = self._properties
        return (headers, p[0] + ident + p[1], body, self.content_type, self.content_encoding)


#: the headers of a message from build_task_message (no extra headers), in its order
_HEADER_ORDER = ["lang", "task", "id", "shadow", "eta", "expires", "group", "group_index",
                 "retries", "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr",
                 "origin", "ignore_result"]


def _cut(mapping: dict[str, Any], holes: tuple[str, ...]) -> list[bytes] | None:
    """``mapping`` as JSON cut at the values of ``holes`` (which must appear in that order):
    len(holes) + 1 pieces. None when a marker value is found elsewhere (it never is: the
    marker is random)."""
    marker = f"celeriac-hole-{os.urandom(8).hex()}"
    for key in holes:
        mapping[key] = marker
    text = orjson.dumps(mapping)
    pieces = text.split(orjson.dumps(marker))
    return pieces if len(pieces) == len(holes) + 1 else None


@dataclass(slots=True)
class TaskMessage:
    """A decoded and validated task message: every header the worker acts on as a typed field
    (see :func:`decode_task_message` for the rules), plus the raw ``headers`` and
    ``properties`` (Celery's ``request.headers`` shows custom headers)."""

    id: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    headers: Mapping[str, Any]
    properties: Mapping[str, Any]
    embed: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    #: the ``eta`` and ``expires`` headers as ISO 8601 text, and as epoch seconds
    eta: str | None = None
    eta_s: float | None = None
    expires: str | None = None
    expires_s: float | None = None
    #: the ``timelimit`` header's [hard, soft] pair, in seconds
    time_limit_s: float | None = None
    soft_time_limit_s: float | None = None
    group: str | None = None
    group_index: int | None = None
    root_id: str | None = None
    parent_id: str | None = None
    ignore_result: bool = False
    #: the ``priority`` property (0..255), None when not set
    priority: int | None = None
    shadow: str | None = None
    origin: str | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    callbacks: list[Any] | None = None
    errbacks: list[Any] | None = None
    chain: list[Any] | None = None
    chord: dict[str, Any] | None = None


#: the highest ``priority`` property accepted (AMQP's range; brokers map it onto their own)
MAX_PRIORITY = 255
#: characters of an offending value quoted in a rejection reason
_QUOTE_MAX_CHARS = 80
#: the ``timelimit`` header of a message without limits, as build_task_message writes it
_NO_LIMITS = [None, None]


def _invalid(where: str, what: str, value: Any) -> InvalidTaskError:
    return InvalidTaskError(f"{where}: {what}, got {type(value).__name__} "
                            f"{saferepr(value, _QUOTE_MAX_CHARS)}")


def _bad_header(name: str, task_id: str, key: str, rule: str, value: Any) -> InvalidTaskError:
    return _invalid(f"Task {name}[{task_id}]", f"header {key!r} must be {rule}", value)


def _iso_seconds(value: str) -> float:
    """Epoch seconds of an ISO 8601 date (naive = UTC); raises ValueError or OverflowError."""
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _date(value: Any, key: str, name: str, task_id: str) -> tuple[str, float]:
    """A non-null ``eta``/``expires`` header as (ISO text, epoch seconds)."""
    if isinstance(value, datetime):  # in process (memory broker), never on the wire
        value = value.isoformat()
    if isinstance(value, str):
        try:
            return value, _iso_seconds(value)
        except (ValueError, OverflowError) as exc:
            rule = f"an ISO 8601 date ({exc})"
            raise _bad_header(name, task_id, key, rule, value) from None
    raise _bad_header(name, task_id, key, "an ISO 8601 date or null", value)


def _limit(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) in (int, float) and math.isfinite(value) and value >= 0:
        return float(value)
    raise TypeError


def _time_limits(value: Any, name: str, task_id: str) -> tuple[float | None, float | None]:
    """A non-null ``timelimit`` header as (hard, soft) seconds."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            return _limit(value[0]), _limit(value[1])
        except TypeError:
            pass
    rule = "[hard, soft] (each seconds >= 0 or null) or null"
    raise _bad_header(name, task_id, "timelimit", rule, value)


def _embed_list(embed: dict[str, Any], key: str, name: str, task_id: str) -> list[Any] | None:
    value = embed.get(key)
    if value is None or type(value) is list:
        return value
    if isinstance(value, tuple):
        return list(value)
    raise _invalid(f"Task {name}[{task_id}]", f"embed {key!r} must be a list or null", value)


def request_fields(
    message: TaskMessage, *, queue: str, redelivered: bool, hostname: str
) -> dict[str, Any]:
    """The fields of the task request (``self.request``, a :class:`~celeriac.task.Context`)
    for ``message`` delivered from ``queue`` to worker ``hostname``: the one mapping from a
    message to a request, so nothing outside this module reads the wire's keys. Plain data:
    it crosses to pool processes as it is."""
    return {
        "id": message.id,
        "task": message.name,
        "args": message.args,
        "kwargs": message.kwargs,
        "retries": message.retries,
        "is_eager": False,
        "called_directly": False,
        "eta": message.eta,
        "expires": message.expires,
        "hostname": hostname,
        "delivery_info": {
            "exchange": "",
            "routing_key": queue,
            "priority": message.priority,
            "redelivered": redelivered,
        },
        "root_id": message.root_id,
        "parent_id": message.parent_id,
        "group": message.group,
        "group_index": message.group_index,
        "callbacks": message.callbacks,
        "errbacks": message.errbacks,
        "chain": message.chain,
        "chord": message.chord,
        "correlation_id": message.correlation_id,
        "reply_to": message.reply_to,
        "origin": message.origin,
        "timelimit": [message.time_limit_s, message.soft_time_limit_s],
        "ignore_result": message.ignore_result,
        "headers": dict(message.headers),
        "argsrepr": message.argsrepr,
        "kwargsrepr": message.kwargsrepr,
        "shadow": message.shadow,
    }


def decode_task_message(envelope: Envelope, accept: Collection[str] | None) -> TaskMessage:
    """Decode and validate a v2 message; raises InvalidTaskError or a SerializationError
    (ContentDisallowed, DecodeError), nothing else.

    Rules, each broken one an InvalidTaskError naming the header and quoting its value:

    * headers and properties are mappings; ``task`` is a non-empty string, and so is ``id``
      (or, when absent, the ``correlation_id`` property);
    * ``retries``: an integer >= 0 (absent or null: 0);
    * ``eta``, ``expires``: null or an ISO 8601 date (naive means UTC);
    * ``timelimit``: null or a pair ``[hard, soft]`` (Celery's list, or tuple in process), each
      null or a number of seconds >= 0. A bare number is refused rather than coerced: it
      could mean either limit, and guessing would run the task under a limit nobody set;
    * ``group``, ``root_id``, ``parent_id``: strings or null; ``group_index``: an integer >= 0
      or null; ``ignore_result``: a boolean or null;
    * property ``priority``: null or an integer 0..255;
    * body: ``[args, kwargs, embed]``, args a list, kwargs a dict with string keys, embed null
      or a dict whose ``callbacks``, ``errbacks`` and ``chain`` are lists or null and whose
      ``chord`` is a dict or null.

    A ``compression`` header (kombu's) decompresses the body first, within
    :data:`celeriac.compression.MAX_DECOMPRESSED_BYTES`; a type celeriac does not read, a
    body that does not decompress or one over that size is a DecodeError.

    Headers that only describe a message (``shadow``, ``origin``, ``argsrepr``, ``kwargsrepr``)
    and the properties ``correlation_id`` and ``reply_to`` are read as null when they are not
    strings: they never decide what runs.
    """
    headers, properties = envelope.headers, envelope.properties
    if not (type(headers) is dict or isinstance(headers, Mapping)) or not (
        type(properties) is dict or isinstance(properties, Mapping)
    ):
        raise InvalidTaskError("Message headers and properties must be mappings")
    get = headers.get
    name = get("task")
    if not isinstance(name, str) or not name:
        if name is None:
            raise InvalidTaskError("Message has no 'task' header: not a protocol v2 task message")
        raise _invalid("Message", "header 'task' must be a non-empty string", name)
    task_id = get("id")
    if task_id is None:
        task_id = properties.get("correlation_id")
    if not isinstance(task_id, str) or not task_id:
        if task_id is None:
            raise InvalidTaskError(f"Message for task {name!r} has no task id")
        raise _invalid(f"Message for task {name!r}", "header 'id' must be a non-empty string",
                       task_id)
    # Written out, not looped over a table: this runs for every message.
    retries = get("retries")
    if retries is None:
        retries = 0
    elif type(retries) is not int or retries < 0:
        raise _bad_header(name, task_id, "retries", "an integer >= 0", retries)
    eta = get("eta")
    eta_s = None
    if eta is not None:
        eta, eta_s = _date(eta, "eta", name, task_id)
    expires = get("expires")
    expires_s = None
    if expires is not None:
        expires, expires_s = _date(expires, "expires", name, task_id)
    timelimit = get("timelimit")
    hard = soft = None
    if timelimit is not None and timelimit != _NO_LIMITS:
        hard, soft = _time_limits(timelimit, name, task_id)
    group, root_id, parent_id = get("group"), get("root_id"), get("parent_id")
    if group is not None and not isinstance(group, str):
        raise _bad_header(name, task_id, "group", "a string or null", group)
    if root_id is not None and not isinstance(root_id, str):
        raise _bad_header(name, task_id, "root_id", "a string or null", root_id)
    if parent_id is not None and not isinstance(parent_id, str):
        raise _bad_header(name, task_id, "parent_id", "a string or null", parent_id)
    group_index = get("group_index")
    if group_index is not None and (type(group_index) is not int or group_index < 0):
        raise _bad_header(name, task_id, "group_index", "an integer >= 0 or null", group_index)
    ignore_result = get("ignore_result")
    if ignore_result is not None and type(ignore_result) is not bool:
        raise _bad_header(name, task_id, "ignore_result", "a boolean or null", ignore_result)
    priority = properties.get("priority")
    if priority is not None and (type(priority) is not int or not 0 <= priority <= MAX_PRIORITY):
        raise _invalid(f"Task {name}[{task_id}]",
                       f"property 'priority' must be an integer 0..{MAX_PRIORITY} or null",
                       priority)

    body = envelope.body
    compressed = get("compression")
    if compressed is not None:
        body = decompress(body, compressed)
    payload = serialization.loads(body, envelope.content_type, accept)
    if not isinstance(payload, (list, tuple)) or len(payload) != 3:
        raise InvalidTaskError(
            f"Body of task {name}[{task_id}] is not [args, kwargs, embed] (protocol v2)"
        )
    args, kwargs, embed = payload
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise InvalidTaskError(f"Task {name}[{task_id}] has args/kwargs of the wrong type")
    if kwargs and not all(type(key) is str for key in kwargs):
        raise InvalidTaskError(f"Task {name}[{task_id}] has kwargs whose keys are not all strings")
    if embed is None:
        embed = {}
    elif type(embed) is not dict:
        raise _invalid(f"Task {name}[{task_id}]",
                       "embed (the body's third item) must be a dict or null", embed)
    chord = embed.get("chord")
    if chord is not None and type(chord) is not dict:
        raise _invalid(f"Task {name}[{task_id}]", "embed 'chord' must be a dict or null", chord)
    callbacks, errbacks, chain = embed.get("callbacks"), embed.get("errbacks"), embed.get("chain")
    if callbacks is not None and type(callbacks) is not list:
        callbacks = _embed_list(embed, "callbacks", name, task_id)
    if errbacks is not None and type(errbacks) is not list:
        errbacks = _embed_list(embed, "errbacks", name, task_id)
    if chain is not None and type(chain) is not list:
        chain = _embed_list(embed, "chain", name, task_id)
    shadow, origin = get("shadow"), get("origin")
    argsrepr, kwargsrepr = get("argsrepr"), get("kwargsrepr")
    correlation_id, reply_to = properties.get("correlation_id"), properties.get("reply_to")
    return TaskMessage(
        id=task_id,
        name=name,
        args=args if type(args) is list else list(args),
        kwargs=kwargs,
        headers=headers,
        properties=properties,
        embed=embed,
        retries=retries,
        eta=eta,
        eta_s=eta_s,
        expires=expires,
        expires_s=expires_s,
        time_limit_s=hard,
        soft_time_limit_s=soft,
        group=group,
        group_index=group_index,
        root_id=root_id,
        parent_id=parent_id,
        ignore_result=bool(ignore_result),
        priority=priority,
        shadow=shadow if type(shadow) is str else None,
        origin=origin if type(origin) is str else None,
        argsrepr=argsrepr if type(argsrepr) is str else None,
        kwargsrepr=kwargsrepr if type(kwargsrepr) is str else None,
        correlation_id=correlation_id if type(correlation_id) is str else None,
        reply_to=reply_to if type(reply_to) is str else None,
        callbacks=callbacks,
        errbacks=errbacks,
        chain=chain,
        chord=chord,
    )


# -- stored messages: read what a broker kept, and bound what a dead-letter record keeps --------
#: bytes of a rejected message's body kept in its dead-letter record
REJECTED_BODY_MAX_BYTES = 64 * 1024
#: bytes, as JSON, of a rejected message's headers kept in its record (and of its properties)
REJECTED_HEADERS_MAX_BYTES = 8 * 1024
#: characters of a rejection reason kept in its record
REJECTED_REASON_MAX_CHARS = 2048
#: characters of each identifying header value kept when a record's headers must be cut down
_KEPT_VALUE_MAX_CHARS = 256
#: what a cut-down record keeps: the headers and properties that identify the message
_KEPT_HEADERS = ("id", "task", "retries", "eta", "expires", "group", "root_id", "parent_id",
                 "origin")
_KEPT_PROPERTIES = ("correlation_id", "reply_to", "priority")
_TRUNCATED_KEY = "x-celeriac-truncated"

_Stored = bytes | bytearray | memoryview | str
#: orjson.loads, which refuses (JSONDecodeError) any argument that is not bytes-like or str
_loads = cast(Callable[[object], Any], orjson.loads)


def _as_mapping(value: object, what: str) -> tuple[dict[str, Any], str | None]:
    if isinstance(value, Mapping):
        if all(isinstance(key, str) for key in value):
            return value if type(value) is dict else dict(value), None
        return {}, f"{what} have keys that are not strings"
    if isinstance(value, _Stored):
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            head = value[:40] if isinstance(value, str) else bytes(value[:40])
            return {}, f"{what} are not JSON ({exc}): {saferepr(head, _QUOTE_MAX_CHARS)}"
        if isinstance(decoded, dict):
            return decoded, None
        return {}, (f"{what} are JSON but not an object: {type(decoded).__name__} "
                    f"{saferepr(decoded, _QUOTE_MAX_CHARS)}")
    return {}, f"{what} are a {type(value).__name__}, not a JSON object"


def _as_bytes(value: object) -> tuple[bytes, str | None]:
    if type(value) is bytes:
        return value, None
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value), None
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape"), "body is text, not bytes"
    return b"", f"body is a {type(value).__name__}, not bytes"


def _as_text(value: object, what: str) -> tuple[str, str | None]:
    if isinstance(value, str):
        return value, None
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8"), None
        except UnicodeDecodeError:
            return raw.decode("utf-8", "replace"), f"{what} is not UTF-8 text: {raw[:40]!r}"
    return "", f"{what} is a {type(value).__name__}, not text"


def open_stored(
    headers: object,
    properties: object,
    body: object,
    content_type: object,
    content_encoding: object,
) -> tuple[Envelope, str | None]:
    """The envelope of a message from the parts a broker stored, and None; or, when a part is
    unusable, a stand-in envelope and why (the broker delivers it with ``malformed`` set, and
    the executor dead-letters it). Never raises.

    Rules: headers and properties are JSON objects (bytes or text), or mappings with string
    keys (the memory broker keeps objects); the body is bytes; content type and encoding are
    text (str, or UTF-8 bytes). The stand-in keeps every part that was usable (headers that
    decoded keep the task id, under which the executor stores a FAILURE); unusable headers or
    properties become ``{}``, an unusable body its bytes when it has any (else ``b""``).
    """
    if (
        type(body) is bytes
        and isinstance(content_type, (str, bytes))
        and isinstance(content_encoding, (str, bytes))
    ):
        # The common case, checked by type alone; anything else takes the explaining path.
        try:
            h, p = _loads(headers), _loads(properties)
            t = content_type.decode() if isinstance(content_type, bytes) else content_type
            e = (content_encoding.decode() if isinstance(content_encoding, bytes)
                 else content_encoding)
        except ValueError:  # JSONDecodeError (also for a part of the wrong type), bad UTF-8
            pass
        else:
            if type(h) is dict and type(p) is dict:
                return Envelope(body=body, headers=h, properties=p, content_type=t,
                                content_encoding=e), None
    try:
        h, h_problem = _as_mapping(headers, "headers")
        p, p_problem = _as_mapping(properties, "properties")
        b, b_problem = _as_bytes(body)
        t, t_problem = _as_text(content_type, "content type")
        e, e_problem = _as_text(content_encoding, "content encoding")
        problems = [x for x in (h_problem, p_problem, b_problem, t_problem, e_problem) if x]
        envelope = Envelope(body=b, headers=h, properties=p, content_type=t, content_encoding=e)
        return envelope, "; ".join(problems) if problems else None
    except Exception as exc:  # a shape the rules above did not foresee: still never raise
        return Envelope(body=b"", headers={}), f"unreadable message: {saferepr(exc, 200)}"


def check_envelope(envelope: Envelope) -> tuple[Envelope, str | None]:
    """``envelope`` itself and None when its parts have the right types; else what
    :func:`open_stored` makes of its parts (for brokers that keep envelope objects)."""
    if (
        type(envelope.headers) is dict
        and type(envelope.properties) is dict
        and type(envelope.body) is bytes
        and type(envelope.content_type) is str
        and type(envelope.content_encoding) is str
    ):
        return envelope, None
    return open_stored(
        envelope.headers,
        envelope.properties,
        envelope.body,
        envelope.content_type,
        envelope.content_encoding,
    )


def _json_size(mapping: Mapping[str, Any]) -> int | None:
    try:
        return len(orjson.dumps(dict(mapping)))
    except (TypeError, ValueError, orjson.JSONEncodeError):
        return None


def _kept_value(value: Any) -> Any:
    if value is None or type(value) in (bool, int, float):
        return value
    if isinstance(value, str):
        return value[:_KEPT_VALUE_MAX_CHARS]
    return saferepr(value, _KEPT_VALUE_MAX_CHARS)[:_KEPT_VALUE_MAX_CHARS]


def _bounded_mapping(mapping: object, keep: tuple[str, ...]) -> tuple[dict[str, Any], bool]:
    """``mapping`` as a JSON-able dict of at most REJECTED_HEADERS_MAX_BYTES, and whether it
    had to be cut down to the ``keep`` keys."""
    if not isinstance(mapping, Mapping):
        return {}, mapping is not None
    size = _json_size(mapping)
    if size is not None and size <= REJECTED_HEADERS_MAX_BYTES:
        return dict(mapping), False
    kept = {key: _kept_value(mapping[key]) for key in keep if key in mapping}
    kept[_TRUNCATED_KEY] = True
    return kept, True


def dead_letter(envelope: Envelope, reason: str) -> tuple[Envelope, str]:
    """What a rejected-message record keeps of ``envelope``, and the reason to store with it.

    Bounds, so that a record's size is bounded whatever was sent (and a list capped by count
    is bounded in bytes): the first REJECTED_BODY_MAX_BYTES of the body; headers and
    properties of at most REJECTED_HEADERS_MAX_BYTES each as JSON, else only the keys that
    identify the message (values cut to 256 characters) plus ``"x-celeriac-truncated": true``;
    a reason of at most REJECTED_REASON_MAX_CHARS. Whatever was cut is said in the reason
    ("truncated"). Returns the envelope itself when nothing had to change. Never raises.
    """
    try:
        notes: list[str] = []
        text = reason if isinstance(reason, str) else saferepr(reason)
        if len(text) > REJECTED_REASON_MAX_CHARS:
            text = text[:REJECTED_REASON_MAX_CHARS]
            notes.append("reason truncated")
        body, _ = _as_bytes(envelope.body)
        if len(body) > REJECTED_BODY_MAX_BYTES:
            notes.append(f"body truncated: kept {REJECTED_BODY_MAX_BYTES} of {len(body)} bytes")
            body = body[:REJECTED_BODY_MAX_BYTES]
        headers, cut_headers = _bounded_mapping(envelope.headers, _KEPT_HEADERS)
        properties, cut_properties = _bounded_mapping(envelope.properties, _KEPT_PROPERTIES)
        if cut_headers:
            notes.append(f"headers truncated to {sorted(headers)}")
        if cut_properties:
            notes.append(f"properties truncated to {sorted(properties)}")
        content_type, _ = _as_text(envelope.content_type, "content type")
        content_encoding, _ = _as_text(envelope.content_encoding, "content encoding")
        content_type = content_type[:_KEPT_VALUE_MAX_CHARS]
        content_encoding = content_encoding[:_KEPT_VALUE_MAX_CHARS]
        unchanged = (
            not notes
            and body is envelope.body
            and content_type is envelope.content_type
            and content_encoding is envelope.content_encoding
            and type(envelope.headers) is dict
            and type(envelope.properties) is dict
        )
        if unchanged:
            return envelope, text
        if notes:
            text = f"{text} [{'; '.join(notes)}]"
        record = Envelope(body=body, headers=headers, properties=properties,
                          content_type=content_type, content_encoding=content_encoding)
        return record, text
    except Exception as exc:  # never let a record stop a rejection
        return Envelope(body=b"", headers={}), f"{str(reason)[:200]} [record unreadable: {exc!r}]"
