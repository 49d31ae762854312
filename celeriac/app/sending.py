"""Building task messages for the app: options, routing, eta/expires, and bulk sends.

Split from :mod:`celeriac.app.base` so the publish path (the hot half of a producer) reads in
one place. ``protocol`` still owns the wire format.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from celeriac import _state, routing
from celeriac._utils.ids import new_id, new_ids
from celeriac._utils.stored import StoredParts
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured
from celeriac.message import Envelope
from celeriac.protocol import StoredTemplate, build_task_message, clone_task_message
from celeriac.result import AsyncResult
from celeriac.send_options import DEFAULT_SEND, SendOptions

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.brokers.base import Broker

#: options under which one call's message cannot be reused as a template for the next
_TEMPLATE_SAFE = frozenset(
    {"task_id", "link", "link_error", "chain", "chord", "group_id", "group_index", "headers",
     "parent_id", "root_id", "retries"}
)


logger = logging.getLogger("celeriac.app")

#: why a chord cannot be sent when results go back to the caller only (rpc://)
NO_CHORDS = (
    "Chords need a result backend that can count their members, and rpc:// sends results "
    "to the caller only: use redis://, db+postgresql://, sqlite://... as result_backend"
)

#: what ``task_publish_retry_policy`` falls back to, key by key (see decision 0008)
DEFAULT_RETRY_POLICY: Mapping[str, float | None] = {
    "max_retries": None,
    "interval_start": 0.0,
    "interval_step": 0.2,
    "interval_max": 1.0,
    "timeout": 10.0,
}
# Celery's keys plus ours (timeout); retry_errors is Celery's and has no use here: a publish
# raises only celeriac's own errors, and only a broken connection is worth retrying.
_POLICY_KEYS = frozenset({*DEFAULT_RETRY_POLICY, "retry_errors"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a publish that raised :class:`BrokerConnectionError` is tried again.

    Rules: the first retry waits ``interval_start_s``, each next one ``interval_step_s``
    longer, never more than ``interval_max_s``; retries stop after ``max_retries`` (None: no
    count limit) or once ``timeout_s`` has passed since the first failure, whichever comes
    first, and the last error is raised. Only a call that raised is tried again.
    """

    max_retries: int | None
    interval_start_s: float
    interval_step_s: float
    interval_max_s: float
    timeout_s: float

    @classmethod
    def from_mapping(cls, policy: Mapping[str, Any] | None) -> RetryPolicy:
        """A policy from a ``task_publish_retry_policy``-shaped mapping; missing keys take
        :data:`DEFAULT_RETRY_POLICY`'s values."""
        unknown = set(policy or ()) - _POLICY_KEYS
        if unknown:
            raise ImproperlyConfigured(
                f"task_publish_retry_policy: unknown key(s) {sorted(unknown)} "
                f"(known: {sorted(_POLICY_KEYS)})"
            )
        merged = {**DEFAULT_RETRY_POLICY, **(policy or {})}
        try:
            count = merged["max_retries"]
            return cls(
                max_retries=None if count is None else max(0, int(count)),
                interval_start_s=max(0.0, float(merged["interval_start"] or 0)),
                interval_step_s=max(0.0, float(merged["interval_step"] or 0)),
                interval_max_s=max(0.0, float(merged["interval_max"] or 0)),
                timeout_s=max(0.0, float(merged["timeout"] or 0)),
            )
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"task_publish_retry_policy: {exc}") from exc


@dataclass(frozen=True, slots=True)
class PublishSettings:
    """The settings every send reads, looked up once per configuration change."""

    always_eager: bool
    routes: Any
    default_queue: str
    default_priority: int | None
    ignore_result: bool
    serializer: str
    #: ``task_compression``: kombu's name, or None
    compression: str | None
    local_eta_tz: tzinfo
    #: None when ``task_publish_retry`` is off
    retry: RetryPolicy | None
    #: the result backend replies to the caller (rpc://): messages carry its ``reply_to``
    reply_to_caller: bool = False


