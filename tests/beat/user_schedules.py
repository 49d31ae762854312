"""A user-defined schedule in Celery's style, shared by the schedule and scheduler tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from celeriac.schedules import schedstate, schedule


class every_other_minute(schedule):
    """Due on even minutes only, at most once a minute."""

    def __init__(self) -> None:
        super().__init__(timedelta(minutes=1))

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = self.now()
        if now - last_run_at >= self.run_every and now.minute % 2 == 0:
            return schedstate(True, 60.0)
        return schedstate(False, 5.0)
