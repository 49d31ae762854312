"""``app.control``: revoke and inspect through the coordination store, purge through the broker.

Revokes are kept by the coordination store (``app.coordination``), so every worker (and one
started later) honours them. ``inspect`` reads the presence records workers announce there; a
later broadcast mailbox (the broker's ``broadcast``) can answer the same calls without
changing this interface.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import routing

if TYPE_CHECKING:
    from celeriac.app.base import Celery

#: how long a revoke is remembered (Celery keeps revokes for ~3 hours in memory by default;
#: ours persist in the coordination store, so keep them for a day)
REVOKE_EXPIRES_S = 24 * 3600.0

#: ``revoke(terminate=True, signal=S)`` stores, beside the task id, the mark
#: ``<task id>/terminate/<SIGNAME>`` in the same revoked set; a worker running a revoked task
#: looks for these marks (docs/decisions/0009-revoke-terminate-and-cold-shutdown.md). The
#: remote-control mailbox (issue 11) will carry the request instead; this interface stays.
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


class Inspect:
    """Answers from running workers, keyed by worker hostname."""

    def __init__(
        self, app: Celery, destination: Sequence[str] | None = None, timeout: float = 1.0
    ) -> None:
        self.app = app
        self.destination = set(destination) if destination else None
        self.timeout = timeout

    def _records(self) -> dict[str, dict[str, Any]]:
        found = {}
        for record in self.app.coordination.workers():
            if self.destination is None or record.hostname in self.destination:
                found[record.hostname] = dict(record.info)
        return found

    def ping(self) -> dict[str, dict[str, str]] | None:
        return {host: {"ok": "pong"} for host in self._records()} or None

    def registered(self, *taskinfoitems: str) -> dict[str, list[str]] | None:
        return {
            host: list(info.get("registered", [])) for host, info in self._records().items()
        } or None

    registered_tasks = registered

    def active(self) -> dict[str, list[Any]] | None:
        return {
            host: list(info.get("active", [])) for host, info in self._records().items()
        } or None

    def active_queues(self) -> dict[str, list[Any]] | None:
        return {
            host: [{"name": q} for q in info.get("queues", [])]
            for host, info in self._records().items()
        } or None

    def stats(self) -> dict[str, Any] | None:
        return {host: info.get("stats", {}) for host, info in self._records().items()} or None

    def report(self) -> dict[str, Any] | None:
        return self._records() or None


class Control:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def inspect(
        self, destination: Sequence[str] | None = None, timeout: float = 1.0, **kwargs: Any
    ) -> Inspect:
        return Inspect(self.app, destination, timeout)

    def revoke(
        self,
        task_id: str | Sequence[str],
        destination: Any = None,
        terminate: bool = False,
        signal: Any = None,
        **kwargs: Any,
    ) -> None:
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        if terminate:
            name = signal_name(signal)
            ids += [f"{tid}{TERMINATE_MARK}{name}" for tid in ids]
        self.app.coordination.revoke(ids, REVOKE_EXPIRES_S)

    def is_revoked(self, task_id: str) -> bool:
        return bool(self.app.coordination.revoked([task_id]))

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

    def ping(
        self, destination: Sequence[str] | None = None, timeout: float = 1.0, **kwargs: Any
    ) -> list[dict[str, Any]]:
        answers = Inspect(self.app, destination, timeout).ping() or {}
        return [{host: reply} for host, reply in answers.items()]

    def wait_for_workers(self, count: int = 1, timeout_s: float = 10.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = len(self.app.coordination.workers())
            if seen >= count:
                return seen
            time.sleep(0.05)
        return len(self.app.coordination.workers())
