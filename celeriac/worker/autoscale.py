"""Pool autoscaling (``worker --autoscale=MAX,MIN``), as Celery's autoscaler behaves.

The worker's main loop calls :meth:`Autoscaler.maybe_scale` on every turn with the number of
tasks it holds (reserved + running); the call costs one clock read until the next check is
due (every ``interval_s``). The rules:

- **grow** at once when more tasks are held than the pool has processes: to
  ``min(held, max)`` processes;
- **shrink** when fewer tasks than processes were held for ``keepalive_s`` seconds on end
  (Celery: 30 s, read from the ``AUTOSCALE_KEEPALIVE`` environment variable): down to
  ``max(held, min)``, idle processes first; a busy process is retired after its task, never
  stopped in the middle of one;
- the pool never goes below 1 process, even with ``min`` 0 (Celery's ``--autoscale=10``).

Everything here runs in the worker's main thread, which owns the pool: remote control
(``pool_grow``, ``pool_shrink``, ``autoscale``) reaches it through
:class:`~celeriac.worker.worker.Worker`, which queues the request for the main loop. The worker
sizes its prefetch window from :attr:`Autoscaler.max_concurrency`, as Celery does, so tasks
can wait in reserve for the pool to grow into.
"""

from __future__ import annotations

import builtins
import logging
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.worker.pools.base import Pool

__all__ = ["AUTOSCALE_KEEPALIVE_S", "Autoscaler", "autoscale_bounds", "parse_autoscale"]

logger = logging.getLogger("celeriac.worker")


def _keepalive_from_env() -> float:
    try:
        return float(os.environ.get("AUTOSCALE_KEEPALIVE", 30))
    except ValueError:
        return 30.0


#: seconds of idle capacity before the pool shrinks (Celery's ``AUTOSCALE_KEEPALIVE``)
AUTOSCALE_KEEPALIVE_S = _keepalive_from_env()


def autoscale_bounds(max_concurrency: object, min_concurrency: object) -> tuple[int, int]:
    """``(max, min)`` checked: whole numbers, the larger is the maximum (Celery's command line
    sorts them), the maximum at least 1. ValueError with a one-line reason otherwise."""
    values = []
    for value in (max_concurrency, min_concurrency):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"autoscale bounds are whole numbers, got {value!r}")
        if value < 0:
            raise ValueError(f"autoscale bounds cannot be negative, got {value!r}")
        values.append(value)
    high, low = max(values), min(values)
    if high < 1:
        raise ValueError("the autoscale maximum must be at least 1")
    return high, low


def parse_autoscale(text: str) -> tuple[int, int]:
    """``--autoscale`` as Celery reads it: ``"10,3"`` -> (10, 3), ``"3,10"`` -> (10, 3),
    ``"10"`` -> (10, 0). ValueError with a one-line reason otherwise."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) > 2:
        raise ValueError(f"expected MAX,MIN or MAX (whole numbers), got {text!r}")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise ValueError(f"expected MAX,MIN or MAX (whole numbers), got {text!r}") from None
    return autoscale_bounds(numbers[0], numbers[1] if len(numbers) == 2 else 0)


class Autoscaler:
    """Grows and shrinks ``pool`` between ``min_concurrency`` and ``max_concurrency``.

    Celery's constructor signature (``worker``, ``keepalive`` in seconds; ``mutex`` is
    accepted and unused: one thread calls every method)."""

    #: seconds between two looks at the load (the grow reaction time)
    interval_s = 0.1

    def __init__(
        self,
        pool: Pool,
        max_concurrency: int,
        min_concurrency: int = 0,
        worker: Any = None,
        keepalive: float | None = None,
        mutex: Any = None,
    ) -> None:
        self.pool = pool
        self.worker = worker
        self.max_concurrency = max(1, int(max_concurrency))
        self.min_concurrency = max(0, min(int(min_concurrency), self.max_concurrency))
        self.keepalive_s = _keepalive_from_env() if keepalive is None else float(keepalive)
        #: tasks held (reserved + running) at the last look
        self.qty = 0
        self._next_look_s = 0.0
        #: since when fewer tasks than processes were held (None: not now)
        self._idle_since_s: float | None = None

    @property
    def processes(self) -> int:
        return self.pool.limit

    # -- the main loop's call -------------------------------------------------------------------
    def maybe_scale(self, held: int) -> bool:
        """Look at the load (``held`` = reserved + running tasks) when a look is due; returns
        True when the pool changed size."""
        now = time.monotonic()
        if now < self._next_look_s:
            return False
        self._next_look_s = now + self.interval_s
        self.qty = held
        procs = self.processes
        want_up = min(held, self.max_concurrency)
        if want_up > procs:
            self._idle_since_s = None
            return self._grow(want_up - procs)
        want_down = max(held, self.min_concurrency, 1)
        if want_down >= procs:
            self._idle_since_s = None
            return False
        if self._idle_since_s is None:
            self._idle_since_s = now
            return False
        if now - self._idle_since_s < self.keepalive_s:
            return False
        self._idle_since_s = None
        return self._shrink(procs - want_down)

    # -- Celery's API ------------------------------------------------------------------------------
    def update(self, max: int | None = None, min: int | None = None) -> tuple[int, int]:
        """New bounds (either may be None: unchanged); the pool follows at once when it is
        outside them. Returns ``(max, min)``. (The parameters keep Celery's names, which hide
        the builtins here.)"""
        if max is not None:
            self.max_concurrency = builtins.max(1, int(max))
            if self.max_concurrency < self.processes:
                self._shrink(self.processes - self.max_concurrency)
        if min is not None:
            self.min_concurrency = builtins.max(0, int(min))
            if self.min_concurrency > self.processes:
                self._grow(self.min_concurrency - self.processes)
        return self.max_concurrency, self.min_concurrency

    def force_scale_up(self, n: int) -> None:
        """Grow by ``n`` now (``pool_grow``), raising ``max`` when it goes past it."""
        new = self.processes + n
        if new > self.max_concurrency:
            self.max_concurrency = new
        self._grow(n)

    def force_scale_down(self, n: int) -> None:
        """Shrink by ``n`` now (``pool_shrink``), lowering ``min`` when it goes below it."""
        new = max(1, self.processes - n)
        if new < self.min_concurrency:
            self.min_concurrency = new
        self._shrink(self.processes - new)

    def info(self) -> dict[str, Any]:
        """Celery's ``stats()['autoscaler']``: bounds, processes now, tasks held at the last
        look."""
        return {
            "max": self.max_concurrency,
            "min": self.min_concurrency,
            "current": self.processes,
            "qty": self.qty,
        }

    # -- doing it ----------------------------------------------------------------------------------
    def _grow(self, n: int) -> bool:
        if n <= 0:
            return False
        logger.info("Scaling up %s processes.", n)
        before = self.processes
        return self.pool.grow(n) != before

    def _shrink(self, n: int) -> bool:
        if n <= 0:
            return False
        logger.info("Scaling down %s processes.", n)
        before = self.processes
        return self.pool.shrink(n) != before

