"""The canvas continuation: what follows a task that is part of a workflow, as data.

A task is part of a workflow when its message carries ``callbacks``, ``errbacks``, ``chain``
or ``chord`` (all in the body's embed). :func:`plan` turns such a task's end into
:class:`~celeriac.effects.Effects` without any I/O (the continuation middleware calls it where
the task ran); the worker's executor stores, counts and publishes them in its batched flush,
after the task's own result (see :mod:`celeriac.effects` for the order).

* SUCCESS: each ``link`` callback is sent with the result as first argument (unless
  immutable); the next ``chain`` step is sent with the result prepended and the rest of the
  chain in its own message.
* FAILURE: each ``link_error`` errback is called in this process with ``(request, exc,
  traceback)`` when its task takes more than one positional argument, otherwise sent as a
  task with the failed task's id (Celery's two styles); in-process errbacks run during
  planning, before the failure is stored, so they are done when ``.get()`` raises. The
  remaining chain steps never run: their results are stored as FAILURE with the same
  exception, so ``.get()`` on the chain's result raises it at once instead of waiting forever.
* REVOKED (a message discarded by the worker, or a terminated task): like FAILURE, without
  errbacks.
* A chord header member, in any of those end states, becomes a chord part; the executor counts
  it (:func:`count_chord_parts`) with the backend's atomic ``incr``; the member that brings the
  counter to the chord size reads the header's result ids (saved when the chord was sent) and
  all header results in one ``get_many``, then sends the body with the list, or, when a member
  failed or was revoked, stores the body as FAILURE with ``ChordError("Dependency <id> raised
  <exc>")`` and calls the body's errbacks (in the worker's main process).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.canvas.compose import PLAIN, errbacks_of, kind, slot_id
from celeriac.canvas.primitives import chain
from celeriac.canvas.send import Batch, send_signature
from celeriac.canvas.signature import Signature, maybe_signature
from celeriac.effects import ChordPart, Effects, plain
from celeriac.exceptions import ChordError
from celeriac.result_meta import build_meta, decode_exception
from celeriac.task import Context

if TYPE_CHECKING:
    from celeriac.app.base import Celery

logger = logging.getLogger("celeriac.workflow")

#: how long a chord counter lives when results never expire
_COUNTER_EXPIRES_S = 86400.0
#: the end states that continue a workflow (RETRY: the new message carries it on)
_FINAL = frozenset({states.SUCCESS, states.FAILURE, states.REVOKED})


def chord_key(group_id: str) -> str:
    return f"chord-unlock-{group_id}"


# -- planning ---------------------------------------------------------------------------------
def plan(
    app: Celery,
    request: Context,
    state: str,
    retval: Any,
    traceback: str | None = None,
) -> Effects:
    """What follows ``request``'s task ending in ``state`` with ``retval`` (its return value,
    or its exception), as effects (see the module doc). No I/O, except what in-process
    errbacks do themselves."""
    effects = Effects()
    if state not in _FINAL:
        return effects
    batch = Batch(app)
    carry = {"parent_id": request.id, "root_id": request.root_id or request.id}
    if state == states.FAILURE and request.errbacks:
        call_errbacks(app, request.errbacks, request, retval, traceback, batch)
    if state == states.SUCCESS:
        for callback in request.callbacks or ():
            send_signature(callback, (retval,), carry, batch)
        if request.chain:
            remaining = list(request.chain)
            following = remaining.pop()
            rest = chain(following, *reversed(remaining), app=app)
            send_signature(rest, (retval,), carry, batch)
    elif request.chain:
        fail_signatures(app, request.chain, retval, state, traceback, effects)
    if request.chord:
        effects.chord_parts.append((request.group, plain(request.chord)))
    effects.extend(batch.collect())
    return effects


# -- chords (the executor's side: I/O) -----------------------------------------------------------
def count_chord_parts(app: Celery, parts: Sequence[ChordPart]) -> Effects:
    """Count finished chord header members (after their results are stored); returns what
    the completing members release: the chord body's message, or its failure records, plus
    any chord parts those add (a failed body that was itself a chord member). One part that
    cannot be counted is logged and the rest go on."""
    effects = Effects()
    batch = Batch(app)
    for group_id, body in parts:
        try:
            _chord_part_done(app, group_id, body, batch, effects)
        except Exception:
            logger.exception("Chord %s: cannot count a finished member", group_id)
    effects.extend(batch.collect())
    return effects


def _chord_part_done(
    app: Celery, group_id: str | None, body: Any, batch: Batch, effects: Effects
) -> None:
    """One header member of chord ``group_id`` has finished; the last one runs the body."""
    body = maybe_signature(body, app=app)
    size = body.get("chord_size")
    if not group_id or size is None:
        logger.error("Chord member without a group id or chord size: body %r not run", body)
        return
    backend = app.backend
    key = chord_key(group_id)
    count = backend.incr(key, 1, app.result_expires_s or _COUNTER_EXPIRES_S)
    if count < size:
        return
    if count > size:
        logger.warning("Chord %s: %d members finished for size %d", group_id, count, size)
        return
    backend.delete_counter(key)
    header = app.restore_group(group_id)
    if header is None:
        fail_body(app, body, ChordError(f"Chord {group_id}: header result ids are gone"),
                  batch, effects)
        return
    ids = [result.id for result in header.results]
    values = []
    for task_id, payload in zip(ids, backend.get_many(ids), strict=True):
        meta = app.decode_result(payload) if payload is not None else None
        if meta is None or meta["status"] != states.SUCCESS:
            reason: Any = (
                decode_exception(meta.get("result"))
                if meta is not None
                else LookupError("no result stored")
            )
            fail_body(app, body, ChordError(f"Dependency {task_id} raised {reason!r}"), batch,
                      effects)
            return
        values.append(meta["result"])
    root_id = body["options"].get("root_id")
    send_signature(body, (values,), {"root_id": root_id} if root_id else {}, batch)


def fail_body(
    app: Celery, body: Signature, exc: BaseException, batch: Batch, effects: Effects
) -> None:
    """The chord body will never run: its failure is stored and its errbacks called."""
    fail_signatures(app, [body], exc, states.FAILURE, None, effects)
    options = body["options"]
    request = Context(
        id=slot_id(body),
        task=body.get("task"),
        args=body.get("args"),
        kwargs=body.get("kwargs"),
        group=options.get("group_id"),
        root_id=options.get("root_id"),
        called_directly=False,
    )
    call_errbacks(app, errbacks_of(body), request, exc, None, batch)


def fail_signatures(
    app: Celery,
    sigs: Sequence[Any],
    exc: BaseException,
    state: str,
    traceback: str | None,
    effects: Effects,
) -> None:
    """Records of ``exc`` as the result of every task in ``sigs`` (steps that will never
    run), and chord parts for the ones that were chord members, so those chords still
    complete."""
    ids: list[str] = []
    chords: list[tuple[str | None, Any]] = []
    for sig in sigs:
        _collect(maybe_signature(sig, app=app), ids, chords, count=True)
    if ids and app.result_backend_url:
        for task_id in ids:
            meta = build_meta(task_id, state, exc, traceback=traceback)
            effects.records.append((task_id, state, app.encode_result(meta)))
    for group_id, body in chords:
        effects.chord_parts.append((group_id, plain(body)))


def _collect(
    sig: Signature, ids: list[str], chords: list[tuple[str | None, Any]], count: bool
) -> None:
    k = kind(sig)
    if k in ("chain", "group"):
        for part in sig.kwargs.get("tasks", ()):
            _collect(maybe_signature(part, app=sig._app), ids, chords, count)
    elif k == "chord":
        header = sig.kwargs["header"]
        for member in header.kwargs.get("tasks", ()):
            # Members of a chord that never started report to it; it is settled right here.
            _collect(maybe_signature(member, app=sig._app), ids, chords, False)
        body = sig.kwargs.get("body")
        if body is not None:
            _collect(maybe_signature(body, app=sig._app), ids, chords, count)
    elif k != "chunks":
        options = sig["options"]
        task_id = options.get("task_id")
        if task_id:
            ids.append(task_id)
        if count and options.get("chord") is not None:
            chords.append((options.get("group_id"), options["chord"]))


# -- errbacks ---------------------------------------------------------------------------------
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def takes_request(app: Celery, sig: Signature) -> bool:
    """New-style errback: its task takes ``(request, exc, traceback)``, i.e. more than one
    positional argument; old-style ones take the failed task's id."""
    if kind(sig) != PLAIN:
        return False
    task = sig._type or app.tasks.get(sig["task"])
    if task is None:
        return False
    cls = type(task)
    fun = getattr(cls, "__wrapped__", None) or task.run
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        return False
    if cls.__dict__.get("_bind") and getattr(cls, "__wrapped__", None) is not None:
        params = params[1:]
    positional = 0
    for param in params:
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if param.kind in _POSITIONAL:
            positional += 1
    return positional > 1


