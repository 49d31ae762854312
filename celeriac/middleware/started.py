"""The STARTED state (``task_track_started`` / ``Task.track_started``), as a middleware.

Rule: the STARTED record is queued in ``before_process``, so the executor stores it before it
hands the job to the pool: a task that reads its own state sees STARTED. Tasks whose results
are ignored store nothing. The record's ``pid`` is the worker process that took the message
(its main process; Celery's prefork names the child), ``hostname`` the worker's node name.
"""

from __future__ import annotations

import os
from typing import Any

from celeriac import states
from celeriac.middleware.base import Middleware
from celeriac.result_meta import build_meta
from celeriac.task import Context


class StartedMiddleware(Middleware):
    """Stores STARTED for tasks that track it."""

    def before_process(self, executor: Any, job: Any) -> None:
        app = executor.app
        task = app._tasks.get(job.task_name)
        if task is None:
            return
        track = task.track_started
        if track is None:
            track = executor.track_started
        if not track:
            return
        request = job.request
        if task.ignore_result or request.get("ignore_result"):
            return
        task_id = request["id"]
        meta = build_meta(
            task_id,
            states.STARTED,
            {"pid": os.getpid(), "hostname": executor.hostname},
            request=Context(**request),
            extended=app.trace_settings().result_extended,
        )
        executor.add_records([(task_id, states.STARTED, app.encode_result(meta))],
                             before_start=True)
