"""The canvas continuation: what happens after a task that is part of a workflow finishes.

A task is part of a workflow when its message carries ``callbacks``, ``errbacks``, ``chain``
or ``chord`` (all in the body's embed). The tracer stores such a task's result itself and then
calls :func:`after_run`; plain tasks never come here and keep the worker's batched result path.

* SUCCESS: each ``link`` callback is sent with the result as first argument (unless
  immutable); the next ``chain`` step is sent with the result prepended and the rest of the
  chain in its own message.
* FAILURE: each ``link_error`` errback is called in this process with ``(request, exc,
  traceback)`` when its task takes more than one positional argument, otherwise sent as a
  task with the failed task's id (Celery's two styles); in-process errbacks run before the
  failure is stored, so they are done when ``.get()`` raises. The remaining chain steps never run:
  their results are stored as FAILURE with the same exception, so ``.get()`` on the chain's
  result raises it at once instead of waiting forever.
* REVOKED (from the worker's executor, :func:`on_revoked`): like FAILURE, without errbacks.
* A chord header member, in any of those end states, adds one to the chord's counter with
  the backend's atomic ``incr``; the member that brings it to the chord size reads the header's
  result ids (saved when the chord was sent) and all header results in one ``get_many``, then
  sends the body with the list, or, when a member failed or was revoked, stores the body as
  FAILURE with ``ChordError("Dependency <id> raised <exc>")`` and calls the body's errbacks.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.canvas.compose import PLAIN, kind, slot_id
from celeriac.canvas.primitives import chain
from celeriac.canvas.send import Batch, send_signature
from celeriac.canvas.signature import Signature, maybe_signature
from celeriac.exceptions import ChordError, TaskRevokedError
from celeriac.result_meta import build_meta, decode_exception
from celeriac.task import Context

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.protocol import TaskMessage

logger = logging.getLogger("celeriac.workflow")

#: how long a chord counter lives when results never expire
_COUNTER_EXPIRES_S = 86400.0


def chord_key(group_id: str) -> str:
    return f"chord-unlock-{group_id}"


# -- entry points -----------------------------------------------------------------------------
def after_run(
    app: Celery,
    request: Context,
    state: str,
    retval: Any,
    payload: bytes | None,
    traceback: str | None,
) -> bytes | None:
    """Called by the tracer for a workflow task: store its result here (the continuation may
    need it stored, e.g. the chord's last member reads every header result), and continue.
    Returns the payload still to be stored by the caller: None, unless storing here failed."""

    def store() -> None:
        if payload is not None and app.result_backend_url:
            app.backend.store(request.id or "", state, payload, app.result_expires_s)

    try:
        continue_after(app, request, state, retval, traceback, store=store)
    except Exception:
        logger.exception("Task %s[%s]: cannot continue its workflow", request.task, request.id)
        try:
            store()
        except Exception:
            return payload
    return None


def on_revoked(app: Celery, message: TaskMessage, why: str) -> None:
    """A revoked or expired message that was part of a chain or chord: stop the chain, count
    the chord member (the executor stores the REVOKED record too; storing it here first lets
    the chord's last member see it)."""
    if not (message.chain or message.chord):
        return
    request = Context(
        id=message.id,
        task=message.name,
        args=message.args,
        kwargs=message.kwargs,
        group=message.group,
        group_index=message.group_index,
        root_id=message.root_id,
        parent_id=message.parent_id,
        chain=message.chain,
        chord=message.chord,
        called_directly=False,
    )
    exc = TaskRevokedError(why)

    def store() -> None:
        if app.result_backend_url:
            meta = build_meta(message.id, states.REVOKED, exc, request=request)
            app.backend.store(
                message.id, states.REVOKED, app.encode_result(meta), app.result_expires_s
            )

    try:
        continue_after(app, request, states.REVOKED, exc, None, store=store)
    except Exception:
        logger.exception("Task %s[%s]: cannot settle its workflow", message.name, message.id)


def continue_after(
    app: Celery,
    request: Context,
    state: str,
    retval: Any,
    traceback: str | None = None,
    store: Callable[[], None] | None = None,
) -> None:
    """Publish what follows ``request``'s task ending in ``state`` (see the module doc).

    ``store`` stores the task's own result. It is called after in-process errbacks (so when
    ``.get()`` raises, they have run) and before anything that may read it (chord counting).
    """
    if state not in (states.SUCCESS, states.FAILURE, states.REVOKED):
        if store is not None:
            store()
        return  # RETRY: the new message carries the workflow on; IGNORED/REJECTED: nothing
    batch = Batch(app)
    carry = {"parent_id": request.id, "root_id": request.root_id or request.id}
    if state == states.FAILURE and request.errbacks:
        call_errbacks(app, request.errbacks, request, retval, traceback, batch)
    if store is not None:
        store()
    if state == states.SUCCESS:
        for callback in request.callbacks or ():
            send_signature(callback, (retval,), carry, batch)
        if request.chain:
            remaining = list(request.chain)
            following = remaining.pop()
            rest = chain(following, *reversed(remaining), app=app)
            send_signature(rest, (retval,), carry, batch)
    elif request.chain:
        fail_signatures(app, request.chain, retval, state, traceback, batch)
    if request.chord:
        chord_part_done(app, request.group, request.chord, batch)
    batch.flush()


# -- chords -----------------------------------------------------------------------------------
def chord_part_done(app: Celery, group_id: str | None, body: Any, batch: Batch) -> None:
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
        fail_body(app, body, ChordError(f"Chord {group_id}: header result ids are gone"), batch)
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
            fail_body(app, body, ChordError(f"Dependency {task_id} raised {reason!r}"), batch)
            return
        values.append(meta["result"])
    root_id = body["options"].get("root_id")
    send_signature(body, (values,), {"root_id": root_id} if root_id else {}, batch)


def fail_body(app: Celery, body: Signature, exc: BaseException, batch: Batch) -> None:
    """The chord body will never run: store its failure and call its errbacks."""
    fail_signatures(app, [body], exc, states.FAILURE, None, batch)
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
    batch: Batch,
) -> None:
    """Store ``exc`` as the result of every task in ``sigs`` (steps that will never run), then
    count the ones that were chord members so those chords still complete."""
    ids: list[str] = []
    chords: list[tuple[str | None, Any]] = []
    for sig in sigs:
        _collect(maybe_signature(sig, app=app), ids, chords, count=True)
    if ids and app.result_backend_url:
        records = []
        for task_id in ids:
            meta = build_meta(task_id, state, exc, traceback=traceback)
            records.append((task_id, state, app.encode_result(meta)))
        app.backend.store_many(records, app.result_expires_s)
    for group_id, body in chords:
        chord_part_done(app, group_id, body, batch)


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
