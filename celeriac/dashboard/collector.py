"""The dashboard's collector: a daemon thread reading the app's events into the task history and
keeping the workers' live state.

Rules:

- task events are written to the history in batches: every :attr:`Collector.FLUSH_S`, or
  sooner once :attr:`Collector.MAX_BATCH` are waiting; when the store fails (a database
  locked, Redis gone) the batch is kept and written with the next one, at most
  :attr:`Collector.MAX_PENDING` events (the oldest go first);
- a worker is online as in Flower: from its ``worker-online``/``worker-heartbeat`` (or a task
  event from it) until ``freq * 2`` seconds pass without one, or its ``worker-offline``;
- every event received goes to each :meth:`Collector.subscribe` queue as it arrives (for
  Server-Sent Events); a subscriber more than :attr:`Collector.MAX_BACKLOG` events behind misses
  the next ones until it catches up;
- the broker going away never ends the thread: the receiver is opened again with a backoff,
  and when no event arrived for :attr:`Collector.RESUBSCRIBE_S` (workers send a heartbeat
  every 2 s) a fresh subscription replaces the old one, which covers a pub/sub connection a
  broker restart dropped silently; the new one is open before the old one closes;
- the history's bounds are applied every :attr:`Collector.PRUNE_EVERY_S`.

The collector only reads the broadcast channel through ``app.events`` (a public interface).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Any

from celeriac.dashboard.history import HistoryStore
from celeriac.events import EventReceiver

__all__ = ["Collector"]

logger = logging.getLogger("celeriac.dashboard")


class Collector:
    """Captures ``app``'s events into ``history`` (see the module rules)."""

    FLUSH_S = 0.5
    MAX_BATCH = 1000
    MAX_PENDING = 100_000
    MAX_BACKLOG = 10_000
    RESUBSCRIBE_S = 10.0
    PRUNE_EVERY_S = 60.0
    #: longest wait between two attempts at opening the receiver
    BACKOFF_MAX_S = 5.0
    #: workers remembered (the least recently heard of go first)
    MAX_WORKERS = 5000

    def __init__(self, app: Any, history: HistoryStore) -> None:
        self.app = app
        self.history = history
        self.state = app.events.State(max_tasks_in_memory=1000,
                                      max_workers_in_memory=self.MAX_WORKERS)
        #: hostname -> ``timestamp`` of its last worker event
        self._worker_ts: dict[str, float] = {}
        self._pending: deque[dict[str, Any]] = deque()
        self._pending_lock = threading.Lock()
        self._subscribers: list[queue.SimpleQueue[dict[str, Any]]] = []
        self._subscribers_lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._receiver: EventReceiver | None = None
        #: events received since start (all types)
        self.event_count = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, wait_s: float = 5.0) -> None:
        """Start the thread; returns once it listens (events sent from then on are captured) or
        after ``wait_s`` when the broker cannot be reached yet (it keeps trying)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="celeriac-dashboard-collector",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(wait_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread after it wrote what it holds to the history."""
        self._stop.set()
        receiver = self._receiver
        if receiver is not None:
            receiver.should_stop = True
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread ------------------------------------------------------------------------------
    def _open(self) -> EventReceiver:
        receiver: EventReceiver = self.app.events.Receiver(self.app.connection(),
                                                           handlers={"*": self._on_event})
        receiver.open()
        return receiver

    def _run(self) -> None:
        backoff_s = 0.1
        receiver: EventReceiver | None = None
        next_prune = time.monotonic() + self.PRUNE_EVERY_S
        try:
            while not self._stop.is_set():
                try:
                    fresh = self._open()
                except Exception as exc:
                    logger.warning("dashboard: cannot listen for events: %s", exc)
                    self._stop.wait(backoff_s)
                    backoff_s = min(backoff_s * 2, self.BACKOFF_MAX_S)
                    continue
                backoff_s = 0.1
                if receiver is not None:
                    _close(receiver)
                receiver = self._receiver = fresh
                self._ready.set()
                next_prune = self._capture(receiver, next_prune)
        finally:
            if receiver is not None:
                _close(receiver)
            self._flush()

    def _capture(self, receiver: EventReceiver, next_prune: float) -> float:
        """Read events until stopped or silent for RESUBSCRIBE_S; returns the next prune time."""
        last_event = time.monotonic()
        next_flush = last_event + self.FLUSH_S
        while not self._stop.is_set():
            try:
                for _ in receiver.itercapture(timeout=self.FLUSH_S):
                    last_event = time.monotonic()
                    if last_event >= next_flush or len(self._pending) >= self.MAX_BATCH:
                        break
            except TimeoutError:
                pass
            except Exception as exc:  # the receiver broke: open another
                logger.warning("dashboard: receiving events failed: %s", exc)
                return next_prune
            now = time.monotonic()
            if now >= next_flush or len(self._pending) >= self.MAX_BATCH:
                self._flush()
                next_flush = time.monotonic() + self.FLUSH_S
            if now >= next_prune:
                self._prune()
                next_prune = now + self.PRUNE_EVERY_S
            if now - last_event >= self.RESUBSCRIBE_S:
                return next_prune
        return next_prune

    def _on_event(self, event: dict[str, Any]) -> None:
        try:
            self.event_count += 1
            type_ = event.get("type")
            if isinstance(type_, str) and type_.startswith("task-"):
                with self._pending_lock:
                    self._pending.append(event)
            elif isinstance(type_, str) and type_.startswith("worker-"):
                hostname, ts = event.get("hostname"), event.get("timestamp")
                if isinstance(hostname, str) and isinstance(ts, int | float):
                    self._worker_ts[hostname] = float(ts)
                    if len(self._worker_ts) > self.MAX_WORKERS:
                        self._worker_ts.pop(next(iter(self._worker_ts)))
            self.state.event(event)
            self._publish(event)
        except Exception:  # one odd event must not stop the capture
            logger.exception("dashboard: an event could not be handled: %.200r", event)

    def _flush(self) -> None:
        with self._pending_lock:
            batch = list(self._pending)
        if not batch:
            return
        try:
            self.history.record(batch)
        except Exception as exc:
            logger.warning("dashboard: writing %d events to %r failed (kept for the next "
                           "write): %s", len(batch), self.history, exc)
            with self._pending_lock:
                while len(self._pending) > self.MAX_PENDING:
                    self._pending.popleft()
            return
        with self._pending_lock:
            for _ in range(len(batch)):
                self._pending.popleft()

    def _prune(self) -> None:
        try:
            self.history.prune()
        except Exception as exc:
            logger.warning("dashboard: pruning %r failed: %s", self.history, exc)

    # -- live readers ----------------------------------------------------------------------------
    def workers(self) -> dict[str, dict[str, Any]]:
        """hostname -> the worker as Flower's ``/api/workers`` describes it from events."""
        out: dict[str, dict[str, Any]] = {}
        state = self.state
        # A copy under the state's lock: the capture thread adds workers meanwhile.
        workers = state.freeze_while(lambda: list(state.workers.items()))
        for hostname, worker in workers:
            last_beat = worker.heartbeats[-1] if worker.heartbeats else None
            out[hostname] = {
                "hostname": hostname,
                "status": worker.alive,
                "active": worker.active,
                "processed": worker.processed,
                "loadavg": worker.loadavg,
                "freq": worker.freq,
                "sw_ident": worker.sw_ident,
                "sw_ver": worker.sw_ver,
                "sw_sys": worker.sw_sys,
                "timestamp": self._worker_ts.get(hostname, last_beat),
                "pid": worker.pid,
            }
        return out

    def subscribe(self) -> queue.SimpleQueue[dict[str, Any]]:
        """A queue that gets every event received from now on (see the module rules)."""
        found: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with self._subscribers_lock:
            self._subscribers = [*self._subscribers, found]
        return found

    def unsubscribe(self, q: queue.SimpleQueue[dict[str, Any]]) -> None:
        with self._subscribers_lock:
            self._subscribers = [s for s in self._subscribers if s is not q]

    def _publish(self, event: dict[str, Any]) -> None:
        for subscriber in self._subscribers:
            if subscriber.qsize() < self.MAX_BACKLOG:
                subscriber.put(event)

    def __repr__(self) -> str:
        return f"<Collector {self.app!r} -> {self.history!r}>"


def _close(receiver: EventReceiver) -> None:
    try:
        receiver.close()
    except Exception as exc:
        logger.debug("dashboard: closing a receiver failed: %s", exc)
