"""``app.control``: remote control of running workers, with Celery's methods and reply shapes.

Requests and replies travel over the broker's broadcast primitive (wire rules:
:mod:`celeriac.mailbox`; the worker's side: :mod:`celeriac.worker.control`). Revokes are also
kept by the coordination store (``app.coordination``), so every worker, including one started
later or one that missed the broadcast, honours them. Purge goes through the broker.

Rules of the replies: a method that asks for replies waits ``timeout`` seconds, or less when
``limit`` replies (by default: one per named ``destination``) have arrived; ``inspect()``
methods return ``{hostname: reply}`` (None when no worker answered), ``control`` methods called
with ``reply=True`` return Celery's list of ``{hostname: reply}``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celeriac import mailbox, routing
from celeriac.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from celeriac.app.base import Celery

#: how long a revoke is remembered (Celery keeps revokes for ~3 hours in memory by default;
#: ours persist in the coordination store, so keep them for a day)
REVOKE_EXPIRES_S = 24 * 3600.0

#: ``revoke(terminate=True, signal=S)`` stores, beside the task id, the mark
#: ``<task id>/terminate/<SIGNAME>`` in the same revoked set; a worker running a revoked task
#: looks for these marks (docs/decisions/0009-revoke-terminate-and-cold-shutdown.md): the
#: fallback for a worker that missed the ``revoke`` broadcast (which terminates at once).
TERMINATE_MARK = "/terminate/"
#: the signals a terminate request may name
TERMINATE_SIGNALS = (
    "SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGABRT",
)


def signal_name(value: Any) -> str:
    """Celery accepts a signal as a number, ``"TERM"``, ``"SIGTERM"`` or ``signal.SIGTERM``;
    returns the ``SIG...`` name, or raises ValueError for one terminate does not send."""
    if value is None:
        return "SIGTERM"
    if isinstance(value, int):
        name = signal.Signals(value).name
    else:
        name = str(value).upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
    if name not in TERMINATE_SIGNALS or not hasattr(signal, name):
        raise ValueError(f"revoke(terminate=True) cannot send signal {value!r}")
    return name


def termination_requests(app: Celery, task_ids: Sequence[str]) -> dict[str, int]:
    """Which of ``task_ids`` (tasks running on a worker) were revoked with ``terminate=True``,
    and with which signal number. Two cheap lookups, the second only when one is revoked."""
    revoked = app.coordination.revoked(list(task_ids))
    if not revoked:
        return {}
    marks = {f"{tid}{TERMINATE_MARK}{name}": (tid, name)
             for tid in revoked for name in TERMINATE_SIGNALS}
    found: dict[str, int] = {}
    for mark in app.coordination.revoked(list(marks)):
        tid, name = marks[mark]
        found[tid] = int(getattr(signal, name))
    return found


ReplyCallback = Callable[[dict[str, Any]], Any]


def _names(destination: Any) -> list[str] | None:
    if destination is None:
        return None
    if isinstance(destination, str):
        return [destination]
    return [str(d) for d in destination] or None


class Inspect:
    """Celery's ``app.control.inspect()``: each method asks the workers and returns
    ``{hostname: reply}``, or None when none answered within ``timeout``. With a single
    ``destination`` string, only that worker's reply is returned (Celery's rule)."""

    def __init__(
        self,
        destination: Any = None,
        timeout: float = 1.0,
        callback: ReplyCallback | None = None,
        connection: Any = None,
        app: Celery | None = None,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: Any = None,
    ) -> None:
        if app is None:
            raise TypeError("Inspect needs app= (use app.control.inspect())")
        self.app = app
        self.destination = destination
        self.timeout = timeout
        self.callback = callback
        self.limit = limit
        self.pattern = pattern

    def _request(self, command: str, **arguments: Any) -> Any:
        replies = self.app.control.broadcast(
            command,
            arguments=arguments,
            destination=self.destination,
            reply=True,
            timeout=self.timeout,
            limit=self.limit,
            callback=self.callback,
            pattern=self.pattern,
        ) or []
        by_node: dict[str, Any] = {}
        for item in replies:
            by_node.update(item)
        if not by_node:
            return None
        if isinstance(self.destination, str):
            return by_node.get(self.destination)
        return by_node

    def ping(self, destination: Any = None) -> Any:
        return self._request("ping")

    def report(self) -> Any:
        return self._request("report")

    def clock(self) -> Any:
        return self._request("clock")

    def active(self, safe: Any = None) -> Any:
        return self._request("active", safe=safe)

    def reserved(self, safe: Any = None) -> Any:
        return self._request("reserved", safe=safe)

    def scheduled(self, safe: Any = None) -> Any:
        return self._request("scheduled", safe=safe)

    def revoked(self) -> Any:
        return self._request("revoked")

    def registered(self, *taskinfoitems: str) -> Any:
        return self._request("registered", taskinfoitems=list(taskinfoitems))

    registered_tasks = registered

    def stats(self) -> Any:
        return self._request("stats")

    def active_queues(self) -> Any:
        return self._request("active_queues")

    def query_task(self, *ids: Any) -> Any:
        # Celery accepts query_task(id1, id2) and query_task([id1, id2])
        if len(ids) == 1 and not isinstance(ids[0], str):
            ids = tuple(ids[0])
        return self._request("query_task", ids=[str(i) for i in ids])

    def conf(self, with_defaults: bool = False) -> Any:
        return self._request("conf", with_defaults=with_defaults)

    def hello(self, from_node: str, revoked: Any = None) -> Any:
        return self._request("hello", from_node=from_node, revoked=revoked)


class Control:
    """Celery's ``app.control``."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def inspect(
        self,
        destination: Any = None,
        timeout: float = 1.0,
        callback: ReplyCallback | None = None,
        connection: Any = None,
        limit: int | None = None,
        pattern: str | None = None,
        matcher: Any = None,
        **kwargs: Any,
    ) -> Inspect:
        return Inspect(destination, timeout, callback, connection, self.app, limit, pattern,
                       matcher)

    # -- the request/reply primitive ----------------------------------------------------------
    def broadcast(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        destination: Any = None,
        connection: Any = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        callback: ReplyCallback | None = None,
        channel: Any = None,
        pattern: str | None = None,
        matcher: Any = None,
        **extra_kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Send ``command`` to the workers; with ``reply``, collect their answers for up to
        ``timeout`` seconds (fewer when ``limit`` answered; by default one per destination)."""
        broker = self.app.broker
        if not broker.capabilities.broadcast:
            raise ImproperlyConfigured(
                f"remote control needs a broker with broadcast; {broker.url.split(':', 1)[0]}"
                ":// has none"
            )
        names = _names(destination)
        args = dict(arguments or {})
        args.update(extra_kwargs)
        request = mailbox.new_request(command, args, destination=names, pattern=pattern,
                                      reply=reply)
        payload = mailbox.encode_request(request)
        if not reply:
            broker.broadcast(mailbox.CONTROL_CHANNEL, payload)
            return None
        assert request.reply_to is not None
        if limit is None and names:
            limit = len(names)
        replies: list[dict[str, Any]] = []
        with broker.subscribe(request.reply_to) as subscription:
            broker.broadcast(mailbox.CONTROL_CHANNEL, payload)
            deadline = time.monotonic() + max(float(timeout), 0.0)
            while True:
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    break
                for raw in subscription.get(remaining_s):
                    answer = mailbox.decode_reply(raw)
                    if answer is None or answer.ticket != request.ticket:
                        continue
                    item = {answer.hostname: answer.reply}
                    replies.append(item)
                    if callback is not None:
                        callback(item)
                if limit and len(replies) >= limit:
                    break
        return replies

    def _control(
        self, command: str, destination: Any, kwargs: dict[str, Any], **arguments: Any
    ) -> list[dict[str, Any]] | None:
        """A control command: fire and forget unless ``reply=True`` is among ``kwargs``."""
        reply = bool(kwargs.pop("reply", False))
        timeout = float(kwargs.pop("timeout", 1.0))
        limit = kwargs.pop("limit", None)
        callback = kwargs.pop("callback", None)
        pattern = kwargs.pop("pattern", None)
        kwargs.pop("connection", None)
        kwargs.pop("matcher", None)
        arguments.update(kwargs)
        return self.broadcast(command, arguments, destination, reply=reply, timeout=timeout,
                              limit=limit, callback=callback, pattern=pattern)

    # -- revokes --------------------------------------------------------------------------------
    def revoke(
        self,
        task_id: str | Sequence[str],
        destination: Any = None,
        terminate: bool = False,
        signal: Any = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Revoke tasks everywhere: kept by the coordination store (workers started later
        honour it too), and broadcast so running workers act at once (``terminate`` stops
        a running task with ``signal``). A saved group's id revokes its members too."""
        ids = [task_id] if isinstance(task_id, str) else [str(t) for t in task_id]
        ids += self._group_members(ids)
        name = signal_name(signal) if terminate else None
        stored = list(ids)
        if name is not None:
            stored += [f"{tid}{TERMINATE_MARK}{name}" for tid in ids]
        self.app.coordination.revoke(stored, REVOKE_EXPIRES_S)
        if not self.app.broker.capabilities.broadcast:
            return None  # the workers' revoke checks find the stored revokes
        return self._control("revoke", destination, kwargs, task_id=ids,
                             terminate=bool(terminate), signal=name)

    def _group_members(self, ids: Sequence[str]) -> list[str]:
        """The member ids of the saved groups among ``ids`` (none without a result backend)."""
        if not self.app.result_backend_url:
            return []
        members: list[str] = []
        for task_id in ids:
            try:
                group = self.app.restore_group(task_id)
            except Exception:  # a missing, unreadable or foreign record: not a group
                continue
            if group is not None:
                members.extend(r.id for r in group.results)
        return members

    def terminate(self, task_id: str | Sequence[str], destination: Any = None,
                  signal: Any = "SIGTERM", **kwargs: Any) -> list[dict[str, Any]] | None:
        return self.revoke(task_id, destination, terminate=True, signal=signal, **kwargs)

    def is_revoked(self, task_id: str) -> bool:
        return bool(self.app.coordination.revoked([task_id]))

    # -- commands ---------------------------------------------------------------------------------
    def ping(self, destination: Any = None, timeout: float = 1.0, **kwargs: Any
             ) -> list[dict[str, Any]]:
        return self.broadcast("ping", destination=destination, reply=True, timeout=timeout,
                              **kwargs) or []

    def rate_limit(self, task_name: str, rate_limit: Any, destination: Any = None,
                   **kwargs: Any) -> list[dict[str, Any]] | None:
        return self._control("rate_limit", destination, kwargs, task_name=task_name,
                             rate_limit=rate_limit)

    def time_limit(self, task_name: str, soft: float | None = None, hard: float | None = None,
                   destination: Any = None, **kwargs: Any) -> list[dict[str, Any]] | None:
        return self._control("time_limit", destination, kwargs, task_name=task_name,
                             soft=soft, hard=hard)

    def add_consumer(self, queue: str, exchange: str | None = None,
                     exchange_type: str = "direct", routing_key: str | None = None,
                     options: dict[str, Any] | None = None, destination: Any = None,
                     **kwargs: Any) -> list[dict[str, Any]] | None:
        return self._control("add_consumer", destination, kwargs, queue=queue,
                             exchange=exchange, exchange_type=exchange_type,
                             routing_key=routing_key, **(options or {}))

    def cancel_consumer(self, queue: str, destination: Any = None, **kwargs: Any
                        ) -> list[dict[str, Any]] | None:
        return self._control("cancel_consumer", destination, kwargs, queue=queue)

    def enable_events(self, destination: Any = None, **kwargs: Any
                      ) -> list[dict[str, Any]] | None:
        return self._control("enable_events", destination, kwargs)

    def disable_events(self, destination: Any = None, **kwargs: Any
                       ) -> list[dict[str, Any]] | None:
        return self._control("disable_events", destination, kwargs)

    def pool_grow(self, n: int = 1, destination: Any = None, **kwargs: Any
                  ) -> list[dict[str, Any]] | None:
        return self._control("pool_grow", destination, kwargs, n=n)

    def pool_shrink(self, n: int = 1, destination: Any = None, **kwargs: Any
                    ) -> list[dict[str, Any]] | None:
        return self._control("pool_shrink", destination, kwargs, n=n)

    def autoscale(self, max: int, min: int, destination: Any = None, **kwargs: Any
                  ) -> list[dict[str, Any]] | None:
        return self._control("autoscale", destination, kwargs, max=max, min=min)

    def shutdown(self, destination: Any = None, **kwargs: Any) -> list[dict[str, Any]] | None:
        return self._control("shutdown", destination, kwargs)

    def heartbeat(self, destination: Any = None, **kwargs: Any) -> list[dict[str, Any]] | None:
        return self._control("heartbeat", destination, kwargs)

    def election(self, id: str, topic: str, action: Any = None, connection: Any = None
                 ) -> list[dict[str, Any]] | None:
        return self._control("election", None, {}, id=id, topic=topic, action=action)

    # -- queues ---------------------------------------------------------------------------------
    def known_queues(self) -> list[str]:
        conf = self.app.conf
        names = {conf.task_default_queue}
        for queue in conf.task_queues or ():
            names.add(routing.queue_name(queue))
        routes = conf.task_routes
        for item in routes if isinstance(routes, (list, tuple)) else [routes]:
            if isinstance(item, dict):
                for route in item.values():
                    if isinstance(route, dict) and route.get("queue"):
                        names.add(routing.queue_name(route["queue"]))
                    elif isinstance(route, str):
                        names.add(route)
        return sorted(names)

    def purge(self, queues: Sequence[str] | None = None) -> int:
        """Delete every waiting message on the app's queues; returns how many."""
        return self.app.broker.purge(list(queues) if queues else self.known_queues())

    discard_all = purge

    def wait_for_workers(self, count: int = 1, timeout_s: float = 10.0) -> int:
        """Wait until ``count`` workers answer a ping (at most ``timeout_s``); how many did."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while True:
            remaining_s = deadline - time.monotonic()
            seen = len(self.ping(timeout=min(0.25, max(remaining_s, 0.05)), limit=count))
            if seen >= count or remaining_s <= 0:
                return seen
