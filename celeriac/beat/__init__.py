"""beat: sends periodic tasks when they are due (Celery's ``celery.beat``).

``celeriac -A proj beat`` runs it alone, ``celeriac -A proj worker -B`` inside a worker. Entries
come from ``beat_schedule`` (old name ``CELERYBEAT_SCHEDULE``) and ``app.add_periodic_task``;
see docs/periodic-tasks.md and docs/decisions/0007-beat.md.
"""

from __future__ import annotations

from celeriac.beat.entry import ScheduleEntry
from celeriac.beat.scheduler import PersistentScheduler, Scheduler, SentRun, run_id
from celeriac.beat.service import Service, run, run_embedded

__all__ = [
    "PersistentScheduler",
    "ScheduleEntry",
    "Scheduler",
    "SentRun",
    "Service",
    "run",
    "run_embedded",
    "run_id",
]
