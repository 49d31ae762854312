"""Sending a workflow (batched, one ``publish_many`` per call) and running one eagerly.

``apply_async`` copies the signature, freezes the copy (ids, chord wiring; see
:mod:`celeriac.canvas.compose`) and walks it, collecting one task call per message into a
:class:`Batch`: a chain sends its first task carrying the remaining steps, reversed, in the
message's ``chain`` embed; a group sends every member; a chord saves its header's result ids
(the completing member reads them back) and sends the header, each member carrying the body.
``apply`` evaluates the same shapes in this process.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.canvas.compose import (
    COMPOSITE,
    chunks_group,
    copy_sig,
    errbacks_of,
    freeze,
    kind,
    link_parent,
    merge_call,
    new_id,
    normalize_chain,
    slot_id,
    unroll,
)
from celeriac.canvas.signature import Signature, maybe_signature
from celeriac.effects import Effects, Record
from celeriac.exceptions import ChordError
from celeriac.result import AsyncResult, EagerResult, GroupResult, ResultSet
from celeriac.result_meta import build_meta

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.task import Task

logger = logging.getLogger("celeriac.canvas")

#: options that wire a signature into its workflow and must not spread to its parts
_STRUCTURAL = frozenset(
    {"task_id", "chord", "chain", "group_id", "group_index", "link", "link_error", "root_id"}
)


def group_record(app: Celery, group: GroupResult) -> Record:
    """The record that saves ``group``'s member ids (what ``app.save_group`` stores)."""
    meta = build_meta(group.id or "", states.SUCCESS, [[r.id, None] for r in group.results])
    return (f"celery-taskset-meta-{group.id}", states.SUCCESS, app.encode_result(meta))