def publish_again(
    app: Celery,
    error: BrokerConnectionError,
    attempt: Callable[[], None],
    options: Mapping[str, Any] | None = None,
) -> None:
    """Retry a publish that raised ``error`` (the broker connection broke) by calling
    ``attempt`` again with backoff, as the app's retry policy and the call's ``retry`` /
    ``retry_policy`` options say; returns once an attempt succeeded, else raises the last
    error.

    Called only from the ``except`` of a failed publish, so a publish that succeeds pays
    nothing for it. A call that raised may still have been stored (the connection broke after
    the broker had the message), so a retried publish is at-least-once, like Celery's.
    """
    policy = app.publish_settings().retry
    if options and ("retry" in options or "retry_policy" in options):
        # The call's choices over the app's (read here, on the error path only).
        if options.get("retry", policy is not None):
            app_policy = app.conf.task_publish_retry_policy or {}
            policy = RetryPolicy.from_mapping(
                {**app_policy, **(options.get("retry_policy") or {})}
            )
        else:
            policy = None
    if policy is None:
        raise error
    deadline_s = time.monotonic() + policy.timeout_s
    interval_s = policy.interval_start_s
    retries = 0
    logger.warning(
        "Publishing failed (%s); retrying for up to %gs", error, policy.timeout_s
    )
    while True:
        remaining_s = deadline_s - time.monotonic()
        if remaining_s <= 0 or (policy.max_retries is not None and retries >= policy.max_retries):
            raise error
        time.sleep(min(interval_s, remaining_s))
        interval_s = min(interval_s + policy.interval_step_s, policy.interval_max_s)
        retries += 1
        try:
            attempt()
        except BrokerConnectionError as exc:
            error = exc
        else:
            logger.info("Published after %d retr%s", retries, "y" if retries == 1 else "ies")
            return


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
    send_options: SendOptions = DEFAULT_SEND,
    **options: Any,
) -> tuple[str, Envelope] | AsyncResult:
    """Build the message for one task call: returns (queue, envelope), or an EagerResult
    when ``task_always_eager`` runs the task here instead."""
    task_id = task_id or new_id()
    ps = app.publish_settings()
    if ps.always_eager and send_options.allow_eager and name in app._tasks:
        return app._tasks[name].apply(args, kwargs, task_id=task_id, **options)
    if not send_options.keep_parent:
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
    if ps.reply_to_caller:
        if chord or _holds_chord(chain) or _holds_chord(link) or _holds_chord(link_error):
            raise ImproperlyConfigured(NO_CHORDS)
        if reply_to is None:
            reply_to = caller_reply_to(app)
        if reply_to and (chain or link or link_error):
            # What the worker sends next (a chain's steps, callbacks) answers this caller too.
            chain, link, link_error = (_answering(reply_to, sigs)
                                       for sigs in (chain, link, link_error))
    envelope = build_task_message(
        task_id=task_id,
        name=name,
        args=args or (),
        kwargs=kwargs,
        serializer=options.get("serializer") or ps.serializer,
        compression=options.get("compression") or ps.compression,
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


def caller_reply_to(app: Celery) -> str | None:
    """Where results of a task sent now go (rpc://): from inside a task, to whoever sent that
    task (a chain's or a subtask's result reaches the original caller); else to this
    process's own reply queue."""
    parent = _state.current_task()
    if parent is not None and parent.request.reply_to:
        return parent.request.reply_to
    return app.backend.reply_queue()


def _holds_chord(value: Any, depth: int = 0) -> bool:
    """Whether signatures ``value`` (a chain's steps, callbacks) hold a chord anywhere."""
    if depth > 20:
        return False
    if isinstance(value, Mapping):
        if value.get("subtask_type") == "chord":
            return True
        return any(_holds_chord(v, depth + 1) for v in value.values()
                   if isinstance(v, (Mapping, list, tuple)))
    if isinstance(value, (list, tuple)):
        return any(_holds_chord(v, depth + 1) for v in value)
    return False


def _answering(reply_to: str, signatures: Any) -> Any:
    """``signatures`` (a list, or one) with ``reply_to`` in each one's options unless set."""
    if not signatures:
        return signatures
    stamped = []
    for sig in signatures if isinstance(signatures, (list, tuple)) else [signatures]:
        if isinstance(sig, Mapping):
            options = sig.get("options") or {}
            if "reply_to" not in options:
                sig = {**sig, "options": {**options, "reply_to": reply_to}}
        stamped.append(sig)
    return stamped


def send_many(
    app: Celery,
    calls: Iterable[tuple[str, Sequence[Any] | None, Mapping[str, Any] | None,
                          Mapping[str, Any] | None]],
    *,
    chunk_size: int = 1000,
) -> list[AsyncResult]:
    """Send many task calls, ``(name, args, kwargs, options)`` each, in batched round trips
    (``publish_many``); returns their results in order.

    Calls that share a name and the very same options object (``task.delay_many``) differ
    only in id and arguments: the first one's message is the template for the rest. When the
    broker takes stored parts (``Capabilities.stored_publish``) and no middleware hook wants
    to see each message, the rest are encoded straight to those parts
    (``protocol.StoredTemplate``, no headers dict per message); else they are envelopes
    cloned from the template. Messages are stored in call order either way.
    """
    out = _Outgoing(app, chunk_size)
    ids = _ids()
    template: _Template | None = None
    for name, args, kwargs, options in calls:
        task_id = next(ids)
        if template is not None and options is template.options and name == template.name:
            if template.stored is not None:
                out.add_stored(template, task_id, template.stored.parts(task_id, args or (),
                                                                        kwargs))
            else:
                out.add(template.queue, clone_task_message(template.envelope, task_id,
                                                           args or (), kwargs))
            out.results.append(AsyncResult(task_id, task_name=name, app=app))
            continue
        opts = dict(options or {})
        task_id = opts.pop("task_id", None) or task_id
        prepared = app.prepare_message(name, args, kwargs, task_id=task_id, **opts)
        if isinstance(prepared, AsyncResult):
            out.results.append(prepared)
            continue
        queue, envelope = prepared
        template = None
        if options is not None and _TEMPLATE_SAFE.isdisjoint(options) \
                and "compression" not in envelope.headers:  # each body compressed anew
            template = _Template(name, options, queue, envelope, out.lean)
        out.add(queue, envelope)
        out.results.append(AsyncResult(task_id, task_name=name, app=app))
    out.flush()
    return out.results


def _ids() -> Iterator[str]:
    """Fresh task ids, made 1,024 at a time."""
    while True:
        yield from new_ids(1024)


class _Template:
    """The first call of a run of calls with one name and options object, and how the rest
    are encoded."""

    __slots__ = ("envelope", "name", "options", "queue", "stored")

    def __init__(self, name: str, options: Mapping[str, Any], queue: str, envelope: Envelope,
                 lean: bool) -> None:
        self.name, self.options, self.queue, self.envelope = name, options, queue, envelope
        self.stored = StoredTemplate.of(envelope) if lean else None


class _Outgoing:
    """What :func:`send_many` has yet to publish: envelopes, or one template's stored parts
    (never both: adding one kind publishes the other first, to keep call order)."""

    __slots__ = ("app", "broker", "chunk_size", "envelopes", "lean", "results", "stored",
                 "stored_ids", "stored_of", "unconfirmed")

    def __init__(self, app: Celery, chunk_size: int) -> None:
        self.app, self.broker, self.chunk_size = app, app.broker, chunk_size
        middleware = app.middleware
        #: stored parts may be sent: the broker takes them, and no hook wants envelopes
        self.lean = (self.broker.capabilities.stored_publish
                     and not middleware.before_publish and not middleware.after_publish)
        self.results: list[AsyncResult] = []
        self.envelopes: list[tuple[str, Envelope]] = []
        self.stored: list[StoredParts] = []
        self.stored_ids: list[str] = []
        self.stored_of: _Template | None = None
        #: stored parts were sent without waiting: flush() confirms them
        self.unconfirmed = False

    def add(self, queue: str, envelope: Envelope) -> None:
        if self.stored:
            self._flush_stored()
        self.envelopes.append((queue, envelope))
        if len(self.envelopes) >= self.chunk_size:
            _publish_batch(self.app, self.broker, self.envelopes)
            self.envelopes = []

    def add_stored(self, template: _Template, task_id: str, parts: StoredParts) -> None:
        if self.envelopes:
            _publish_batch(self.app, self.broker, self.envelopes)
            self.envelopes = []
        if template is not self.stored_of and self.stored:
            self._flush_stored()
        self.stored_of = template
        self.stored_ids.append(task_id)
        self.stored.append(parts)
        if len(self.stored) >= self.chunk_size:
            self._flush_stored()

    def flush(self) -> None:
        """Publish what is left; return once the broker has every message."""
        if self.stored:
            self._flush_stored()
        if self.envelopes:
            _publish_batch(self.app, self.broker, self.envelopes)
            self.envelopes = []
        if self.unconfirmed:
            broker = self.broker
            try:
                broker.confirm_published()
            except BrokerConnectionError as exc:
                publish_again(self.app, exc, broker.confirm_published)
            self.unconfirmed = False

    def _flush_stored(self) -> None:
        template = self.stored_of
        assert template is not None and template.stored is not None
        queue, priority = template.queue, template.stored.priority
        ids, entries = self.stored_ids, self.stored
        self.stored_ids, self.stored = [], []
        broker = self.broker
        # Not waited for: the broker stores this batch while the next is encoded; flush()
        # confirms them all. A retry after a broken connection waits, and may store a batch
        # twice (at least once, as every publish retry), never lose it.
        self.unconfirmed = True
        try:
            broker.publish_stored(queue, priority, ids, entries, wait=False)
        except BrokerConnectionError as exc:
            publish_again(self.app, exc,
                          lambda: broker.publish_stored(queue, priority, ids, entries))


def _publish_batch(app: Celery, broker: Broker, batch: list[tuple[str, Envelope]]) -> None:
    """One ``publish_many`` round trip, retried as a whole on a broken connection (batches sent
    before it are not sent again), between the middleware's publish hooks."""
    middleware = app.middleware
    for hook in middleware.before_publish:
        for queue, envelope in batch:
            hook(app, queue, envelope)
    try:
        broker.publish_many(batch)
    except BrokerConnectionError as exc:
        publish_again(app, exc, lambda: broker.publish_many(batch))
    for hook in middleware.after_publish:
        for queue, envelope in batch:
            hook(app, queue, envelope)


# -- periodic tasks ---------------------------------------------------------------------------


def as_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [dict(v) if isinstance(v, Mapping) else v for v in value] or None
    return [dict(value) if isinstance(value, Mapping) else value]
