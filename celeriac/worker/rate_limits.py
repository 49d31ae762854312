"""Task rate limits, enforced where the worker starts tasks (Celery's ``rate_limit``), plus
celeriac's own fleet-wide scope (docs/decisions/0018-rate-limits.md).

Rules:

* A rate is Celery's: ``"10/s"``, ``"10/m"``, ``"10/h"``, or a number (also a numeric string)
  meaning tasks per second; ``None``, ``""`` and ``0`` mean no limit. Anything else (a unit
  other than s/m/h, a negative or non-finite number) is a ValueError (:func:`parse_rate`).
* The limit of a task is its ``rate_limit``, else ``task_default_rate_limit``; none at all
  with ``worker_disable_rate_limits``. A task whose rate cannot be read runs unlimited and the
  worker logs one error for it (never crashes).
* A bucket holds ``max(1, rate x BURST_S)`` tokens: up to 10/s that is one token, so starts
  are spaced evenly as in Celery (``"5/s"``: one every 200 ms); above, a few may start
  together, so that a fast rate is not capped by how often the main loop comes round. In any
  window of T seconds at most ``rate x T + capacity`` tasks of that type start.
* ``scope="worker"`` (Celery's, the default): one bucket per task name in this worker.
* ``scope="global"`` (``rate_limit_scope`` on the task, else ``task_rate_limit_scope``): the
  bucket lives in the coordination store (:meth:`CoordinationStore.take_tokens`) and is
  shared by every worker. When the store cannot be reached (or keeps no buckets) the worker
  logs one warning and limits on its own, trying the store again every
  :data:`STORE_RETRY_S`; one more warning says when it is back.
* A job over its limit is *held* (not started, not acked, its lease renewed as any reserved
  message's, given back at shutdown); other task types keep starting. Held jobs of one task
  start in arrival order. Limits are read when the worker starts and on :meth:`set`.
* Thread-safe: :meth:`RateLimits.set` is called from the remote-control thread, the held jobs
  are read by the heartbeat thread; the main loop gates and releases.

Local clocks are ``time.monotonic``; a global bucket uses the store's clock (see the ADR).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celeriac.coordination.base import take_from_bucket
from celeriac.worker.pools.base import Job

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.coordination.base import CoordinationStore

logger = logging.getLogger("celeriac.worker")

#: seconds of a unit a Celery rate string may name
RATE_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0}
SCOPES = ("worker", "global")
#: a bucket holds this many seconds' worth of tokens (at least one): above 10/s a few tasks
#: may start together (and a worker takes a few global tokens per round trip)
BURST_S = 0.1
#: after the coordination store failed, a global limit is enforced per worker for this long
#: before the store is tried again
STORE_RETRY_S = 30.0
#: key prefix of global buckets in the coordination store (the task name follows)
GLOBAL_KEY_PREFIX = "task:"

Rate = str | float | None


def parse_rate(rate: object) -> float | None:
    """Tasks per second of a Celery rate (see the module rules); None for no limit."""
    if rate is None or rate == "":
        return None
    if isinstance(rate, bool):
        raise ValueError(f"Invalid rate limit {rate!r}")
    if isinstance(rate, int | float):
        per_s = float(rate)
    elif isinstance(rate, str):
        count, _, unit = rate.strip().partition("/")
        unit = unit.strip() or "s"
        if unit not in RATE_UNIT_S:
            raise ValueError(f"Invalid rate limit {rate!r}: the unit must be s, m or h")
        try:
            per_s = float(count) / RATE_UNIT_S[unit]
        except ValueError:
            raise ValueError(f"Invalid rate limit {rate!r}: not a number of tasks") from None
    else:
        raise ValueError(f"Invalid rate limit {rate!r}: expected e.g. '10/s' or a number")
    if not math.isfinite(per_s) or per_s < 0:
        raise ValueError(f"Invalid rate limit {rate!r}: must be a finite number >= 0")
    return per_s or None


class TokenBucket:
    """A token bucket on a caller-given clock: ``rate_per_s`` tokens a second, at most
    ``capacity``; starts full. Not thread-safe (its owner locks)."""

    __slots__ = ("capacity", "rate_per_s", "tokens", "updated_s")

    def __init__(self, rate_per_s: float, capacity: float, now_s: float) -> None:
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self.tokens = capacity
        self.updated_s = now_s

    def take(self, wanted: int, now_s: float) -> tuple[int, float]:
        """Take up to ``wanted`` whole tokens: (granted, seconds until one more token)."""
        granted, self.tokens, wait_s = take_from_bucket(
            self.tokens, self.updated_s, now_s, self.rate_per_s, self.capacity, wanted)
        self.updated_s = now_s
        return granted, wait_s


@dataclass(eq=False)
class _Limit:
    """The limit in force for one task name, and the jobs it holds."""

    task_name: str
    rate: Rate
    per_s: float
    scope: str
    bucket: TokenBucket
    held: deque[Job] = field(default_factory=deque)
    #: monotonic time before which no token is expected (held jobs are not tried earlier)
    next_try_s: float = 0.0


class RateLimits:
    """Per-task rate limits of one worker (see the module rules). The executor calls
    :meth:`admit` for each job it would start while :attr:`active` is true, and
    :meth:`release` for held jobs whose tokens came; users call :meth:`set`/:meth:`current`."""

    def __init__(
        self,
        app: Celery,
        *,
        store: CoordinationStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        conf = app.conf
        self.disabled = bool(conf.get("worker_disable_rate_limits"))
        self._default_rate: Rate = conf.get("task_default_rate_limit")
        try:
            parse_rate(self._default_rate)
        except ValueError as exc:
            logger.error("task_default_rate_limit: %s; tasks that set no rate limit run "
                         "without one", exc)
            self._default_rate = None
        self._default_scope = _checked_scope(conf.get("task_rate_limit_scope"),
                                             "task_rate_limit_scope") or "worker"
        #: task name -> its limit, None when it has none (filled lazily and on set())
        self._limits: dict[str, _Limit | None] = {}
        #: ids of held jobs released with their token taken (admit lets them through)
        self._ready: set[int] = set()
        #: held jobs whose limit was removed (they start without a token)
        self._orphans: deque[Job] = deque()
        self._held_count = 0
        #: monotonic time until which global limits are enforced per worker (store down)
        self._store_down_until_s = 0.0
        #: whether any limit may be in force (the executor's hot path reads only this)
        self.active = False
        with self._lock:
            for name in list(app._tasks):
                self._limit_of(name)
            self._update_active()

    # -- what users and remote control call -----------------------------------------------------
    def set(self, task_name: str, rate: Rate) -> None:
        """Set ``task_name``'s rate limit in this worker from now on (also the task's
        ``rate_limit`` attribute, as Celery does); ``None``/``""``/``0`` removes it. Held jobs
        of that task follow the new rate. ValueError for a bad rate, KeyError for a task this
        worker does not know."""
        per_s = parse_rate(rate)
        task = self.app._tasks.get(task_name)
        if task is None:
            raise KeyError(task_name)
        with self._lock:
            task.rate_limit = rate
            old = self._limits.get(task_name)
            held = old.held if old is not None else deque()
            limit = None
            if per_s is not None and not self.disabled:
                scope = _checked_scope(getattr(task, "rate_limit_scope", None), task_name)
                limit = self._new_limit(task_name, rate, per_s, scope or self._default_scope)
            self._limits[task_name] = limit
            if limit is not None:
                limit.held = held
            else:  # nothing holds them any more: they start at the next dispatch
                self._orphans.extend(held)
                held.clear()
            self._update_active()

    def current(self) -> dict[str, str | None]:
        """Each known task's rate limit in force in this worker (as given; None: none)."""
        with self._lock:
            names = sorted(set(self.app._tasks) | set(self._limits))
            out: dict[str, str | None] = {}
            for name in names:
                limit = self._limit_of(name)
                out[name] = None if limit is None or self.disabled else _shown(limit.rate)
            return out

    # -- what the executor calls ------------------------------------------------------------------
    @property
    def held_count(self) -> int:
        """How many jobs wait for a token."""
        return self._held_count

    def admit(self, job: Job) -> bool:
        """Whether ``job`` may start now. False: it is held here until :meth:`release` gives it
        back (its token taken)."""
        with self._lock:
            if self._ready and job.id in self._ready:
                self._ready.discard(job.id)
                return True
            limit = self._limits.get(job.task_name, _UNSEEN)
            if limit is _UNSEEN:
                limit = self._limit_of(job.task_name)
            if limit is None:
                return True
            assert isinstance(limit, _Limit)
            if limit.held or self._clock() < limit.next_try_s:
                self._hold(limit, job)
                return False
            if not self._shared(limit):
                if self._take_local(limit, 1):
                    return True
                self._hold(limit, job)
                return False
        # The store is asked outside the lock: the heartbeat thread must never wait for it.
        if self._take_shared(limit, 1):
            return True
        with self._lock:
            current = self._limits.get(job.task_name)
            if current is None:  # the limit was removed meanwhile
                return True
            self._hold(current, job)
            return False

    def release(self, free_slots: int) -> list[Job]:
        """Up to ``free_slots`` held jobs whose tokens are taken now, oldest of each task
        first, marked so that :meth:`admit` lets them through. Jobs whose limit was removed
        come back too."""
        if free_slots <= 0 or not self._held_count:
            return []
        out: list[Job] = []
        shared: list[tuple[_Limit, int]] = []
        with self._lock:
            while self._orphans and len(out) < free_slots:
                out.append(self._orphans.popleft())
            now_s = self._clock()
            room = free_slots - len(out)
            for limit in list(self._limits.values()):
                if room <= 0:
                    break
                if limit is None or not limit.held or now_s < limit.next_try_s:
                    continue
                wanted = min(len(limit.held), room)
                room -= wanted
                if self._shared(limit):
                    shared.append((limit, wanted))
                else:
                    granted = self._take_local(limit, wanted)
                    room += wanted - granted
                    out.extend(limit.held.popleft() for _ in range(granted))
            self._held_count -= len(out)
            self._ready.update(job.id for job in out)
        for limit, wanted in shared:
            granted = self._take_shared(limit, wanted)
            with self._lock:
                # set() may have changed the limit meanwhile: its held jobs are the same deque,
                # or went to the orphans (then this deque is empty).
                jobs = [limit.held.popleft() for _ in range(min(granted, len(limit.held)))]
                self._held_count -= len(jobs)
                self._ready.update(job.id for job in jobs)
            out.extend(jobs)
        return out

    def next_release_in_s(self) -> float | None:
        """Seconds until a held job may get its token (0: now); None when none is held."""
        with self._lock:
            if not self._held_count:
                return None
            if self._orphans:
                return 0.0
            now_s = self._clock()
            waits = [max(0.0, limit.next_try_s - now_s)
                     for limit in self._limits.values() if limit is not None and limit.held]
        return min(waits, default=0.0)

    def held_jobs(self) -> list[Job]:
        """A copy of the held jobs (any thread)."""
        with self._lock:
            jobs = list(self._orphans)
            for limit in self._limits.values():
                if limit is not None:
                    jobs.extend(limit.held)
            return jobs

    def remove(self, task_ids: Collection[str]) -> list[Job]:
        """Remove and return the held jobs of ``task_ids`` (revoked while they waited)."""
        out: list[Job] = []
        with self._lock:
            for queue in (self._orphans, *(lim.held for lim in self._limits.values() if lim)):
                kept = [job for job in queue if job.request.get("id") not in task_ids]
                if len(kept) != len(queue):
                    out.extend(job for job in queue if job.request.get("id") in task_ids)
                    queue.clear()
                    queue.extend(kept)
            self._held_count -= len(out)
        return out

    def take_held(self) -> list[Job]:
        """Remove and return every held job (shutdown gives their messages back)."""
        with self._lock:
            jobs = list(self._orphans)
            self._orphans.clear()
            for limit in self._limits.values():
                if limit is not None:
                    jobs.extend(limit.held)
                    limit.held.clear()
            self._held_count = 0
            return jobs

    # -- inside the lock ----------------------------------------------------------------------
    def _update_active(self) -> None:
        self.active = self._held_count > 0 or (
            not self.disabled
            and (self._default_rate not in (None, "", 0)
                 or any(limit is not None for limit in self._limits.values()))
        )

    def _limit_of(self, task_name: str) -> _Limit | None:
        """The limit of ``task_name`` from its task and the settings, cached."""
        if task_name in self._limits:
            return self._limits[task_name]
        limit: _Limit | None = None
        task = self.app._tasks.get(task_name)
        if task is not None and not self.disabled:
            rate = task.rate_limit
            if rate in (None, ""):
                rate = self._default_rate
            try:
                per_s = parse_rate(rate)
            except ValueError as exc:
                logger.error("Task %s: %s; it runs without a rate limit", task_name, exc)
                per_s = None
            if per_s is not None:
                scope = _checked_scope(getattr(task, "rate_limit_scope", None), task_name)
                limit = self._new_limit(task_name, rate, per_s, scope or self._default_scope)
        self._limits[task_name] = limit
        return limit

    def _new_limit(self, task_name: str, rate: Rate, per_s: float, scope: str) -> _Limit:
        capacity = max(1.0, per_s * BURST_S)
        return _Limit(task_name, rate, per_s, scope, TokenBucket(per_s, capacity, self._clock()))

    def _hold(self, limit: _Limit, job: Job) -> None:
        limit.held.append(job)
        self._held_count += 1

    def _shared(self, limit: _Limit) -> bool:
        """Whether ``limit`` takes its tokens from the store now (global, store not down)."""
        return limit.scope == "global" and self._clock() >= self._store_down_until_s

    def _take_local(self, limit: _Limit, wanted: int) -> int:
        """Take up to ``wanted`` tokens from this worker's bucket of ``limit`` (under the
        lock); sets when to try again when fewer came."""
        now_s = self._clock()
        granted, wait_s = limit.bucket.take(wanted, now_s)
        if granted < wanted:
            limit.next_try_s = now_s + wait_s
        return granted

    def _take_shared(self, limit: _Limit, wanted: int) -> int:
        """Take up to ``wanted`` tokens of a global ``limit`` from the coordination store (not
        under the lock; main loop only). When the store fails: one warning, and this worker's
        own bucket for the next :data:`STORE_RETRY_S`."""
        store = self._store if self._store is not None else self.app.coordination
        try:
            granted, wait_s = store.take_tokens(
                GLOBAL_KEY_PREFIX + limit.task_name, limit.per_s, limit.bucket.capacity, wanted)
        except Exception as exc:  # the store is down or keeps no buckets: per worker
            logger.warning(
                "Rate limits: the coordination store is unreachable (%s); global rate limits "
                "are enforced per worker for now", exc)
            with self._lock:
                self._store_down_until_s = self._clock() + STORE_RETRY_S
                return self._take_local(limit, wanted)
        with self._lock:
            if self._store_down_until_s:
                logger.warning("Rate limits: the coordination store is back; global rate "
                               "limits are shared again")
                self._store_down_until_s = 0.0
            if granted < wanted:
                limit.next_try_s = self._clock() + wait_s
        return int(granted)


_UNSEEN: Any = object()


def _checked_scope(scope: object, where: str) -> str:
    """``scope`` when it is a known one; "" for none; a bad one is logged and ignored."""
    if scope is None or scope == "":
        return ""
    if scope in SCOPES:
        return str(scope)
    logger.error("%s: unknown rate_limit_scope %r (expected 'worker' or 'global'); using the "
                 "default", where, scope)
    return ""


def _shown(rate: Rate) -> str | None:
    return None if rate is None else str(rate)
