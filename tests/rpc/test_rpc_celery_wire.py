"""rpc:// is wire-compatible with Celery's, both ways, on the real RabbitMQ: a Celery caller
reads what celeriac's worker side publishes (in process, and from a real celeriac worker that
runs the Celery client's tasks), and celeriac's caller reads what Celery's rpc backend (as its
worker stores results) publishes, failures included."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.backends.rpc import RPCBackend
from celeriac.result import AsyncResult
from celeriac.result_meta import build_meta, encode_meta
from tests.rpc.support import amqp_url
from tests.support.services import broker_url
from tests.support.workers import WorkerProcess

celery = pytest.importorskip("celery")


@pytest.fixture
def celery_app() -> Iterator[Any]:
    app = celery.Celery("wire", broker=amqp_url(), backend="rpc://", set_as_current=False)
    yield app
    consumer = app.backend.result_consumer
    if consumer._connection is not None:  # Celery's close() leaves the reader's connection
        consumer._connection.close()
    app.close()


def test_a_celery_caller_reads_celeriac_results(celery_app: Any) -> None:
    backend = celery_app.backend
    with celery_app.producer_or_acquire() as producer:
        backend.on_task_call(producer, "declare")  # Celery declares its reply queue on send
    ours = RPCBackend("rpc://", options={"broker_url": amqp_url()})
    try:
        task_id = str(uuid.uuid4())
        ours.note_reply_to(task_id, backend.oid)
        ours.store(task_id, states.SUCCESS,
                   encode_meta(build_meta(task_id, states.SUCCESS, {"a": [1, 2]})), None)
        assert celery_app.AsyncResult(task_id).get(timeout=10) == {"a": [1, 2]}
    finally:
        ours.close()


def test_celeriac_reads_celery_results_and_failures(celery_app: Any) -> None:
    from celery.app.task import Context

    app = Celery("wire-caller", broker="memory://wire-caller", backend="rpc://")
    app.conf.result_backend_transport_options = {"broker_url": amqp_url()}
    try:
        queue = app.backend.reply_queue()
        done, failed = str(uuid.uuid4()), str(uuid.uuid4())
        celery_app.backend.store_result(
            done, 42, states.SUCCESS, request=Context(id=done, reply_to=queue,
                                                      correlation_id=done))
        try:
            raise KeyError("k")
        except KeyError as exc:
            celery_app.backend.mark_as_failure(
                failed, exc, request=Context(id=failed, reply_to=queue, correlation_id=failed))
        assert AsyncResult(done, app=app).get(timeout=10) == 42
        with pytest.raises(KeyError, match="k"):
            AsyncResult(failed, app=app).get(timeout=10)
    finally:
        app.close()


WORKER_TASKS = '''
import os
from celeriac import Celery

app = Celery("wiretasks", broker=os.environ["WIRE_BROKER"], backend="rpc://")
app.conf.task_default_queue = os.environ["WIRE_QUEUE"]


@app.task(bind=True)
def add(self, x, y):
    self.update_state(state="PROGRESS", meta={"x": x})
    return x + y


@app.task
def boom():
    raise KeyError("from celeriac")
'''


def test_a_celery_client_gets_results_from_a_celeriac_worker(tmp_path: Path) -> None:
    (tmp_path / "wiretasks.py").write_text(WORKER_TASKS)
    queue = f"wire-{uuid.uuid4().hex[:8]}"
    with broker_url("amqp", tmp_path) as url:
        env = {"WIRE_BROKER": url, "WIRE_QUEUE": queue}
        with WorkerProcess(tmp_path, "wiretasks", env=env, pool="solo") as worker:
            worker.ready()
            client = celery.Celery("celery-client", broker=url, backend="rpc://",
                                   set_as_current=False)
            client.conf.task_default_queue = queue
            try:
                assert client.send_task("wiretasks.add", (2, 3)).get(timeout=20) == 5
                # compressed by kombu (task_compression / compression=): read by celeriac
                for name in ("zlib", "bzip2", "lzma"):
                    sent = client.send_task("wiretasks.add", (4, 5), compression=name)
                    assert sent.get(timeout=20) == 9, name
                with pytest.raises(KeyError, match="from celeriac"):
                    client.send_task("wiretasks.boom").get(timeout=20)
            finally:
                consumer = client.backend.result_consumer
                if consumer._connection is not None:
                    consumer._connection.close()
                client.close()
            worker.stop()
