"""How many messages a worker holds (running + reserved): fixed, or adapted to task runtimes.

A worker claims messages ahead of its pool so a slot that frees never waits for a broker round
trip. How far ahead is the prefetch window: ``slots x multiplier`` messages held at most.

**Fixed** (Celery's behaviour): ``worker_prefetch_multiplier`` (old name
``CELERYD_PREFETCH_MULTIPLIER``) or ``--prefetch-multiplier N`` set, even to Celery's 4, gives
``slots x N`` (at least 1 per slot; ``--disable-prefetch`` is 1) and nothing below changes it.

**Adaptive** (neither is set). The rules, all O(1) per main-loop turn:

1. Size. The multiplier is ``1 + RESERVE_TARGET_S / runtime``, rounded down, between 1 and
   :data:`MAX_MULTIPLIER`, where ``runtime`` is an exponentially weighted moving average
   (weight :data:`EWMA_WEIGHT`) of finished tasks' runtimes, one sample per main-loop turn
   that saw tasks finish. Each slot then has about :data:`RESERVE_TARGET_S` of work waiting
   behind its task: trivial tasks reach the cap (64, what ``--prefetch-multiplier 64`` gave),
   20 ms tasks hold no reserve at all (multiplier 1: claim only for a free slot). Until the
   first task finishes the multiplier is :data:`START_MULTIPLIER` (Celery's default). The
   window never exceeds :data:`MAX_WINDOW` messages, nor falls below one per slot.
2. Give back. When every pool slot runs a task that started at least :data:`LONG_TASK_S`
   ago, the reserve waits behind long tasks: the worker gives every reserved message back to
   the broker (another worker takes it now) and holds no reserve (window = slots, so nothing
   is claimed) until a task finishes. There is no minimum time in reserve: a message claimed
   a moment before the last slot turned long waits behind it just the same.

Why these numbers. 20 ms of work per slot is 10-100x a claim round trip to a local or LAN
broker, so a slot does not starve between claims (the worker claims again when half the
reserve is gone), while a message waits at most about that long behind tasks that behave
like the average. 64 per slot is where the solo drain of trivial tasks stops gaining
(ADR 0026 has the numbers). 1,024 messages in all is about 30 ms of the fastest worker's
intake (~33,000 tasks/s); beyond it a claim only holds messages other workers could run.
A task that has run 250 ms is over 12x the longest average that still gets a reserve, so it is
not what the reserve was sized for.

Pure logic: the worker reads the clock and passes times in (monotonic seconds).
"""

from __future__ import annotations

#: seconds of work each pool slot keeps waiting in reserve (adaptive)
RESERVE_TARGET_S = 0.02
#: the largest adaptive multiplier (messages held per slot)
MAX_MULTIPLIER = 64
#: the most messages an adaptive window holds, whatever the pool's size
MAX_WINDOW = 1024
#: the adaptive multiplier before any task finished (Celery's default multiplier)
START_MULTIPLIER = 4
#: weight of the newest sample in the runtime average
EWMA_WEIGHT = 0.2
#: a task running at least this long is long: nothing waits in reserve behind it
LONG_TASK_S = 0.25
#: average runtime at or below which the multiplier is MAX_MULTIPLIER
_CAPPED_AT_S = RESERVE_TARGET_S / MAX_MULTIPLIER


def multiplier_for(runtime_s: float) -> int:
    """The adaptive multiplier for tasks that run ``runtime_s`` on average (rule 1)."""
    if runtime_s * MAX_MULTIPLIER <= RESERVE_TARGET_S:
        return MAX_MULTIPLIER
    return max(1, min(MAX_MULTIPLIER, 1 + int(RESERVE_TARGET_S / runtime_s)))


class Prefetch:
    """The prefetch window of one worker. ``multiplier`` None: adaptive; a number: fixed.

    Only the main loop calls :meth:`observe` and :meth:`hold_back`; an inline pool's
    :meth:`hold_back` comes from the heartbeat thread while the main thread runs a task (it
    then calls nothing here). :meth:`window` may be read from any thread.
    """

    def __init__(self, multiplier: int | None = None) -> None:
        #: no multiplier was given: the window follows task runtimes
        self.adaptive = multiplier is None
        #: messages held per pool slot (adaptive: the current value)
        self.multiplier = START_MULTIPLIER if multiplier is None else max(1, int(multiplier))
        #: moving average of finished tasks' runtimes (None until one finished)
        self.runtime_s: float | None = None
        #: every slot runs a long task: no reserve until one finishes (rule 2)
        self.held_back = False

    def __repr__(self) -> str:
        if not self.adaptive:
            return f"Prefetch(fixed x{self.multiplier})"
        return (f"Prefetch(adaptive x{self.multiplier}, runtime_s={self.runtime_s!r}, "
                f"held_back={self.held_back})")

    def window(self, slots: int) -> int:
        """The most messages to hold with ``slots`` pool slots."""
        slots = max(1, slots)
        if not self.adaptive:
            return slots * self.multiplier
        if self.held_back:
            return slots
        return max(slots, min(slots * self.multiplier, MAX_WINDOW))

    def observe(self, runtime_s: float) -> bool:
        """Fold a finished task's runtime into the average (adaptive only); ends a hold-back.
        True when the window may have changed (the caller sizes it again)."""
        if not self.adaptive:
            return False
        average = self.runtime_s
        average = runtime_s if average is None else average + EWMA_WEIGHT * (runtime_s - average)
        self.runtime_s = average
        if average <= _CAPPED_AT_S and self.multiplier == MAX_MULTIPLIER and not self.held_back:
            return False  # the common case of trivial tasks, cheaply (once per loop turn)
        multiplier = multiplier_for(max(average, 0.0))
        changed = self.held_back or multiplier != self.multiplier
        self.multiplier = multiplier
        self.held_back = False
        return changed

    def hold_back(self, now_s: float, youngest_started_s: float) -> bool:
        """Rule 2, asked while every pool slot runs a task and messages wait in reserve:
        ``youngest_started_s`` is when the most recent of those tasks started. True when the
        reserve is to be given back (adaptive only); the window is then one per slot until
        the next :meth:`observe`."""
        if not self.adaptive or now_s - youngest_started_s < LONG_TASK_S:
            return False
        self.held_back = True
        return True
