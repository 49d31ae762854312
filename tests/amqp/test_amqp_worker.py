"""A real worker on RabbitMQ (results on Redis) while RabbitMQ closes every connection of the
worker's vhost twice mid-run: the worker logs the loss, reconnects with backoff, declares again
and resumes; every task whose send was confirmed runs and stores its result."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.amqp import support
from tests.redis.support import BACKEND_DB, drop_keys, redis_url
from tests.support.workers import WorkerProcess

TASKS = '''
import os, time
from celeriac import Celery

app = Celery("amqptasks", broker=os.environ["T_BROKER"], backend=os.environ["T_BACKEND"])

@app.task
def slow_add(x, y):
    time.sleep(0.002)
    return x + y
'''
COUNT = 600


def test_worker_survives_connection_loss_under_load(tmp_path: Path) -> None:
    broker = support.amqp_url()
    vhost = unquote(urlsplit(broker).path[1:])
    support.run_vhost()  # needs rabbitmqctl
    backend = redis_url(BACKEND_DB)
    (tmp_path / "amqptasks.py").write_text(TASKS)
    env = {"T_BROKER": broker, "T_BACKEND": backend}
    import os
    import sys

    os.environ.update(env)
    sys.path.insert(0, str(tmp_path))
    try:
        import amqptasks  # type: ignore[import-not-found]

        worker = WorkerProcess(tmp_path, "amqptasks", env=env, pool="threads", concurrency=4)
        try:
            worker.ready()
            results = [amqptasks.slow_add.delay(i, i) for i in range(COUNT // 2)]
            assert support.close_connections(vhost) >= 1
            results += [amqptasks.slow_add.delay(i, i) for i in range(COUNT // 2, COUNT)]
            time.sleep(0.2)
            assert support.close_connections(vhost) >= 1
            values = [r.get(timeout=60) for r in results]
            assert values == [2 * i for i in range(COUNT)]
            output = worker.output()
            assert "lost the broker" in output and "connection to the broker restored" in output
            assert worker.stop() == 0, worker.output()
        finally:
            if worker.process.poll() is None:
                worker.kill()
            amqptasks.app.close()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("amqptasks", None)
        for key in env:
            os.environ.pop(key, None)
        drop_keys(backend)
