"""The task module every pair's worker runs (copied as ``pairtasks.py`` into the pair's
directory). Broker and backend come from PAIR_BROKER / PAIR_BACKEND; PAIR_DIR is a directory
the tasks write markers into (what ran, when, in which order)."""

import os
import time

from celeriac import Celery

DIR = os.environ["PAIR_DIR"]
app = Celery("pairtasks", broker=os.environ["PAIR_BROKER"], backend=os.environ["PAIR_BACKEND"])
if os.environ.get("PAIR_COORDINATION"):
    app.conf.coordination_url = os.environ["PAIR_COORDINATION"]
# a crashed worker's claim lapses quickly on brokers with leases
app.conf.worker_lease_seconds = 1.5
app.conf.worker_send_task_events = True
app.conf.task_queue_max_priority = 9
app.conf.result_extended = True


def _mark(name: str, text: str = "") -> None:
    with open(os.path.join(DIR, name), "a") as handle:
        handle.write(text + "\n")


@app.task
def add(x, y):
    return x + y


@app.task
def tsum(numbers):
    return sum(numbers)


@app.task
def boom(message):
    raise KeyError(message)


@app.task
def now():
    return time.time()


@app.task(bind=True, max_retries=3)
def retry_later(self, first_at=None):
    if self.request.retries == 0:
        raise self.retry(args=(time.time(),), countdown=1)
    return [first_at, time.time(), self.request.retries]


@app.task(bind=True, autoretry_for=(ValueError,), retry_kwargs={"max_retries": 4, "countdown": 0})
def flaky(self):
    if self.request.retries < 2:
        raise ValueError("not yet")
    return self.request.retries


@app.task
def hold(tag):
    """Runs until the file ``release-<tag>`` exists (it says ``started-<tag>`` first)."""
    _mark(f"started-{tag}")
    release = os.path.join(DIR, f"release-{tag}")
    deadline = time.monotonic() + 60
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.02)
    return tag


@app.task
def record(log, tag):
    _mark(log, tag)
    return tag


@app.task(bind=True, acks_late=True)
def slow(self, tag, seconds):
    _mark(f"slow-{tag}", f"{os.getpid()} {self.request.delivery_info.get('redelivered')}")
    time.sleep(seconds)
    return f"done {tag}"
