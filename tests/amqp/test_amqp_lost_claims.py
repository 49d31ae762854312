"""Messages a worker had claimed but not started when its RabbitMQ connection was lost: RabbitMQ
gives them to the next claim (no leases), so the worker must not run its own copies too. A
real worker (threads, one slot, a window of 20) holds 19 tasks unstarted while the first runs;
RabbitMQ closes every connection of the vhost; once the worker noticed, the first task ends,
and each task then runs exactly once (early ack: the first one's ack reached RabbitMQ before
the cut; the 19 run from their redelivery)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from celeriac.exceptions import TransportError
from tests.amqp import support
from tests.redis.support import BACKEND_DB, drop_keys, redis_url
from tests.support.workers import WorkerProcess, wait_until

TASKS = '''
import os, time
from celeriac import Celery

app = Celery("lostclaims", broker=os.environ["T_BROKER"], backend=os.environ["T_BACKEND"])
RUNLOG = os.environ["T_RUNLOG"]
RELEASE = os.environ["T_RELEASE"]

@app.task
def step(i):
    fd = os.open(RUNLOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"%d\\n" % i)
    finally:
        os.close(fd)
    while not os.path.exists(RELEASE):  # each task holds the slot until the test says
        time.sleep(0.02)
    return i
'''
COUNT = 20


def _queue_size(app: Any) -> int | None:
    try:
        return int(app.broker.queue_size("celery"))
    except TransportError:  # this process's connection was cut too: the next call reconnects
        return None


def _wait_quiet(path: Path, quiet_s: float, timeout_s: float = 30) -> None:
    """Until ``path`` has not changed for ``quiet_s`` (no task started meanwhile)."""
    deadline = time.monotonic() + timeout_s
    last, since = path.read_text(), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.1)
        now = path.read_text()
        if now != last:
            last, since = now, time.monotonic()


def test_claims_of_a_lost_connection_are_not_run_besides_their_redelivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = support.amqp_url()
    vhost = unquote(urlsplit(broker).path[1:])
    support.run_vhost()  # needs rabbitmqctl
    backend = redis_url(BACKEND_DB)
    runlog, release = tmp_path / "runs.log", tmp_path / "release"
    (tmp_path / "lostclaims.py").write_text(TASKS)
    env = {"T_BROKER": broker, "T_BACKEND": backend, "T_RUNLOG": str(runlog),
           "T_RELEASE": str(release)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lostclaims", raising=False)
    import lostclaims  # type: ignore[import-not-found]

    worker = WorkerProcess(tmp_path, "lostclaims", env=env, pool="threads", concurrency=1,
                           prefetch_multiplier=COUNT)
    try:
        lostclaims.app.broker.purge(["celery"])
        worker.ready()
        results = lostclaims.step.delay_many([(i,) for i in range(COUNT)])
        wait_until(lambda: runlog.exists() and runlog.read_text().strip(), 20,
                   "the first task started")
        assert support.close_connections(vhost) >= 1
        # The worker notices (its heartbeat thread reads the consumer's connection, every third
        # of a lease) while the first task still holds the only slot and the other 19 wait,
        # claimed, unstarted. (A task started before the loss is noticed may run twice: its
        # early ack went nowhere; at least once.)
        wait_until(lambda: "heartbeat failed: Lost the connection" in worker.output(), 30,
                   "the worker's heartbeat noticed the loss")
        assert runlog.read_text().split() == ["0"]
        release.touch()
        assert [r.get(timeout=60) for r in results] == list(range(COUNT))
        # Copies would run after the results are stored: wait until nothing is left to run.
        wait_until(lambda: _queue_size(lostclaims.app) == 0, 20, "the queue empty")
        _wait_quiet(runlog, quiet_s=1.0)
        runs = Counter(int(line) for line in runlog.read_text().split())
        assert sorted(runs) == list(range(COUNT))
        assert {i: n for i, n in runs.items() if n > 1} == {}, worker.output()
        assert worker.stop() == 0, worker.output()
    finally:
        if worker.process.poll() is None:
            worker.kill()
        lostclaims.app.close()
        sys.modules.pop("lostclaims", None)
        drop_keys(backend)
