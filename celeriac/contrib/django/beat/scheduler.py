"""``DatabaseScheduler``: beat's entries come from :class:`~.models.PeriodicTask` rows.

It is beat's own :class:`~celeriac.beat.Scheduler` with two changes: the entries are the
enabled rows (read again whenever :class:`~.models.ScheduleChange` moved, checked every
``sync_every_s``, 1 s by default), and each entry's last run is kept on its row. Run times,
run ids and the once-only publish are the base class's (docs/decisions/0007, 0012), so any
number of beats may share one database and broker: each run is sent once.

One-off tasks (``one_off``, or a clocked schedule) are disabled after their run; a task whose
``expires`` passed is not sent any more.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from celeriac.beat.entry import ScheduleEntry
from celeriac.beat.scheduler import Scheduler, SentRun, run_id
from celeriac.beat.store import EntryState, ScheduleStore
from celeriac.schedules import crontab, schedule

if TYPE_CHECKING:
    from celeriac.app.base import Celery

__all__ = ["DatabaseScheduler", "DatabaseStore"]

logger = logging.getLogger("celeriac.beat")

#: how often a running beat looks for changes in the database (seconds)
DEFAULT_SYNC_EVERY_S = 1.0


def _model(name: str) -> Any:
    """A model of this app (through the app registry: models load only once Django is set up)."""
    from django.apps import apps

    return apps.get_model("celeriac_beat", name)


def ensure_django() -> None:
    """``django.setup()`` unless it ran (beat started without the Django fix-up)."""
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


class DatabaseStore(ScheduleStore):
    """Each entry's last run on its :class:`PeriodicTask` row (written with ``update()``, so
    it is no change a beat reloads for). The run count is counted where a run is sent."""

    def __init__(self, using: str = "default") -> None:
        self.using = using
        self.description = f"the database ({using!r}, Django)"

    def load(self) -> dict[str, EntryState]:
        PeriodicTask = _model("PeriodicTask")
        rows = PeriodicTask.objects.using(self.using).filter(last_run_at__isnull=False)
        return {
            name: EntryState(last_run_at, count, fingerprint)
            for name, last_run_at, count, fingerprint in rows.values_list(
                "name", "last_run_at", "total_run_count", "schedule_fingerprint")
        }

    def save(self, name: str, state: EntryState) -> None:
        """Move the row's last run forward (another beat may have moved it further already),
        or reset it when the schedule changed."""
        from django.db.models import Q

        PeriodicTask = _model("PeriodicTask")
        when = state.last_run_at
        PeriodicTask.objects.using(self.using).filter(name=name).filter(
            Q(last_run_at__isnull=True) | Q(last_run_at__lt=when)
            | ~Q(schedule_fingerprint=state.fingerprint)
        ).update(last_run_at=when, schedule_fingerprint=state.fingerprint)

    def close(self) -> None:
        """Close this thread's database connections (beat may run in a worker's thread)."""
        from django.db import connections

        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:  # a test's transaction stays open
                connection.close()


class DatabaseScheduler(Scheduler):
    """Celery's ``django_celery_beat.schedulers:DatabaseScheduler`` for celeriac."""

    #: seconds between two looks at :class:`ScheduleChange`
    sync_every_s = DEFAULT_SYNC_EVERY_S

    def __init__(
        self,
        app: Celery,
        schedule: Mapping[str, Any] | None = None,
        max_interval: float | None = None,
        *,
        sync_every: float | None = None,
        using: str = "default",
        **kwargs: Any,
    ) -> None:
        ensure_django()
        kwargs.pop("schedule_filename", None)  # the state is in the database
        if sync_every is not None:
            self.sync_every_s = float(sync_every)
        self.using = using
        self._version: int | None = None
        self._next_check = 0.0
        #: entry name -> (row id, one-off, expires)
        self._rows: dict[str, tuple[int, bool, datetime | None]] = {}
        self._settings_entries = schedule
        lazy = bool(kwargs.pop("lazy", False))
        super().__init__(app, schedule, max_interval, lazy=True, **kwargs)
        self.add_settings_entries()
        if not lazy:
            self.setup_schedule()

    def create_store(self) -> ScheduleStore:
        return DatabaseStore(self.using)

    def add_settings_entries(self) -> list[str]:
        """Store the ``beat_schedule`` entries of the settings (or those this scheduler was
        given) that have no row yet, so that the admin shows and edits them: a row wins over
        the settings once it exists. Entries whose schedule has no row form (a user schedule
        class) are logged and left out. The names of the rows added."""
        from django.db import transaction

        PeriodicTask = _model("PeriodicTask")
        source = self._settings_entries
        if source is None:
            source = self.app.conf.beat_schedule
        added = []
        for name, spec in (source or {}).items():
            if PeriodicTask.objects.using(self.using).filter(name=name).exists():
                continue
            try:
                with transaction.atomic(using=self.using):
                    row = row_from_spec(name, spec, self.app, self.using)
                    if row is None:
                        continue
                    row.save(using=self.using)
            except Exception as exc:
                logger.warning("DatabaseScheduler: beat_schedule[%r] is not stored: %s",
                               name, exc)
                continue
            added.append(name)
        if added:
            logger.info("DatabaseScheduler: stored beat_schedule entries %s", ", ".join(added))
        return added

    # -- reading the rows -----------------------------------------------------------------------
    def setup_schedule(self) -> None:
        """(Re)read the enabled rows; rows that do not make an entry are logged and skipped."""
        PeriodicTask, ScheduleChange = _model("PeriodicTask"), _model("ScheduleChange")
        self._drop_stale_connection()
        self._version = ScheduleChange.objects.using(self.using).filter(ident=1).values_list(
            "version", flat=True).first() or 0
        specs: dict[str, ScheduleEntry] = {}
        rows: dict[str, tuple[int, bool, datetime | None]] = {}
        query = PeriodicTask.objects.using(self.using).filter(enabled=True).select_related(
            "interval", "crontab", "clocked")
        for row in query:
            try:
                specs[row.name] = self.Entry.from_spec(
                    row.name, row.to_spec(), app=self.app, clock=self.clock)
            except Exception as exc:
                logger.error("DatabaseScheduler: periodic task %r is skipped: %s", row.name, exc)
                continue
            rows[row.name] = (row.pk, row.is_one_off, row.expires)
        self._source = specs
        self._rows = rows
        super().setup_schedule()
        self._next_check = time.monotonic() + self.sync_every_s

    def schedule_changed(self) -> bool:
        """Whether a row changed since the entries were read (one indexed read)."""
        from django.db import DatabaseError

        ScheduleChange = _model("ScheduleChange")
        self._drop_stale_connection()
        try:
            version = ScheduleChange.objects.using(self.using).filter(ident=1).values_list(
                "version", flat=True).first() or 0
        except DatabaseError as exc:
            logger.warning("DatabaseScheduler: could not read the schedule version: %s", exc)
            return False
        return version != self._version

    def refresh(self) -> bool:
        """Reload the entries if the database changed; whether it did."""
        self._next_check = time.monotonic() + self.sync_every_s
        if not self.schedule_changed():
            return False
        logger.info("DatabaseScheduler: the periodic tasks changed; reloading them")
        self.setup_schedule()
        return True

    def _drop_stale_connection(self) -> None:
        """Django's ``close_old_connections`` for this beat's database (a connection past its
        ``CONN_MAX_AGE`` or broken is reopened); not inside a transaction (a test's)."""
        from django.db import connections

        connection = connections[self.using]
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()

    # -- ticking --------------------------------------------------------------------------------
    def tick(self) -> float:
        """Reload if the rows changed (a database error keeps the entries read last: beat goes
        on and tries again at the next check), then beat's tick."""
        from django.db import DatabaseError

        if time.monotonic() >= self._next_check:
            try:
                self.refresh()
            except DatabaseError as exc:
                logger.warning("DatabaseScheduler: could not reload the periodic tasks: %s", exc)
        wait_s = super().tick()
        return max(min(wait_s, self._next_check - time.monotonic()), 0.0)

    def apply_entry(self, entry: ScheduleEntry, scheduled_at: datetime) -> SentRun:
        from django.db import DatabaseError
        from django.db.models import F

        PeriodicTask, ScheduleChange = _model("PeriodicTask"), _model("ScheduleChange")
        pk, one_off, expires = self._rows.get(entry.name, (None, False, None))
        tasks = PeriodicTask.objects.using(self.using)
        if expires is not None and scheduled_at > expires:
            logger.info("DatabaseScheduler: %s expired at %s; not sent", entry.name,
                        expires.isoformat())
            self._disable(entry.name, pk)
            return SentRun(entry.name, entry.task, scheduled_at,
                           run_id(entry.name, scheduled_at), False)
        sent = super().apply_entry(entry, scheduled_at)
        try:  # the run is sent: bookkeeping that fails is logged, not a failed send
            if pk is not None and sent.published:
                tasks.filter(pk=pk).update(total_run_count=F("total_run_count") + 1)
            if one_off:
                self._disable(entry.name, pk)
                ScheduleChange.bump(using=self.using)
        except DatabaseError as exc:
            logger.warning("DatabaseScheduler: %s was sent; recording it failed: %s",
                           entry.name, exc)
        return sent

    def _disable(self, name: str, pk: int | None) -> None:
        """A one-off task that ran or a task past ``expires``: no more runs."""
        self._rows.pop(name, None)
        self.entries.pop(name, None)
        if pk is not None:
            _model("PeriodicTask").objects.using(self.using).filter(pk=pk).update(enabled=False)

    @property
    def info(self) -> str:
        return self.store.description


