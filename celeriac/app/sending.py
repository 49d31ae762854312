"""Building task messages for the app: options, routing, eta/expires, and bulk sends.

Split from :mod:`celeriac.app.base` so the publish path (the hot half of a producer) reads in
one place. ``protocol`` still owns the wire format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from celeriac import _state, routing
from celeriac._utils.ids import new_id
from celeriac.message import Envelope
from celeriac.protocol import build_task_message, clone_task_message
from celeriac.result import AsyncResult

if TYPE_CHECKING:
    from celeriac.app.base import Celery

#: options under which one call's message cannot be reused as a template for the next
_TEMPLATE_SAFE = frozenset(
    {"task_id", "link", "link_error", "chain", "chord", "group_id", "group_index", "headers",
     "parent_id", "root_id", "_task", "_keep_parent", "retries"}
)


@dataclass(frozen=True, slots=True)
class PublishSettings:
    """The settings every send reads, looked up once per configuration change."""

    always_eager: bool
    routes: Any
    default_queue: str
    default_priority: int | None
    ignore_result: bool
    serializer: str
    local_eta_tz: tzinfo


def prepare_message(
    app: Celery,
    name: str,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    countdown: float | None = None,
    eta: datetime | None = None,
    task_id: str | None = None,
    producer: Any = None,
    connection: Any = None,
    router: Any = None,
    result_cls: type[AsyncResult] | None = None,
    expires: float | datetime | timedelta | str | None = None,
    publisher: Any = None,
    link: Any = None,
    link_error: Any = None,
    add_to_parent: bool = True,
    group_id: str | None = None,
    group_index: int | None = None,
    retries: int = 0,
    chord: Any = None,
    reply_to: str | None = None,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
    root_id: str | None = None,
    parent_id: str | None = None,
    route_name: str | None = None,
    shadow: str | None = None,
    chain: Any = None,
    task_type: Any = None,
    **options: Any,
) -> tuple[str, Envelope] | AsyncResult:
    """Build the message for one task call: returns (queue, envelope), or an EagerResult
    when ``task_always_eager`` runs the task here instead."""
    task_id = task_id or new_id()
    options.pop("_result_cls", None)
    task = options.pop("_task", None)
    keep_parent = options.pop("_keep_parent", False)
    ps = app.publish_settings()
    if ps.always_eager and task is None and name in app._tasks:
        return app._tasks[name].apply(args, kwargs, task_id=task_id, **options)
    if not keep_parent:
        parent = _state.current_task()
        if parent is not None:
            request = parent.request
            if request.id:
                parent_id = parent_id or request.id
                root_id = root_id or request.root_id
    if countdown is not None:
        eta = datetime.now(UTC) + timedelta(seconds=float(countdown))
    elif eta is not None and eta.tzinfo is None:
        eta = eta.replace(tzinfo=ps.local_eta_tz)
    expires_at: datetime | str | None
    if isinstance(expires, (int, float)):
        expires_at = datetime.now(UTC) + timedelta(seconds=float(expires))
    elif isinstance(expires, timedelta):
        expires_at = datetime.now(UTC) + expires
    else:
        expires_at = expires
    queue = options.get("queue")
    if queue is None and ps.routes:
        route = routing.lookup(ps.routes, name, args or (), kwargs or {}, options)
        if route:
            queue = route.get("queue")
            if options.get("priority") is None and route.get("priority") is not None:
                options["priority"] = route["priority"]
    queue = routing.queue_name(queue) if queue else ps.default_queue
    priority = options.get("priority")
    if priority is None:
        priority = ps.default_priority
    ignore_result = options.get("ignore_result")
    if ignore_result is None:
        ignore_result = ps.ignore_result
    envelope = build_task_message(
        task_id=task_id,
        name=name,
        args=args or (),
        kwargs=kwargs,
        serializer=options.get("serializer") or ps.serializer,
        eta=eta,
        expires=expires_at,
        retries=retries,
        time_limit=time_limit,
        soft_time_limit=soft_time_limit,
        root_id=root_id,
        parent_id=parent_id,
        group_id=group_id,
        group_index=group_index,
        ignore_result=ignore_result,
        callbacks=as_list(link),
        errbacks=as_list(link_error),
        chain=chain,
        chord=chord,
        priority=priority,
        reply_to=reply_to,
        shadow=shadow,
        extra_headers=options.get("headers"),
    )
    return queue, envelope



def send_many(
    app: Celery,
    calls: Iterable[tuple[str, Sequence[Any] | None, Mapping[str, Any] | None,
                          Mapping[str, Any] | None]],
    *,
    chunk_size: int = 1000,
) -> list[AsyncResult]:
    """Send many task calls, ``(name, args, kwargs, options)`` each, in batched round trips
    (``publish_many``); returns their results in order."""
    results: list[AsyncResult] = []
    batch: list[tuple[str, Envelope]] = []
    broker = app.broker
    # Calls that share a name and the very same options object (task.delay_many) differ
    # only in id and arguments: the first one's message is the template for the rest.
    template: tuple[str, Envelope, str, Any] | None = None
    for name, args, kwargs, options in calls:
        task_id = new_id()
        if template is not None and options is template[3] and name == template[2]:
            queue, envelope = template[0], clone_task_message(
                template[1], task_id, args or (), kwargs
            )
        else:
            opts = dict(options or {})
            task_id = opts.pop("task_id", None) or task_id
            prepared = app.prepare_message(name, args, kwargs, task_id=task_id, **opts)
            if isinstance(prepared, AsyncResult):
                results.append(prepared)
                continue
            queue, envelope = prepared
            template = None
            if options is not None and _TEMPLATE_SAFE.isdisjoint(options):
                template = (queue, envelope, name, options)
        batch.append((queue, envelope))
        results.append(AsyncResult(task_id, task_name=name, app=app))
        if len(batch) >= chunk_size:
            broker.publish_many(batch)
            batch = []
    if batch:
        broker.publish_many(batch)
    return results


# -- periodic tasks ---------------------------------------------------------------------------


def as_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [dict(v) if isinstance(v, Mapping) else v for v in value] or None
    return [dict(value) if isinstance(value, Mapping) else value]
