"""The scheduler: which entries are due, sending them once, remembering what ran.

Each run has a scheduled time that every beat computes alike (``next_due``), hence a
deterministic task id, ``uuid5(BEAT_NAMESPACE, "<entry name>|<scheduled time, UTC ISO>")``,
which is also the dedup key (``broker.publish_once``, or ``app.coordination.add_once``): two
beats, or a beat restarted on an old state file, never send one run twice.

Catch-up: when several runs of an entry fell due since its last one (beat was stopped, or
the machine slept), the entry runs once, for the latest of them, and a warning says how many
were missed. With ``beat_cron_starting_deadline`` a crontab run later than that many seconds
is skipped instead (with a warning).
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac.beat.entry import ScheduleEntry
from celeriac.beat.store import EntryState, MemoryStore, ScheduleStore, store_for
from celeriac.exceptions import ImproperlyConfigured, TransportError
from celeriac.result import AsyncResult
from celeriac.schedules import COUNT_LIMIT, crontab

if TYPE_CHECKING:
    from celeriac.app.base import Celery

__all__ = ["BEAT_NAMESPACE", "PersistentScheduler", "Scheduler", "SentRun", "run_id"]

logger = logging.getLogger("celeriac.beat")

BEAT_NAMESPACE = uuid.UUID("5f0b4c52-7e1d-5d2a-9c41-6a3e8f2b7d10")
DEFAULT_MAX_INTERVAL_S = 300.0
#: a run's dedupe key outlives the run by its entry's period plus this
DEDUPE_MARGIN_S = 300.0
#: ``is_due`` schedules that fail are asked again after this long
ERROR_RETRY_S = 5.0


def run_id(entry_name: str, scheduled_at: datetime) -> str:
    """The task id (and dedupe key) of the run of ``entry_name`` due at ``scheduled_at``."""
    moment = scheduled_at.astimezone(UTC).isoformat()
    return str(uuid.uuid5(BEAT_NAMESPACE, f"{entry_name}|{moment}"))


@dataclass(frozen=True, slots=True)
class SentRun:
    """One run beat handed to the broker (``published`` False: another beat had sent it)."""

    entry: str
    task: str
    scheduled_at: datetime
    task_id: str
    published: bool


class Scheduler:
    """Keeps the last runs in memory only (Celery's ``celery.beat:Scheduler``)."""

    Entry = ScheduleEntry

    def __init__(
        self,
        app: Celery,
        schedule: Mapping[str, Any] | None = None,
        max_interval: float | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        store: ScheduleStore | None = None,
        lazy: bool = False,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.clock = clock or _utcnow
        self.max_interval_s = float(
            max_interval or app.conf.beat_max_loop_interval or DEFAULT_MAX_INTERVAL_S
        )
        self._source = schedule
        self._store = store
        self.entries: dict[str, ScheduleEntry] = {}
        #: the most recent runs sent (or found already sent), newest last
        self.history: deque[SentRun] = deque(maxlen=1000)
        self._warned_no_dedupe = False
        #: dedup keys this scheduler took whose publish then failed: still ours to send
        self._unsent: set[str] = set()
        if not lazy:
            self.setup_schedule()

    # -- set-up ---------------------------------------------------------------------------------
    @property
    def store(self) -> ScheduleStore:
        if self._store is None:
            self._store = self.create_store()
        return self._store

    def create_store(self) -> ScheduleStore:
        return MemoryStore()

    @property
    def schedule(self) -> dict[str, ScheduleEntry]:
        return self.entries

    @property
    def info(self) -> str:
        return self.store.description

    def setup_schedule(self) -> None:
        """Read the entries (``beat_schedule``, which ``add_periodic_task`` fills) and restore
        their last runs from the store; an entry whose schedule changed starts afresh."""
        source = self._source if self._source is not None else self.app.conf.beat_schedule
        stored = self.store.load()
        entries: dict[str, ScheduleEntry] = {}
        for name, spec in (source or {}).items():
            entry = spec if isinstance(spec, ScheduleEntry) else self.Entry.from_spec(
                name, spec, app=self.app, clock=self.clock)
            state = stored.get(name)
            if state is not None and state.fingerprint == entry.fingerprint:
                entry.last_run_at = state.last_run_at.astimezone(UTC)
                entry.total_run_count = state.total_run_count
            elif state is not None:
                logger.info("Scheduler: the schedule of %s changed; it starts afresh", name)
            entries[name] = entry
        self.entries = entries
        logger.debug("Scheduler: %d entries, state in %s", len(entries), self.info)

    # -- ticking --------------------------------------------------------------------------------
    def tick(self) -> float:
        """Send every due entry; return the seconds until the next one is due (at most
        ``max_interval_s``). Broker errors propagate (the service retries); other errors of
        one entry are logged and do not stop the others."""
        now = self.clock().astimezone(UTC)
        wait_s = self.max_interval_s
        for entry in list(self.entries.values()):
            try:
                entry_wait_s = self._tick_entry(entry, now)
            except TransportError:
                raise
            except Exception:
                logger.exception("Scheduler: entry %s failed", entry.name)
                entry_wait_s = ERROR_RETRY_S
            wait_s = min(wait_s, entry_wait_s)
        return max(wait_s, 0.0)

    def _tick_entry(self, entry: ScheduleEntry, now: datetime) -> float:
        if entry.last_run_at is None:
            # First sight: nothing is due yet; the first run is the schedule's next time.
            entry.last_run_at = now
            self._save(entry)
        if entry.uses_is_due:
            return self._tick_is_due(entry, now)
        sched = entry.schedule
        count, latest = sched.due_between(entry.last_run_at, now)
        if latest is None:
            return float((sched.next_due(entry.last_run_at) - now).total_seconds())
        if self._too_late(entry, latest, now):
            logger.warning(
                "Scheduler: %s: skipping the run due at %s, more than "
                "beat_cron_starting_deadline (%ss) ago", entry.name, latest.isoformat(),
                self.app.conf.beat_cron_starting_deadline,
            )
        else:
            if count > 1:
                missed = f"at least {count - 1}" if count >= COUNT_LIMIT else str(count - 1)
                logger.warning(
                    "Scheduler: %s missed %s run(s) since %s (beat was not running?); "
                    "running it once now, for %s", entry.name, missed,
                    entry.last_run_at.isoformat(), latest.isoformat(),
                )
            self._apply(entry, latest)
        entry.last_run_at = latest
        self._save(entry)
        return float((sched.next_due(latest) - now).total_seconds())

    def _tick_is_due(self, entry: ScheduleEntry, now: datetime) -> float:
        assert entry.last_run_at is not None
        is_due, next_check_s = entry.schedule.is_due(entry.last_run_at)
        if is_due:
            # No shared run time to derive: the second it was found due is the best key.
            self._apply(entry, now.replace(microsecond=0))
            entry.last_run_at = now
            self._save(entry)
        return float(next_check_s)

    def _apply(self, entry: ScheduleEntry, scheduled_at: datetime) -> None:
        """Send one run; a broker error propagates (the run is tried again), any other error
        (arguments that do not encode...) is logged and the run counts as done."""
        try:
            self.apply_entry(entry, scheduled_at)
        except TransportError:
            raise
        except Exception:
            logger.exception("Scheduler: could not send %s (%s)", entry.name, entry.task)
        else:
            entry.total_run_count += 1

    def _too_late(self, entry: ScheduleEntry, due_at: datetime, now: datetime) -> bool:
        deadline_s = self.app.conf.beat_cron_starting_deadline
        if deadline_s is None or not isinstance(entry.schedule, crontab):
            return False
        return (now - due_at).total_seconds() > float(deadline_s)

    def _save(self, entry: ScheduleEntry) -> None:
        assert entry.last_run_at is not None
        state = EntryState(entry.last_run_at, entry.total_run_count, entry.fingerprint)
        self.store.save(entry.name, state)

    # -- sending --------------------------------------------------------------------------------
    def apply_entry(self, entry: ScheduleEntry, scheduled_at: datetime) -> SentRun:
        """Send the run of ``entry`` due at ``scheduled_at`` unless some beat already did."""
        app = self.app
        task_id = run_id(entry.name, scheduled_at)
        options = dict(entry.options)
        options.pop("task_id", None)
        task = app.tasks.get(entry.task)
        if task is not None:
            task._with_defaults(options)
        prepared = app.prepare_message(
            entry.task, entry.args, entry.kwargs, task_id=task_id, **options
        )
        if isinstance(prepared, AsyncResult):  # task_always_eager: it ran here
            published = True
        else:
            queue, envelope = prepared
            if signals.before_task_publish.receivers:
                signals.before_task_publish.send(
                    sender=entry.task, body=envelope.body, exchange="", routing_key=queue,
                    headers=envelope.headers, properties=envelope.properties, declare=[],
                    retry_policy=None,
                )
            published = self._publish_once(queue, envelope, task_id,
                                           self._dedupe_ttl_s(entry, scheduled_at))
            if published and signals.after_task_publish.receivers:
                signals.after_task_publish.send(
                    sender=entry.task, body=envelope.body, headers=envelope.headers,
                    exchange="", routing_key=queue,
                )
        if published:
            logger.info("Scheduler: Sending due task %s (%s) [%s]", entry.name, entry.task,
                        task_id)
        else:
            logger.debug("Scheduler: %s due at %s was already sent by another beat",
                         entry.name, scheduled_at.isoformat())
        sent = SentRun(entry.name, entry.task, scheduled_at, task_id, published)
        self.history.append(sent)
        return sent

    def _publish_once(self, queue: str, envelope: Any, key: str, ttl_s: float) -> bool:
        """Publish unless ``key`` was taken (docs/decisions/0012): in one atomic step on a
        broker that can (``capabilities.atomic_publish_once``); otherwise the coordination
        store's ``add_once`` first, then the publish, so a beat dying between the two loses
        that one run rather than sending it twice (a publish that fails is retried by this
        beat: the key stays its own)."""
        broker = self.app.broker
        if broker.capabilities.atomic_publish_once:
            return broker.publish_once(queue, envelope, key, ttl_s)
        try:
            coordination = self.app.coordination
        except ImproperlyConfigured as exc:
            if not self._warned_no_dedupe:
                self._warned_no_dedupe = True
                logger.warning("Scheduler: no coordination store (%s): run only one beat", exc)
            broker.publish(queue, envelope)
            return True
        if not coordination.add_once(key, ttl_s) and key not in self._unsent:
            return False
        # A publish that fails leaves the key taken: the retry of this run (next tick) is ours.
        self._unsent.add(key)
        broker.publish(queue, envelope)
        self._unsent.discard(key)
        return True

    def _dedupe_ttl_s(self, entry: ScheduleEntry, scheduled_at: datetime) -> float:
        """Until the entry's next run: a beat that is late for this run finds the key then."""
        period_s = 0.0
        if not entry.uses_is_due:
            period_s = (entry.schedule.next_due(scheduled_at) - scheduled_at).total_seconds()
        return max(period_s, 0.0) + DEDUPE_MARGIN_S

    # -- lifecycle ------------------------------------------------------------------------------
    def sync(self) -> None:
        """Every change is saved when it happens; kept for Celery's API."""

    def close(self) -> None:
        self.sync()
        if self._store is not None:
            self._store.close()


class PersistentScheduler(Scheduler):
    """Keeps the last runs in a SQLite file, or in Redis when the broker is Redis."""

    def __init__(
        self,
        app: Celery,
        schedule: Mapping[str, Any] | None = None,
        max_interval: float | None = None,
        *,
        schedule_filename: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.schedule_filename = schedule_filename or app.conf.beat_schedule_filename
        super().__init__(app, schedule, max_interval, **kwargs)

    def create_store(self) -> ScheduleStore:
        return store_for(self.app, self.schedule_filename)


def _utcnow() -> datetime:
    return datetime.now(UTC)

