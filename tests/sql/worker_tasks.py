"""Tasks for tests/sql/test_worker_results.py (copied as ``resulttasks.py`` into the test's
directory). Broker and result backend come from RESULTS_BROKER / RESULTS_BACKEND."""

import os

from celeriac import Celery

app = Celery(
    "resulttasks", broker=os.environ["RESULTS_BROKER"], backend=os.environ["RESULTS_BACKEND"]
)
app.conf.result_extended = True


@app.task
def add(x, y):
    return x + y


@app.task
def tsum(numbers):
    return sum(numbers)


@app.task
def boom(message):
    raise KeyError(message)