class Batch:
    """Task calls collected while walking a workflow, published in batched round trips."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any], dict[str, Any]]] = []
        self.groups: list[GroupResult] = []

    def add(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> None:
        task = lookup(self.app, name)
        if task is not None:
            if task.typing:
                self.app.check_arguments(task, args, kwargs)
            task._with_defaults(options)
        self.calls.append((name, args, kwargs, options))

    def collect(self) -> Effects:
        """The collected calls as effects, without I/O: the saved-group records and the
        messages (a call that ``task_always_eager`` ran here has none). The caller stores
        the records before it publishes the messages, as :meth:`flush` does."""
        effects = Effects()
        groups, self.groups = self.groups, []
        for group_result in groups:
            effects.records.append(group_record(self.app, group_result))
        calls, self.calls = self.calls, []
        for name, args, kwargs, options in calls:
            prepared = self.app.prepare_message(name, args, kwargs, **options)
            if not isinstance(prepared, AsyncResult):
                effects.messages.append(prepared)
        return effects

    def flush(self) -> None:
        # Header ids are stored before any header task can run and look for them.
        groups, self.groups = self.groups, []
        for group_result in groups:
            self.app.save_group(group_result)
        calls, self.calls = self.calls, []
        if calls:
            self.app.send_many(calls)


def lookup(app: Celery, name: str) -> Task | None:
    return app.tasks.get(name)


def _composite_call(
    sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
    """Partial args of a composite go to its parts; its own send options (queue, countdown...)
    do too, but not its ids and wiring."""
    own = {k: v for k, v in sig["options"].items() if k not in _STRUCTURAL}
    merged_options = {**own, **options}
    if sig.get("immutable"):
        return tuple(sig["args"]), dict(sig["kwargs"]), merged_options
    own_args = tuple(sig["args"])
    return (tuple(args) + own_args) if args else own_args, dict(kwargs), merged_options


def dispatch(
    sig: Signature,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: dict[str, Any],
    batch: Batch,
) -> None:
    """Queue the messages that start ``sig`` (frozen, canonical) into ``batch``."""
    k = kind(sig)
    if k == "chain":
        steps = sig.kwargs["tasks"]
        if not steps:
            return
        args, kwargs, options = _composite_call(sig, args, kwargs, options)
        if len(steps) > 1:
            options = {**options, "chain": steps[:0:-1]}
        dispatch(steps[0], args, kwargs, options, batch)
    elif k == "group":
        args, kwargs, options = _composite_call(sig, args, kwargs, options)
        for member in sig.kwargs["tasks"]:
            dispatch(member, args, kwargs, options, batch)
    elif k == "chord":
        args, kwargs, options = _composite_call(sig, args, kwargs, options)
        kwargs = {**sig.kwargs.get("kwargs", {}), **kwargs}
        header: Signature = sig.kwargs["header"]
        members = header.kwargs["tasks"]
        if not members:
            dispatch(sig.kwargs["body"], ([],), {}, _carry(options), batch)
            return
        ids = [slot_id(m) or "" for m in members]
        batch.groups.append(
            GroupResult(header.id, [AsyncResult(i, app=batch.app) for i in ids], app=batch.app)
        )
        for member in members:
            dispatch(member, args, kwargs, options, batch)
    elif k == "chunks":
        dispatch(_frozen(chunks_group(sig)), args, kwargs, options, batch)
    else:
        call_args, call_kwargs, call_options = merge_call(sig, args, kwargs, options)
        batch.add(sig["task"], call_args, call_kwargs, call_options)


def _carry(options: dict[str, Any]) -> dict[str, Any]:
    return {k: options[k] for k in ("parent_id", "root_id") if k in options}


def _frozen(sig: Signature) -> Signature:
    freeze(sig)
    return sig


def attach_links(sig: Signature, link: Any, link_error: Any) -> None:
    """Call-time ``link``/``link_error`` of a composite: success callbacks go to whatever
    produces its result, errbacks to every task that may fail (Celery's rules)."""
    for callback in _as_list(link):
        sig.link(callback)
    for errback in _as_list(link_error):
        sig.link_error(errback)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def send_signature(sig: Any, args: tuple[Any, ...], options: dict[str, Any], batch: Batch) -> None:
    """Queue ``sig`` (a signature or its dict) called with partial ``args`` into ``batch``."""
    sig = maybe_signature(sig, app=batch.app)
    if kind(sig) in COMPOSITE:
        work = chunks_group(sig) if kind(sig) == "chunks" else copy_sig(sig)
        freeze(work)
        sig = work
    dispatch(sig, args, {}, options, batch)


def apply_async(
    sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
) -> Any:
    app = sig.app
    if app.conf.task_always_eager:
        return apply(sig, args, kwargs, options)
    k = kind(sig)
    if k not in COMPOSITE:
        call_args, call_kwargs, call_options = merge_call(sig, args, kwargs, options)
        task = sig._type or lookup(app, sig["task"])
        if task is not None:
            return task.apply_async(call_args, call_kwargs, **call_options)
        return app.send_task(sig["task"], call_args, call_kwargs, **call_options)
    work = chunks_group(sig) if k == "chunks" else copy_sig(sig)
    if k == "chord" and kwargs.get("body") is not None:
        kwargs = dict(kwargs)
        work.kwargs["body"] = copy_sig(maybe_signature(kwargs.pop("body"), app=app))
    options = dict(options)
    attach_links(work, options.pop("link", None), options.pop("link_error", None))
    result = freeze(work, _id=options.pop("task_id", None), parent_id=options.get("parent_id"))
    batch = Batch(app)
    dispatch(work, args, kwargs, options, batch)
    batch.flush()
    return result


def call_directly(sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    call_args, call_kwargs, _ = merge_call(sig, args, kwargs, {})
    return sig.type(*call_args, **call_kwargs)


# -- eager ------------------------------------------------------------------------------------
def apply(
    sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
) -> Any:
    """Run ``sig`` in this process and return its result object (EagerResult, GroupResult)."""
    app = sig.app
    k = kind(sig)
    if k == "chunks":
        return apply(chunks_group(sig), args, kwargs, options)
    if k == "chain":
        return _apply_chain(app, sig, args, kwargs, options)
    if k == "group":
        args, kwargs, options = _composite_call(sig, args, kwargs, options)
        members = unroll(sig.kwargs["tasks"], sig._app, [])
        results = [apply(m, args, kwargs, options) for m in members]
        return GroupResult(sig["options"].get("task_id") or new_id(), results, app=app)
    if k == "chord":
        return _apply_chord(app, sig, args, kwargs, options)
    call_args, call_kwargs, call_options = merge_call(sig, args, kwargs, options)
    return sig.type.apply(call_args, call_kwargs, **call_options)


def failure_of(result: Any) -> BaseException | None:
    """The exception a finished eager result holds, if it failed."""
    if isinstance(result, ResultSet):
        for member in result.results:
            exc = failure_of(member)
            if exc is not None:
                return exc
        return None
    if isinstance(result, EagerResult) and result.state in states.PROPAGATE_STATES:
        value = result.result
        return value if isinstance(value, BaseException) else Exception(value)
    return None


def value_of(result: Any) -> Any:
    if isinstance(result, ResultSet):
        return result.join(propagate=True, disable_sync_subtasks=False)
    return result.get(disable_sync_subtasks=False)


def failed_result(sig: Signature, exc: BaseException, app: Celery) -> EagerResult:
    return EagerResult(slot_id(sig) or new_id(), exc, states.FAILURE, None, app=app)


def _apply_chain(
    app: Celery,
    sig: Signature,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: dict[str, Any],
) -> Any:
    args, kwargs, options = _composite_call(sig, args, kwargs, options)
    steps = normalize_chain(copy_sig(sig).kwargs["tasks"], sig._app)
    previous: Any = None
    failure: BaseException | None = None
    value: Any = None
    for index, step in enumerate(steps):
        if failure is not None:
            result: Any = failed_result(step, failure, app)
        elif index == 0:
            result = apply(step, args, kwargs, options)
        else:
            result = apply(step, (value,), {}, {})
        if failure is None:
            failure = failure_of(result)
            if failure is None:
                value = value_of(result)
        link_parent(result, previous)
        previous = result
    return previous


def _apply_chord(
    app: Celery,
    sig: Signature,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: dict[str, Any],
) -> Any:
    body = kwargs.get("body")
    kwargs = {k: v for k, v in kwargs.items() if k != "body"}
    body = maybe_signature(body if body is not None else sig.kwargs.get("body"), app=app)
    if body is None:
        raise ValueError("chord has no body: use chord(header, body) or chord(header)(body)")
    args, kwargs, options = _composite_call(sig, args, kwargs, options)
    kwargs = {**sig.kwargs.get("kwargs", {}), **kwargs}
    header: Signature = sig.kwargs["header"]
    members = unroll(header.kwargs["tasks"], sig._app, [])
    results = [apply(m, args, kwargs, options) for m in members]
    header_result = GroupResult(header["options"].get("task_id") or new_id(), results, app=app)
    for member_result in results:
        exc = failure_of(member_result)
        if exc is not None:
            error = ChordError(f"Dependency {member_result.id} raised {exc!r}")
            body_result: Any = failed_result(body, error, app)
            app.run_eager_callbacks(states.FAILURE, error, None, errbacks_of(body), body_result.id)
            break
    else:
        body_result = apply(body, ([value_of(r) for r in results],), {}, {})
    link_parent(body_result, header_result)
    return body_result
