"""The worker's events: ``worker-online`` / ``worker-heartbeat`` / ``worker-offline``, and the
dispatcher its task events go through.

Rules:

- with events off a worker sends nothing (Celery sends worker events even without ``-E``;
  celeriac sends none, so ``-E`` is the one switch);
- :meth:`WorkerEvents.start` (after the pool started): ``worker-online`` when events are on,
  then a daemon thread that sends ``worker-heartbeat`` every :attr:`WorkerEvents.freq_s`
  (2 s, Celery's) and broadcasts the buffered events at least every
  :attr:`WorkerEvents.FLUSH_EVERY_S`, so a lone event waits at most that long (the main loop
  broadcasts a batch once it is due: :class:`~celeriac.middleware.events.EventsMiddleware`);
- :meth:`~WorkerEvents.enable` / :meth:`~WorkerEvents.disable` switch events at run time
  (``enable_events`` / ``disable_events``): enabling sends ``worker-online`` and the task
  events start with the worker's next batch of messages; disabling drops what is buffered and
  sends nothing more (monitors see the worker's heartbeats stop);
- :meth:`~WorkerEvents.stop` (at the end): ``worker-offline`` when on, the last flush, and the
  thread joined.

Task events are sent by :class:`~celeriac.middleware.events.EventsMiddleware` through this
object's dispatcher, which :meth:`~WorkerEvents.enable` hands to ``app.events``.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
from typing import TYPE_CHECKING, Any

from celeriac import __version__
from celeriac.events import EventDispatcher

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

__all__ = ["SW_IDENT", "WorkerEvents"]

logger = logging.getLogger("celeriac.events")

#: the ``sw_ident`` of celeriac's worker events (Celery's is ``py-celery``)
SW_IDENT = "celeriac"
_SW_SYS = platform.system()


def _loadavg() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):  # not on Windows
        return [0.0, 0.0, 0.0]


class WorkerEvents:
    """The events of one worker (see the module rules)."""

    #: seconds between ``worker-heartbeat`` events (the ``freq`` they carry)
    freq_s = 2.0
    #: longest time a buffered event waits before it is broadcast
    FLUSH_EVERY_S = 0.5

    def __init__(self, worker: Worker | Any, enabled: bool) -> None:
        self.worker = worker
        self.app = worker.app
        self.dispatcher: EventDispatcher = self.app.events.Dispatcher(
            self.app.broker, hostname=worker.hostname, enabled=enabled
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        #: send ``worker-heartbeat`` every :attr:`freq_s` (``worker --without-heartbeat``
        #: turns it off, as Celery's; monitors then see the worker go offline)
        self.periodic_heartbeats = True

    @property
    def enabled(self) -> bool:
        return self.dispatcher.enabled

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            self._started = True
            if self.enabled:
                self.app.events.attach_worker(self.dispatcher)
                self._send_worker("worker-online")
        self._thread = threading.Thread(target=self._run, name="celeriac-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            if self.enabled:
                self._send_worker("worker-offline")
            self.app.events.detach_worker()
            self._started = False

    # -- switches -------------------------------------------------------------------------------
    def enable(self) -> None:
        """Send events from now on (``enable_events``); a no-op when they are on."""
        with self._lock:
            if self.enabled:
                return
            self.dispatcher.enable()
            if self._started:
                self.app.events.attach_worker(self.dispatcher)
                self._send_worker("worker-online")
        logger.info("Events of group {task, worker} enabled.")

    def disable(self) -> None:
        """Send no more events (``disable_events``); a no-op when they are off."""
        with self._lock:
            if not self.enabled:
                return
            self.dispatcher.disable()
            self.app.events.detach_worker()
        logger.info("Events of group {task, worker} disabled.")

    def heartbeat(self) -> None:
        """Send a ``worker-heartbeat`` now (the ``heartbeat`` control command)."""
        with self._lock:
            if self.enabled and self._started:
                self._send_worker("worker-heartbeat")

    # -- internals ------------------------------------------------------------------------------
    def _send_worker(self, type_: str) -> None:
        executor = getattr(self.worker, "executor", None)
        self.dispatcher.send(
            type_,
            flush=True,
            freq=self.freq_s,
            active=len(executor.active) if executor is not None else 0,
            processed=executor.processed if executor is not None else 0,
            loadavg=_loadavg(),
            sw_ident=SW_IDENT,
            sw_ver=__version__,
            sw_sys=_SW_SYS,
        )

    def _run(self) -> None:
        """Broadcast what is buffered every :attr:`FLUSH_EVERY_S`; a heartbeat every
        :attr:`freq_s`."""
        next_beat = time.monotonic() + self.freq_s
        while not self._stop.wait(self.FLUSH_EVERY_S):
            try:
                if self.periodic_heartbeats and time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.freq_s
                    self.heartbeat()
                else:
                    self.dispatcher.flush()
            except Exception:  # never let the events thread die
                logger.exception("events: sending failed")
