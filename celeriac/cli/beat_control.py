"""``celeriac beat --enable-remote-control``: beat answers ``inspect ping``, as Celery 5.7's
does, so a probe (``celeriac inspect ping -d celerybeat@host``) can health-check it.

Rules (Celery's):

* beat listens on the workers' control channel under its node name: ``-n`` (``name@host``;
  a bare ``host`` means ``celerybeat@host``; ``%h %n %d %i`` expand as for the worker),
  default ``celerybeat@%h``;
* it answers ``ping`` with ``{"ok": "pong"}`` and ignores every other command, so worker-only
  commands (``inspect active``) show no error line for beat;
* it stays silent while its loop is stuck: once the last tick is older than the max tick age
  (``beat_remote_control_max_tick_age``; else twice the max interval, at least
  :data:`MIN_TICK_AGE_S`; ``0`` turns the check off), because no reply is the only thing a
  probe can act on (``inspect ping`` exits 69);
* a broker without broadcast, or a lost channel, is logged; beat itself goes on scheduling.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from celeriac import mailbox
from celeriac.brokers.base import Broker, Subscription
from celeriac.worker.worker import default_hostname

__all__ = ["MIN_TICK_AGE_S", "BeatControl", "beat_nodename", "max_tick_age_s"]

logger = logging.getLogger("celeriac.beat.control")

#: the shortest derived max tick age, in seconds (a scheduler looping every 5 s would
#: otherwise look stuck after one slow pass)
MIN_TICK_AGE_S = 60.0


def beat_nodename(name: str | None) -> str:
    """Beat's node name for ``-n name`` (None: ``celerybeat@%h``), expanded."""
    if not name:
        name = "celerybeat@%h"
    elif "@" not in name:
        name = f"celerybeat@{name}"
    return default_hostname(name)


def max_tick_age_s(configured: float | None, max_interval_s: float) -> float:
    """How old the last tick may be before beat stops answering (0: never stops)."""
    if configured is not None:
        return float(configured)
    return max(2 * max_interval_s, MIN_TICK_AGE_S)


class BeatControl:
    """The ``celeriac-beat-control`` thread: answers ``ping`` while ``last_tick`` (a monotonic
    time, None before the first tick) is recent enough."""

    #: how long one read of the channel waits, in seconds (bounds how late a stop is seen)
    POLL_S = 0.5
    #: longest wait between attempts to subscribe again after an outage, in seconds
    MAX_BACKOFF_S = 5.0

    def __init__(self, broker: Broker, hostname: str, *, max_tick_age_s: float,
                 last_tick: Callable[[], float | None]) -> None:
        self.broker = broker
        self.hostname = hostname
        self.max_tick_age_s = max_tick_age_s
        self.last_tick = last_tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.broker.capabilities.broadcast:
            logger.warning("beat: the %s transport has no broadcast, so beat answers no "
                           "remote control", type(self.broker).__name__)
            return
        # Subscribed before start() returns: a ping sent once beat reports it is up is heard.
        subscription: Subscription | None
        try:
            subscription = self.broker.subscribe(mailbox.CONTROL_CHANNEL)
        except Exception as exc:  # the thread tries again
            logger.warning("beat: remote control could not subscribe yet: %s", exc)
            subscription = None
        self._thread = threading.Thread(target=self._run, args=(subscription,),
                                        name="celeriac-beat-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.POLL_S + 1.0)

    def tick_age_s(self) -> float | None:
        last = self.last_tick()
        return None if last is None else time.monotonic() - last

    def stale(self) -> bool:
        age = self.tick_age_s()
        return bool(self.max_tick_age_s) and age is not None and age > self.max_tick_age_s

    def _run(self, subscription: Subscription | None) -> None:
        backoff_s = 0.0
        try:
            while not self._stop.is_set():
                try:
                    if subscription is None:
                        subscription = self.broker.subscribe(mailbox.CONTROL_CHANNEL)
                        backoff_s = 0.0
                    payloads = subscription.get(self.POLL_S)
                except Exception as exc:
                    _close(subscription)
                    subscription = None
                    if not backoff_s:
                        logger.warning("beat: lost the control channel: %s", exc)
                    backoff_s = min(max(backoff_s * 2, 0.25), self.MAX_BACKOFF_S)
                    self._stop.wait(backoff_s)
                    continue
                for payload in payloads:
                    self.receive(payload)
        finally:
            _close(subscription)

    def receive(self, payload: bytes) -> None:
        """Answer one request read from the channel if it is a ``ping`` for this beat (never
        raises)."""
        try:
            request = mailbox.decode_request(payload)
        except Exception:  # malformed requests are the workers' to report
            return
        if request.method != "ping" or not request.addressed_to(self.hostname):
            return
        if self.stale():
            logger.warning("beat: not answering ping: the scheduler has not ticked for %.1f s "
                           "(over the %g s limit)", self.tick_age_s() or 0.0,
                           self.max_tick_age_s)
            return
        if request.reply_to:
            try:
                self.broker.broadcast(request.reply_to, mailbox.encode_reply(
                    request.ticket, self.hostname, {"ok": "pong"}))
            except Exception as exc:
                logger.warning("beat: could not answer ping: %s", exc)


def _close(subscription: Subscription | None) -> None:
    """Close ``subscription`` if there is one (errors ignored)."""
    if subscription is not None:
        try:
            subscription.close()
        except Exception:
            pass
