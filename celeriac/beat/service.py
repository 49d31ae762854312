"""Running the scheduler: ``celeriac beat`` (:func:`run`) and ``worker -B`` (:func:`run_embedded`).

The loop: tick, then sleep until the next entry is due (at most ``max_interval``) or until
stopped. Broker errors are logged and retried with a growing pause; the failed runs are sent
when the broker is back (their keys keep them from being sent twice).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac._utils.imports import symbol_by_name
from celeriac._utils.signal_relay import SignalRelay
from celeriac.beat.scheduler import Scheduler
from celeriac.exceptions import ImproperlyConfigured, TransportError

if TYPE_CHECKING:
    from celeriac.app.base import Celery

__all__ = ["Service", "prepare_app", "run", "run_embedded", "scheduler_class"]

logger = logging.getLogger("celeriac.beat")

#: the shortest sleep between ticks (a guard against a schedule that is always due)
MIN_SLEEP_S = 0.005
MAX_BACKOFF_S = 30.0
# Celery's names for the schedulers, as configuration files written for Celery spell them.
_CELERY_SCHEDULERS = {
    "celery.beat:PersistentScheduler": "celeriac.beat:PersistentScheduler",
    "celery.beat.PersistentScheduler": "celeriac.beat:PersistentScheduler",
    "celery.beat:Scheduler": "celeriac.beat:Scheduler",
    "celery.beat.Scheduler": "celeriac.beat:Scheduler",
    # django_celery_beat's scheduler: the Django app celeriac.contrib.django.beat (an edge
    # package, named here by string only; nothing in the core imports it)
    "django_celery_beat.schedulers:DatabaseScheduler":
        "celeriac.contrib.django.schedulers:DatabaseScheduler",
    "django_celery_beat.schedulers.DatabaseScheduler":
        "celeriac.contrib.django.schedulers:DatabaseScheduler",
}


def prepare_app(app: Celery) -> None:
    """Send ``on_after_configure`` if it was never sent (an app configured by assigning to
    ``app.conf`` only), then finalize (``on_after_finalize``): the hooks in which users call
    ``add_periodic_task`` have run before beat reads its schedule."""
    app.ensure_configured()


def scheduler_class(name: str | type[Scheduler] | None) -> type[Scheduler]:
    """The scheduler class ``beat_scheduler`` / ``--scheduler`` names."""
    if name is None:
        name = "celeriac.beat:PersistentScheduler"
    if not isinstance(name, str):
        return name
    path = _CELERY_SCHEDULERS.get(name, name)
    try:
        cls = symbol_by_name(path)
    except (ImportError, AttributeError) as exc:
        raise ImproperlyConfigured(f"Cannot load the beat scheduler {name!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise ImproperlyConfigured(f"beat scheduler {name!r} is not a celeriac Scheduler class")
    return cls


class Service:
    """One beat: builds the scheduler and runs its loop until ``stop()``."""

    def __init__(
        self,
        app: Celery,
        *,
        max_interval: float | None = None,
        schedule_filename: str | None = None,
        scheduler_cls: str | type[Scheduler] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.app = app
        self.max_interval = max_interval
        self.schedule_filename = schedule_filename or app.conf.beat_schedule_filename
        self.scheduler_cls = scheduler_class(scheduler_cls or app.conf.beat_scheduler)
        self.clock = clock
        self.stop_event = threading.Event()
        self.scheduler: Scheduler | None = None
        #: monotonic time of the loop's last pass (None before it starts): beat's remote
        #: control stops answering ping when it is too old (celeriac/cli/beat_control.py)
        self.last_tick_s: float | None = None

    def get_scheduler(self) -> Scheduler:
        if self.scheduler is None:
            options: dict[str, Any] = {"schedule_filename": self.schedule_filename}
            if self.clock is not None:
                options["clock"] = self.clock
            self.scheduler = self.scheduler_cls(
                self.app, max_interval=self.max_interval, **options
            )
        return self.scheduler

    def start(self, stop_event: threading.Event | None = None) -> None:
        """Run until ``stop_event`` (or :meth:`stop`) is set."""
        stop = stop_event or self.stop_event
        self.stop_event = stop
        scheduler = self.get_scheduler()
        logger.info("beat: Starting... (%d entries, state in %s)",
                    len(scheduler.entries), scheduler.info)
        backoff_s = 0.0
        self.last_tick_s = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    wait_s = scheduler.tick()
                    if backoff_s:
                        logger.info("beat: connection to the broker restored")
                        backoff_s = 0.0
                except TransportError as exc:
                    backoff_s = min(max(backoff_s * 2, 1.0), MAX_BACKOFF_S)
                    logger.error("beat: broker error: %s; retrying in %.0fs", exc, backoff_s)
                    wait_s = backoff_s
                self.last_tick_s = time.monotonic()
                stop.wait(max(wait_s, MIN_SLEEP_S))
        finally:
            scheduler.close()
            logger.info("beat: stopped")

    def stop(self) -> None:
        self.stop_event.set()


def run(
    app: Celery,
    *,
    max_interval: float | None = None,
    schedule_filename: str | None = None,
    scheduler: str | type[Scheduler] | None = None,
    stop_event: threading.Event | None = None,
    install_signal_handlers: bool = True,
    service: Service | None = None,
) -> int:
    """``celeriac beat``: run until SIGTERM/SIGINT (or ``stop_event``); the exit status.
    ``service``: one built already (the other options are then its own)."""
    prepare_app(app)
    if service is None:
        service = Service(app, max_interval=max_interval, schedule_filename=schedule_filename,
                          scheduler_cls=scheduler)
    stop = stop_event or threading.Event()
    relay: SignalRelay | None = None
    if install_signal_handlers and threading.current_thread() is threading.main_thread():
        relay = SignalRelay("celeriac-beat-signals")

        def stopping(signum: int) -> None:
            logger.warning("beat: stopping (%s)", signal.Signals(signum).name)
            stop.set()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # No lock here (the main thread may hold stop's, inside stop.wait): the relay
            # thread logs and sets the event (celeriac._utils.signal_relay).
            assert relay is not None
            relay.call_soon(lambda: stopping(signum))

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
    try:
        signals.beat_init.send(sender=service)
        service.start(stop)
    finally:
        if relay is not None:
            relay.close()
    return 0


def run_embedded(app: Celery, stop_event: threading.Event) -> None:
    """``worker -B``: the worker runs this in a thread and sets ``stop_event`` to stop it."""
    try:
        prepare_app(app)
        service = Service(app)
        signals.beat_embedded_init.send(sender=service)
        service.start(stop_event)
    except Exception:
        logger.exception("beat: the embedded scheduler stopped with an error")
