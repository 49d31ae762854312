"""rpc:// end to end: a real worker process runs the tasks and its results come back over
RabbitMQ to this process (the caller). The broker that carries the tasks is RabbitMQ itself
(amqp://, as Celery users run rpc://) and Redis (the worker path does not depend on the
broker: the reply goes to the AMQP server named in ``result_backend_transport_options``).
Each pool kind stores records from a different place: solo and threads in the worker process
(threads: update_state from a pool thread), prefork in a child process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, chain, chord, states
from celeriac.exceptions import TimeoutError
from celeriac.result import AsyncResult
from tests.rpc.support import amqp_url
from tests.support.services import broker_url
from tests.support.workers import WorkerProcess, wait_until

TASKS = '''
import os, pathlib, time
from celeriac import Celery

app = Celery("rpctasks", broker=os.environ["RPC_BROKER"], backend="rpc://")
if os.environ.get("RPC_AMQP"):  # tasks on another broker: results over this AMQP server
    app.conf.result_backend_transport_options = {"broker_url": os.environ["RPC_AMQP"]}
app.conf.task_track_started = True
DIR = pathlib.Path(os.environ["RPC_DIR"])


@app.task
def add(x, y):
    return x + y


@app.task
def boom(message):
    raise KeyError(message)


def _wait_for(gate):
    deadline = time.time() + 30
    while not (DIR / gate).exists() and time.time() < deadline:
        time.sleep(0.02)


@app.task(bind=True)
def progress(self, gate):
    _wait_for(gate + "-1")
    self.update_state(state="PROGRESS", meta={"done": 1})
    _wait_for(gate + "-2")
    return "finished"


@app.task(bind=True, max_retries=2)
def flaky(self):
    if self.request.retries == 0:
        raise self.retry(countdown=0.1)
    return self.request.retries
'''

CASES = [("amqp", "solo"), ("amqp", "threads"), ("amqp", "prefork"), ("redis", "prefork")]


@dataclass
class Setup:
    root: Path
    broker: str
    worker: WorkerProcess

    def client(self) -> Celery:
        app = Celery("rpc-caller", broker=self.broker, backend="rpc://")
        if not self.broker.startswith("amqp"):
            app.conf.result_backend_transport_options = {"broker_url": amqp_url()}
        return app


@pytest.fixture(scope="module", params=CASES, ids=[f"{b}-{p}" for b, p in CASES])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Setup]:
    broker_kind, pool = request.param
    root = tmp_path_factory.mktemp(f"rpc-{broker_kind}-{pool}")
    (root / "rpctasks.py").write_text(TASKS)
    with ExitStack() as stack:
        broker = stack.enter_context(broker_url(broker_kind, root))
        env = {"RPC_BROKER": broker, "RPC_DIR": str(root),
               # rpc:// answers over the broker's own URL when it is AMQP
               "RPC_AMQP": "" if broker.startswith("amqp") else amqp_url()}
        worker = stack.enter_context(
            WorkerProcess(root, "rpctasks", env=env, pool=pool, concurrency=2))
        worker.ready()
        yield Setup(root, broker, worker)
        worker.stop()


@pytest.fixture
def client(setup: Setup) -> Iterator[Celery]:
    app = setup.client()
    yield app
    app.close()


def test_delay_get_returns_the_result(client: Celery) -> None:
    results = [client.send_task("rpctasks.add", (n, n)) for n in range(20)]
    assert [r.get(timeout=20) for r in results] == [2 * n for n in range(20)]
    assert results[0].get(timeout=1) == 0  # read again, from this process's copy
    assert results[0].state == states.SUCCESS


def test_started_and_progress_states_reach_the_caller(client: Celery, setup: Setup) -> None:
    gate = f"gate-{uuid.uuid4().hex}"
    result = client.send_task("rpctasks.progress", (gate,))
    wait_until(lambda: result.state == states.STARTED, 20, "STARTED state")
    (setup.root / f"{gate}-1").touch()
    wait_until(lambda: result.state == "PROGRESS", 20, "PROGRESS state")
    assert result.info == {"done": 1}
    (setup.root / f"{gate}-2").touch()
    assert result.get(timeout=20) == "finished"


def test_an_exception_propagates_with_its_type(client: Celery) -> None:
    result = client.send_task("rpctasks.boom", ("nope",))
    with pytest.raises(KeyError, match="nope"):
        result.get(timeout=20)
    assert result.state == states.FAILURE


def test_a_retried_task_answers_the_original_caller(client: Celery) -> None:
    assert client.send_task("rpctasks.flaky").get(timeout=20) == 1


def test_get_timeout_is_clean(client: Celery) -> None:
    result = AsyncResult(str(uuid.uuid4()), app=client)
    with pytest.raises(TimeoutError):
        result.get(timeout=0.5)


def test_two_callers_each_get_their_own(setup: Setup) -> None:
    one, two = setup.client(), setup.client()
    try:
        mine = [one.send_task("rpctasks.add", (n, 1)) for n in range(5)]
        theirs = [two.send_task("rpctasks.add", (n, 100)) for n in range(5)]
        assert [r.get(timeout=20) for r in theirs] == [n + 100 for n in range(5)]
        assert [r.get(timeout=20) for r in mine] == [n + 1 for n in range(5)]
        with pytest.raises(TimeoutError):
            AsyncResult(theirs[0].id, app=one).get(timeout=0.3)
    finally:
        one.close()
        two.close()


def test_a_chain_answers_the_caller(client: Celery) -> None:
    add: Any = client.signature("rpctasks.add")
    workflow = chain(add.clone((1, 2)), add.clone((10,)), add.clone((100,)))
    assert workflow.apply_async().get(timeout=20) == 113


def test_a_chord_from_a_client_with_another_backend_never_stops_the_worker(
    tmp_path: Path,
) -> None:
    """A client that stores results in Redis sends a chord to an rpc:// worker: the worker
    cannot count the members, logs that, and goes on serving rpc:// callers."""
    from tests.redis.support import BACKEND_DB, drop_keys, redis_url

    (tmp_path / "rpctasks.py").write_text(TASKS)
    results_url = redis_url(BACKEND_DB)
    with ExitStack() as stack:
        broker = stack.enter_context(broker_url("redis", tmp_path))
        env = {"RPC_BROKER": broker, "RPC_DIR": str(tmp_path), "RPC_AMQP": amqp_url()}
        worker = stack.enter_context(WorkerProcess(tmp_path, "rpctasks", env=env, pool="solo"))
        worker.ready()
        setup = Setup(tmp_path, broker, worker)
        other = Celery("redis-caller", broker=broker, backend=results_url)
        client = setup.client()
        try:
            add: Any = other.signature("rpctasks.add")
            chord([add.clone((1, 1)), add.clone((2, 2))], add.clone((3,))).apply_async()
            wait_until(lambda: "cannot count a finished member" in worker.output(), 30,
                       "the worker's log of the uncounted chord member")
            assert client.send_task("rpctasks.add", (5, 5)).get(timeout=20) == 10
        finally:
            other.close()
            client.close()
            drop_keys(results_url)
        worker.stop()
