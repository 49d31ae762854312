"""A celeriac app on the test settings whose tasks use the PostgreSQL database; it opens a
connection at import time, in the worker's main process, before the pool forks (run by
tests/django/test_fixup_postgres.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import connections

from celeriac import Celery

# Persistent connections (the case where a shared socket would bite): the middleware does not
# close a healthy one before a task, so only the fork handling keeps children off the parent's.
settings.DATABASES["postgres"]["CONN_MAX_AGE"] = None

app = Celery("pg_project")
app.config_from_object("django.conf:settings", namespace="CELERY")


def backend_pid() -> int:
    with connections["postgres"].cursor() as cursor:
        cursor.execute("select pg_backend_pid()")
        return int(cursor.fetchone()[0])


#: the session the main process opened before forking
IMPORT_PID = backend_pid()


@app.task(name="pg.pids")
def pids() -> tuple[int, int]:
    """(this task's database session, the one opened at import) in the child running it."""
    return backend_pid(), IMPORT_PID