def row_from_spec(name: str, spec: Any, app: Celery, using: str = "default") -> Any:
    """A new (unsaved) ``PeriodicTask`` for one ``beat_schedule`` entry, its schedule row
    saved; None for a schedule with no row form."""
    CrontabSchedule, IntervalSchedule = _model("CrontabSchedule"), _model("IntervalSchedule")
    entry = spec if isinstance(spec, ScheduleEntry) else ScheduleEntry.from_spec(name, spec)
    sched = entry.schedule
    fields: dict[str, Any] = {}
    if isinstance(sched, crontab):
        zone = sched.__dict__.get("_tz")
        minute, hour, day_of_week, day_of_month, month_of_year = (
            _cron_field(value) for value in sched._orig)
        fields["crontab"] = CrontabSchedule.objects.using(using).create(
            minute=minute, hour=hour, day_of_week=day_of_week, day_of_month=day_of_month,
            month_of_year=month_of_year, timezone=str(getattr(zone, "key", "") or ""))
    elif isinstance(sched, schedule):
        every_us = sched.run_every // timedelta(microseconds=1)
        every, period = (every_us // 1_000_000, "seconds") if every_us % 1_000_000 == 0 else (
            every_us, "microseconds")
        fields["interval"] = IntervalSchedule.objects.using(using).create(
            every=every, period=period)
    else:
        logger.warning("DatabaseScheduler: beat_schedule[%r]: a %s has no database form; "
                       "it is not run by this scheduler", name, type(sched).__name__)
        return None
    options = entry.options
    expires = options.get("expires")
    return _model("PeriodicTask")(
        name=name, task=entry.task, args=json.dumps(list(entry.args)),
        kwargs=json.dumps(entry.kwargs), queue=str(options.get("queue") or ""),
        priority=options.get("priority"),
        expire_seconds=int(expires) if isinstance(expires, int | float) else None,
        description="from beat_schedule", **fields,
    )


def _cron_field(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return ",".join(str(part) for part in value)
