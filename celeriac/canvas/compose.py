"""Building workflows: ``|``, copies, the canonical shape, and freezing (assigning ids).

The canonical shape, reached by :func:`normalize_chain` and :func:`unroll`:

* a chain is flat, and every step but the last is a plain task: a group followed by more
  steps becomes a chord whose body is the rest (Celery's "upgrade to chord"), and a chord
  followed by more steps takes them into its body;
* a group has no group members (nested groups are unrolled into it, like Celery);
* a group that must deliver ONE value to an enclosing chord (the last step of a chain in a
  chord header, or a chord body inside a header) is wrapped as ``chord(group,
  celery.accumulate)`` so it reports once, with its list.

Freezing walks that shape, gives every task an id, a chord member its ``group_id``,
``group_index`` and ``chord`` (the body, with ``chord_size``), and returns the result objects
the caller gets back, linked through ``.parent``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from celeriac import _state
from celeriac.canvas.primitives import chain, chord, chunks
from celeriac.canvas.signature import Signature, maybe_signature
from celeriac.result import AsyncResult, GroupResult

if TYPE_CHECKING:
    from celeriac.app.base import Celery

PLAIN = ""
#: composite kinds; everything else (plain tasks, xmap, xstarmap) is sent as one message
COMPOSITE = frozenset({"chain", "group", "chord", "chunks"})
#: call-time options that do not replace the value a signature already has
_STICKY_OPTIONS = frozenset({"group_id"})


def kind(sig: Any) -> str:
    return (sig.get("subtask_type") or PLAIN) if isinstance(sig, dict) else PLAIN


# -- merging and copying -----------------------------------------------------------------------
def errbacks_of(sig: Any) -> list[Any]:
    """The errbacks to call when ``sig`` as a whole cannot run (a failed chord's body)."""
    k = kind(sig)
    if k == "chain":
        steps = sig.kwargs.get("tasks") or []
        return errbacks_of(maybe_signature(steps[0])) if steps else []
    if k == "chord":
        body = sig.kwargs.get("body")
        return errbacks_of(maybe_signature(body)) if body is not None else []
    if k == "group":
        found: list[Any] = []
        for member in sig.kwargs.get("tasks") or []:
            for errback in errbacks_of(maybe_signature(member)):
                if errback not in found:
                    found.append(errback)
        return found
    return list(sig["options"].get("link_error") or [])


def merge_call(
    sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
    """A call's effective (args, kwargs, options): partial args first, unless immutable."""
    own_options: dict[str, Any] = sig["options"]
    if options:
        merged = dict(own_options)
        for key, value in options.items():
            if key in _STICKY_OPTIONS and merged.get(key) is not None:
                continue
            merged[key] = value
    else:
        merged = dict(own_options)
    own_args = sig["args"]
    if sig.get("immutable"):
        return tuple(own_args), dict(sig["kwargs"]), merged
    return (
        (tuple(args) + tuple(own_args)) if args else tuple(own_args),
        {**sig["kwargs"], **kwargs} if kwargs else dict(sig["kwargs"]),
        merged,
    )


def _copy_options(options: dict[str, Any]) -> dict[str, Any]:
    out = dict(options)
    for key in ("link", "link_error"):
        value = out.get(key)
        if isinstance(value, list):
            out[key] = list(value)
    return out


def copy_sig(sig: Signature) -> Signature:
    """A copy whose options and parts can be changed without touching ``sig``."""
    new = type(sig).__new__(type(sig))
    dict.__init__(new, sig)
    new._app = sig._app
    new._type = sig._type
    new["options"] = _copy_options(sig["options"])
    kw = new["kwargs"] = dict(sig["kwargs"])
    k = kind(sig)
    if k in ("chain", "group"):
        kw["tasks"] = [copy_sig(maybe_signature(t, app=sig._app)) for t in kw["tasks"]]
    elif k == "chord":
        kw["header"] = copy_sig(kw["header"])
        if kw.get("body") is not None:
            kw["body"] = copy_sig(maybe_signature(kw["body"], app=sig._app))
    return new


def clone(
    sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
) -> Signature:
    new = copy_sig(sig)
    new_args, new_kwargs, new_options = merge_call(new, args, kwargs, options)
    new["args"], new["kwargs"], new["options"] = new_args, new_kwargs, new_options
    return new


def pipe(left: Signature, right: Any) -> Any:
    """``left | right`` with Celery's rules: a group piped into anything is a chord; a chord
    piped into a task adds it to the body; chains concatenate."""
    if not isinstance(right, Signature):
        return NotImplemented
    app = left._app or right._app
    lk, rk = kind(left), kind(right)
    if lk == "group":
        return chord(left, body=right, app=app)
    if lk == "chord" and rk not in ("group", "chain", "chord"):
        new = copy_sig(left)
        body = new.kwargs.get("body")
        new.kwargs["body"] = right if body is None else pipe(body, right)
        return new
    steps = list(left.kwargs["tasks"]) if lk == "chain" else [left]
    steps.extend(right.kwargs["tasks"] if rk == "chain" else [right])
    return chain(*steps, app=app)


# -- the canonical shape -----------------------------------------------------------------------
def _as_one(steps: list[Signature], app: Celery | None) -> Signature:
    return steps[0] if len(steps) == 1 else chain(*steps, app=app)


def _flatten(steps: list[Any], app: Celery | None, out: list[Signature]) -> list[Signature]:
    for step in steps:
        sig = maybe_signature(step, app=app)
        if kind(sig) == "chain":
            _flatten(sig.kwargs["tasks"], app, out)
        elif kind(sig) == "chunks":
            out.append(chunks_group(sig))
        else:
            out.append(sig)
    return out


def normalize_chain(steps: list[Any], app: Celery | None) -> list[Signature]:
    """Flat steps where only the last one may be a group or a chord."""
    tail: list[Signature] = []
    for step in reversed(_flatten(steps, app, [])):
        k = kind(step)
        if tail and k == "group":
            step = chord(step, body=_as_one(tail, app), app=app)
            tail = []
        elif tail and k == "chord":
            body = step.kwargs.get("body")
            rest = tail if body is None else [body, *tail]
            step.kwargs["body"] = _as_one(rest, app)
            tail = []
        tail.insert(0, step)
    return tail


def unroll(members: list[Any], app: Celery | None, out: list[Signature]) -> list[Signature]:
    """A group's members with nested groups (and chunks) spliced in, in order."""
    for member in members:
        sig = maybe_signature(member, app=app)
        k = kind(sig)
        if k == "group":
            unroll(sig.kwargs["tasks"], app, out)
        elif k == "chunks":
            unroll(chunks_group(sig).kwargs["tasks"], app, out)
        else:
            out.append(sig)
    return out


def single_slot(sig: Signature, app: Celery | None) -> Signature:
    """``sig`` made to report one value: a group becomes ``chord(group, accumulate)``."""
    if kind(sig) == "chunks":
        sig = chunks_group(sig)
    if kind(sig) == "group":
        body = Signature("celery.accumulate", (), {"index": 0}, app=app)
        return chord(sig, body=body, app=app)
    return sig


# -- freezing ---------------------------------------------------------------------------------
def new_id() -> str:
    return str(uuid.uuid4())


def link_parent(result: Any, parent: Any) -> None:
    """Hang ``parent`` above the oldest ancestor of ``result``."""
    if parent is None:
        return
    node = result
    while node.parent is not None:
        node = node.parent
    if node is not parent:
        node.parent = parent


def freeze(
    sig: Signature,
    *,
    _id: str | None = None,
    group_id: str | None = None,
    chord_body: Any = None,
    root_id: str | None = None,
    parent_id: str | None = None,
    group_index: int | None = None,
) -> Any:
    """Assign ids in place (keeping ids already there) and return the result object.

    ``chord_body`` set means ``sig`` is one slot of a chord header: whatever task produces
    its value carries the chord (body + size) and the header's ``group_id``/``group_index``.
    """
    app = sig._app
    k = kind(sig)
    if k == "chain":
        return _freeze_chain(sig, app, _id, group_id, chord_body, root_id, parent_id, group_index)
    if k == "group":
        return _freeze_group(sig, app, _id, root_id)
    if k == "chord":
        return _freeze_chord(sig, app, _id, group_id, chord_body, root_id, group_index)
    if k == "chunks":
        raise TypeError("freeze the group of a chunks signature: chunks(...).group().freeze()")
    opts = sig["options"]
    task_id = opts.get("task_id")
    if task_id is None:
        task_id = opts["task_id"] = _id or new_id()
    if root_id:
        opts["root_id"] = root_id
    if parent_id:
        opts["parent_id"] = parent_id
    if group_id and opts.get("group_id") is None:
        opts["group_id"] = group_id
    if chord_body is not None:
        opts["chord"] = chord_body
    if group_index is not None:
        opts["group_index"] = group_index
    return AsyncResult(task_id, task_name=sig.get("task"), app=app or _state.get_current_app())


def _freeze_chain(
    sig: Signature,
    app: Celery | None,
    _id: str | None,
    group_id: str | None,
    chord_body: Any,
    root_id: str | None,
    parent_id: str | None,
    group_index: int | None,
) -> Any:
    steps = normalize_chain(sig.kwargs["tasks"], app)
    if not steps:
        sig.kwargs["tasks"] = steps
        return None
    if chord_body is not None:
        steps[-1] = single_slot(steps[-1], app)
    sig.kwargs["tasks"] = steps
    first = steps[0]
    last_index = len(steps) - 1
    first_id = None
    if kind(first) == PLAIN:
        given = _id if last_index == 0 else None
        first_id = first["options"].setdefault("task_id", given or new_id())
    root_id = root_id or sig["options"].get("root_id") or _current_root() or first_id
    previous: Any = None
    for index, step in enumerate(steps):
        if index == last_index:
            result = freeze(
                step,
                _id=_id,
                group_id=group_id,
                chord_body=chord_body,
                root_id=root_id,
                group_index=group_index,
                parent_id=parent_id if index == 0 else None,
            )
        else:
            result = freeze(step, root_id=root_id, parent_id=parent_id if index == 0 else None)
        link_parent(result, previous)
        previous = result
    return previous


def _freeze_group(
    sig: Signature, app: Celery | None, _id: str | None, root_id: str | None
) -> GroupResult:
    gid = sig["options"].get("task_id") or _id or new_id()
    sig["options"]["task_id"] = gid
    members = unroll(sig.kwargs["tasks"], app, [])
    sig.kwargs["tasks"] = members
    results = [
        freeze(member, group_id=gid, root_id=root_id, group_index=index)
        for index, member in enumerate(members)
    ]
    return GroupResult(gid, results, app=app or _state.get_current_app())


def _freeze_chord(
    sig: Signature,
    app: Celery | None,
    _id: str | None,
    group_id: str | None,
    chord_body: Any,
    root_id: str | None,
    group_index: int | None,
) -> Any:
    header: Signature = sig.kwargs["header"]
    body = sig.kwargs.get("body")
    if body is None:
        raise ValueError("chord has no body: use chord(header, body) or chord(header)(body)")
    body = maybe_signature(body, app=app)
    if chord_body is not None:
        body = single_slot(body, app)
    sig.kwargs["body"] = body
    gid = header["options"].setdefault("task_id", new_id())
    members = unroll(header.kwargs["tasks"], app, [])
    header.kwargs["tasks"] = members
    body_result = freeze(
        body,
        _id=_id or sig["options"].get("task_id"),
        group_id=group_id,
        chord_body=chord_body,
        root_id=root_id,
        group_index=group_index,
    )
    body["chord_size"] = len(members)
    results = [
        freeze(member, group_id=gid, chord_body=body, root_id=root_id, group_index=index)
        for index, member in enumerate(members)
    ]
    header_result = GroupResult(gid, results, app=app or _state.get_current_app())
    link_parent(body_result, header_result)
    return body_result


def _current_root() -> str | None:
    task = _state.current_task()
    if task is None:
        return None
    return task.request.root_id


def slot_id(sig: Signature) -> str | None:
    """Id of the task whose result is ``sig``'s value in a chord header (after freezing)."""
    k = kind(sig)
    if k == "chain":
        steps = sig.kwargs["tasks"]
        return slot_id(steps[-1]) if steps else None
    if k == "chord":
        body = sig.kwargs.get("body")
        return slot_id(body) if body is not None else None
    if k == "group":
        return None
    task_id: str | None = sig["options"].get("task_id")
    return task_id


def chunks_group(sig: Signature) -> Signature:
    """The group a ``chunks`` signature stands for."""
    if not isinstance(sig, chunks):
        sig = chunks.from_dict(sig, app=sig._app)
    assert isinstance(sig, chunks)
    return sig.group()
