"""Celery task events merged into one row per task (a :data:`TaskDict`), as the dashboard's
history stores keep them (:mod:`celeriac.dashboard.history`).

Rules:

- ``task-*`` events merge into a row per uuid (other events are ignored), with
  :class:`celeriac.events.State`'s rules: an event that arrives late (a ``task-started``
  after ``task-succeeded``) only fills in fields and never moves the state back;
  ``task-rejected`` ends any unfinished task;
- merging is idempotent: an event merged again (by a second dashboard writing the same store,
  or a replay) changes nothing. An event whose time field (``received``, ``started``...) is
  not newer than the one stored is a repeat: it fills in missing fields only. A
  ``task-retried`` older than the task's current state is late, like any other event;
- hostile events never make merging raise: an event without a string ``uuid`` of at most
  :data:`MAX_UUID_CHARS` characters, or without a positive number in ``timestamp`` or
  ``local_received`` (every receiver adds it), is dropped; fields of the wrong type become
  None (numbers) or text (strings), and text longer than :data:`MAX_TEXT_CHARS` is cut.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import orjson

from celeriac import states

__all__ = [
    "MAX_TEXT_CHARS",
    "MAX_UUID_CHARS",
    "TASK_FIELDS",
    "TIME_FIELDS",
    "TaskDict",
    "dumps",
    "empty_task",
    "finite_number",
    "event_task_ids",
    "loads",
    "merge_event",
    "merge_events",
]

TaskDict = dict[str, Any]

#: an event whose uuid is longer than this is dropped (Celery's ids are 36 characters)
MAX_UUID_CHARS = 255
#: task and worker names are cut to this length
MAX_NAME_CHARS = 512
#: args, kwargs, result, traceback... are cut to this length
MAX_TEXT_CHARS = 64 * 1024
#: a custom event type (``task-<word>``) longer than this is dropped
MAX_SUBTYPE_CHARS = 64

TIME_FIELDS = ("sent", "received", "started", "succeeded", "failed", "retried", "revoked",
               "rejected")
_NAME_FIELDS = ("name", "worker", "client", "root_id", "parent_id", "exchange", "routing_key",
                "queue")
_TEXT_FIELDS = ("args", "kwargs", "result", "exception", "traceback", "eta", "expires")
_INT_FIELDS = ("retries", "signum")
_BOOL_FIELDS = ("terminated", "expired", "requeue")
#: every key of a TaskDict, in Flower's order
TASK_FIELDS = (
    "uuid", "name", "state", "received", "sent", "started", "succeeded", "failed", "retried",
    "revoked", "rejected", "args", "kwargs", "result", "exception", "traceback", "eta",
    "expires", "retries", "worker", "runtime", "timestamp", "root_id", "parent_id", "children",
    "clock", "client", "exchange", "routing_key", "queue", "terminated", "signum", "expired",
    "requeue",
)
#: fields a late task-received may still fill in (Celery's merge rules)
_LATE_RECEIVED_FIELDS = ("name", "args", "kwargs", "parent_id", "root_id", "retries", "eta",
                         "expires")
_EVENT_STATES = {
    "sent": states.PENDING, "received": states.RECEIVED, "started": states.STARTED,
    "failed": states.FAILURE, "retried": states.RETRY, "succeeded": states.SUCCESS,
    "revoked": states.REVOKED, "rejected": states.REJECTED,
}



# -- normalising and merging events ---------------------------------------------------------------
def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text: str
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value, default=repr).decode()
        except (TypeError, ValueError):
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "…"


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float when it is an int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    found = float(value)
    return found if math.isfinite(found) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if abs(value) < 2**62 else None


def _event_time(event: dict[str, Any]) -> float | None:
    for key in ("timestamp", "local_received"):
        found = finite_number(event.get(key))
        if found is not None and found > 0:
            return found
    return None


def empty_task(uuid: str) -> TaskDict:
    task: TaskDict = dict.fromkeys(TASK_FIELDS)
    task.update(uuid=uuid, state=states.PENDING, children=[], clock=0)
    return task


def _fields_of(event: dict[str, Any]) -> dict[str, Any]:
    """The task fields an event carries, cleaned (see the module rules)."""
    out: dict[str, Any] = {}
    for key in _NAME_FIELDS:
        if key in event and key != "worker":
            out[key] = _text(event[key], MAX_NAME_CHARS)
    for key in _TEXT_FIELDS:
        if key in event:
            out[key] = _text(event[key], MAX_TEXT_CHARS)
    for key in _INT_FIELDS:
        if key in event:
            out[key] = _int(event[key])
    for key in _BOOL_FIELDS:
        if key in event:
            value = event[key]
            out[key] = value if isinstance(value, bool) else None
    if "runtime" in event:
        out["runtime"] = finite_number(event["runtime"])
    return out


def _late(state: str, ts: float, task: TaskDict) -> bool:
    """Whether an event of ``state`` at ``ts`` precedes the task's current state (arrived
    late). Unlike Celery, RETRY is compared by time: a retry older than the current state's
    event is late, and so is any event older than a current RETRY."""
    current = task["state"]
    current_ts = task["timestamp"]
    if state == states.RETRY or current == states.RETRY:
        return current_ts is not None and ts < current_ts
    if state == states.REJECTED:
        return current in states.READY_STATES
    return states.precedence(state) > states.precedence(current)


def merge_event(task: TaskDict | None, event: dict[str, Any]) -> TaskDict | None:
    """``task`` (None: not seen yet) after the task event ``event``, as a new dict; None when
    the event is not a usable task event. See the module rules."""
    type_ = event.get("type")
    uuid = event.get("uuid")
    if not isinstance(type_, str) or not type_.startswith("task-"):
        return None
    if not isinstance(uuid, str) or not uuid or len(uuid) > MAX_UUID_CHARS:
        return None
    if task is not None and task.get("uuid") != uuid:
        raise ValueError("merge_event: the event is about another task")
    subtype = type_[5:]
    if not subtype or len(subtype) > MAX_SUBTYPE_CHARS:
        return None
    state = _EVENT_STATES.get(subtype) or subtype.upper()
    ts = _event_time(event)
    if ts is None:
        return None
    new = dict(task) if task is not None else empty_task(uuid)
    fields = _fields_of(event)
    hostname = _text(event.get("hostname"), MAX_NAME_CHARS) \
        if isinstance(event.get("hostname"), str) else None
    if subtype == "sent":
        fields.setdefault("client", hostname)
    elif hostname is not None:
        fields["worker"] = hostname
    clock = _int(event.get("clock"))
    if clock is not None and clock > (new["clock"] or 0):
        new["clock"] = clock
    if subtype in TIME_FIELDS:
        previous = new[subtype]
        repeat = previous is not None and ts <= previous
        if not repeat:
            new[subtype] = ts
    else:
        repeat = new["state"] == state and new["timestamp"] is not None and ts <= new["timestamp"]
    if repeat:
        # Seen already: fill in what is missing, never move anything.
        for key, value in fields.items():
            if new.get(key) is None and value is not None:
                new[key] = value
    elif _late(state, ts, new):
        # Fills in fields (only Celery's few for a late task-received); keeps the worker
        # that ran the task's current state.
        keep = _LATE_RECEIVED_FIELDS if state == states.RECEIVED else tuple(fields)
        for key in keep:
            value = fields.get(key)
            if value is not None and not (key == "worker" and new["worker"] is not None):
                new[key] = value
    else:
        new["state"] = state
        new["timestamp"] = ts
        new.update((key, value) for key, value in fields.items() if value is not None)
    return new


def event_task_ids(events: Iterable[Any]) -> list[str]:
    """The task ids the usable task events of ``events`` are about, each once."""
    return list(dict.fromkeys(e["uuid"] for e in events if isinstance(e, dict) and _usable(e)))


def merge_events(events: Iterable[Any], stored: dict[str, TaskDict]) -> dict[str, TaskDict]:
    """The tasks ``events`` change, merged over ``stored`` (the stored tasks of
    :func:`event_task_ids`, those that exist); tasks the events leave as stored are left
    out."""
    current = dict(stored)
    changed: set[str] = set()
    for event in events:
        if not isinstance(event, dict) or not _usable(event):
            continue
        merged = merge_event(current.get(event["uuid"]), event)
        if merged is not None and merged != current.get(event["uuid"]):
            current[event["uuid"]] = merged
            changed.add(event["uuid"])
    return {uuid: current[uuid] for uuid in changed if current[uuid] != stored.get(uuid)}


def _usable(event: dict[str, Any]) -> bool:
    """Whether ``event`` is a task event with a uuid a row can be kept under."""
    type_, uuid = event.get("type"), event.get("uuid")
    return (isinstance(type_, str) and type_.startswith("task-") and isinstance(uuid, str)
            and 0 < len(uuid) <= MAX_UUID_CHARS)


def dumps(task: TaskDict) -> bytes:
    """A task as stored (children are not: they are found from the children's parent_id)."""
    return orjson.dumps({k: v for k, v in task.items() if k != "children"})


def loads(data: bytes | str) -> TaskDict:
    found = orjson.loads(data)
    task = empty_task(str(found.get("uuid")))
    task.update({k: v for k, v in found.items() if k in task})
    return task

