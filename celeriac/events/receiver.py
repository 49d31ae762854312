"""``EventReceiver``: reads events from the broker and calls handlers (Celery's
``app.events.Receiver``).

::

    with app.connection() as conn:
        recv = app.events.Receiver(conn, handlers={"task-failed": on_failed, "*": state.event})
        recv.capture(limit=None, timeout=None, wakeup=True)

Rules:

- a receiver gets the events broadcast after it subscribed: :meth:`EventReceiver.capture` and
  :meth:`~EventReceiver.itercapture` subscribe when they start unless the receiver was opened
  first (``with recv:`` or :meth:`~EventReceiver.open`), which subscribes at once;
- each event goes to the handler of its type, else to the ``"*"`` handler, with
  ``local_received`` (epoch seconds) added; handlers run in the capturing thread and what they
  raise reaches the caller (as in Celery);
- what arrives on the channel never makes a capture raise: payloads and events that break
  the wire rules (:mod:`celeriac.events.event`) are dropped with a debug log line;
- ``timeout``: when no event arrives for that many seconds, :class:`TimeoutError` (which
  ``socket.timeout`` is) is raised, as Celery's receiver does; None waits forever;
- ``limit``: stop after that many events; setting ``should_stop`` stops within
  :attr:`EventReceiver.POLL_S`;
- ``wakeup`` (the default) sends the ``heartbeat`` control command as the capture starts, so
  the workers that send events answer with a ``worker-heartbeat`` at once (they send one
  every 2 s anyway).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from celeriac.brokers.base import Subscription
from celeriac.events.connection import broker_of
from celeriac.events.event import EVENTS_CHANNEL, LamportClock, decode_events

__all__ = ["EventReceiver"]

logger = logging.getLogger("celeriac.events")

Handler = Callable[[dict[str, Any]], Any]


class EventReceiver:
    """Calls ``handlers`` with the events on the broker's events channel."""

    #: longest wait for the broker in one call (how soon ``should_stop`` is noticed)
    POLL_S = 0.5

    def __init__(
        self,
        connection: Any = None,
        handlers: Mapping[str, Handler] | None = None,
        routing_key: str = "#",
        node_id: str | None = None,
        app: Any = None,
        *,
        channel: str = EVENTS_CHANNEL,
        **_celery_options: Any,
    ) -> None:
        self.app = app
        self.broker = broker_of(connection, app)
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.routing_key = routing_key
        self.node_id = node_id
        self.channel = channel
        self.clock = LamportClock()
        self.should_stop = False
        self._subscription: Subscription | None = None
        #: events received and not handled yet (a capture stopped in the middle of a batch)
        self._pending: deque[dict[str, Any]] = deque()

    # -- subscription ------------------------------------------------------------------------
    def open(self) -> EventReceiver:
        """Subscribe now (events broadcast from now on are received)."""
        if self._subscription is None:
            self._subscription = self.broker.subscribe(self.channel)
        return self

    def close(self) -> None:
        subscription, self._subscription = self._subscription, None
        self._pending.clear()
        if subscription is not None:
            subscription.close()

    def __enter__(self) -> EventReceiver:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- receiving -----------------------------------------------------------------------------
    def process(self, type: str, event: dict[str, Any]) -> None:
        """Call the handler of ``type`` (else the ``"*"`` one) with ``event``."""
        handler = self.handlers.get(type) or self.handlers.get("*")
        if handler is not None:
            handler(event)

    def event_from_message(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` with ``local_received`` set and this receiver's clock adjusted."""
        self.clock.adjust(event.get("clock") or 0)
        event["local_received"] = time.time()
        return event

    def itercapture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Yield each event after its handler ran (see the module rules for ``limit``,
        ``timeout`` and ``wakeup``)."""
        owned = self._subscription is None
        subscription = self.open()._subscription
        assert subscription is not None
        if wakeup:
            self.wakeup_workers()
        count = 0
        last_event = time.monotonic()
        pending = self._pending
        try:
            while not self.should_stop and (limit is None or count < limit):
                if not pending:
                    wait_s = self.POLL_S
                    if timeout is not None:
                        left = last_event + timeout - time.monotonic()
                        if left <= 0:
                            raise TimeoutError(f"no event within {timeout} s")
                        wait_s = min(wait_s, left)
                    try:
                        payloads = subscription.get(wait_s)
                    except Exception as exc:  # the broker went away: wait and try again
                        logger.warning("events: receiving failed: %s", exc)
                        time.sleep(wait_s)
                        continue
                    for payload in payloads:
                        pending.extend(decode_events(payload))
                    continue
                last_event = time.monotonic()
                event = self.event_from_message(pending.popleft())
                self.process(event["type"], event)
                count += 1
                yield event
        finally:
            if owned:
                self.close()

    def wakeup_workers(self) -> None:
        """Ask every worker for a ``worker-heartbeat`` now (the ``heartbeat`` control command,
        no reply awaited), so a new receiver learns of the live workers at once. Needs the
        receiver's app; a failure is logged at debug and changes nothing."""
        control = getattr(self.app, "control", None)
        if control is None:
            return
        try:
            control.broadcast("heartbeat")
        except Exception as exc:
            logger.debug("events: could not wake the workers: %s", exc)

    def capture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> None:
        """Handle events until ``limit`` were handled, ``should_stop`` is set, or (raising
        TimeoutError) none arrived for ``timeout`` seconds."""
        for _ in self.itercapture(limit=limit, timeout=timeout, wakeup=wakeup):
            pass

    def __repr__(self) -> str:
        return f"<EventReceiver on {self.broker!r} {sorted(self.handlers)}>"
