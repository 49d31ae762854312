"""The celeriac app of the ``django.tasks`` tests (``-A tests.django.tasks_app`` for the worker):
SQLite broker and results in the test run's directory, so the test and its worker share them."""

from __future__ import annotations

import os

from celeriac import Celery

_DIR = os.environ["CELERIAC_DJANGO_TEST_DIR"]

app = Celery(
    "djtasks",
    broker=f"sqlite:///{os.path.join(_DIR, 'tasks-broker.db')}",
    backend=f"sqlite:///{os.path.join(_DIR, 'tasks-results.db')}",
)
# The worker defines the Django tasks by importing their module (and finds the runner task,
# celeriac.contrib.django.tasks, through the installed app "celeriac.contrib.django").
app.conf.imports = ("tests.django.tasks_funcs",)
app.autodiscover_tasks()