def call_errbacks(
    app: Celery,
    errbacks: Sequence[Any],
    request: Context,
    exc: BaseException,
    traceback: str | None,
    batch: Batch,
) -> None:
    for errback in errbacks:
        sig = maybe_signature(errback, app=app)
        if takes_request(app, sig):
            try:
                sig(request, exc, traceback)
            except Exception:
                logger.exception("Errback %r of task %s raised", sig, request.id)
        else:
            options = {"parent_id": request.id, "root_id": request.root_id or request.id}
            send_signature(sig, (request.id,), options, batch)


def run_eager_callbacks(
    app: Celery,
    state: str,
    retval: Any,
    link: Sequence[Any] | None,
    link_error: Sequence[Any] | None,
    task_id: str,
    request: Context | None = None,
    traceback: str | None = None,
) -> None:
    """``link``/``link_error`` after a task ran in this process (``apply()``, eager mode)."""
    if state == states.SUCCESS:
        for callback in link or ():
            maybe_signature(callback, app=app).apply((retval,))
    elif state == states.FAILURE:
        request = request if request is not None else Context(id=task_id, called_directly=False)
        for errback in link_error or ():
            sig = maybe_signature(errback, app=app)
            if takes_request(app, sig):
                sig(request, retval, traceback)
            else:
                sig.apply((task_id,))
