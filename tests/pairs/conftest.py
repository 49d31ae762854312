"""Fixtures of the pair matrix: for each broker x result-backend pair, one worker process on
the task module :mod:`tests.pairs.tasks`, shared by every scenario of the module (module
scope: pytest runs all scenarios of one pair, then the next pair)."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from celeriac.brokers import Capabilities
from tests.support.services import backend_url, broker_url
from tests.support.workers import WorkerProcess, wait_until

BROKERS = ("sqlite", "redis", "amqp", "postgresql")
BACKENDS = ("sqlite", "redis", "postgresql", "rpc")
#: rpc:// sends results back over AMQP: it pairs with the amqp broker only
PAIRS = [(b, r) for b in BROKERS for r in BACKENDS if r != "rpc" or b == "amqp"]
MODULE = "pairtasks"


@dataclass
class Pair:
    broker: str
    backend: str
    root: Path
    env: dict[str, str]
    tasks: ModuleType
    worker: WorkerProcess

    @property
    def app(self) -> Any:
        return self.tasks.app

    @property
    def capabilities(self) -> Capabilities:
        """The app's broker's (an AMQP broker declares priorities once the app asks for
        ``x-max-priority`` through ``task_queue_max_priority``)."""
        found: Capabilities = self.app.broker.capabilities
        return found

    def start_worker(self, **options: Any) -> WorkerProcess:
        """Another worker on this pair (stopped by the caller)."""
        return WorkerProcess(self.root, MODULE, env=self.env, **options).ready()

    def marks(self, name: str) -> list[str]:
        path = self.root / name
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(scope="module", params=PAIRS, ids=[f"{b}-{r}" for b, r in PAIRS])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Pair]:
    broker, backend = request.param
    root = tmp_path_factory.mktemp(f"pair-{broker}-{backend}")
    shutil.copy(Path(__file__).with_name("tasks.py"), root / f"{MODULE}.py")
    with ExitStack() as stack, pytest.MonkeyPatch.context() as patch:
        broker_at = stack.enter_context(broker_url(broker, root))
        backend_at = stack.enter_context(backend_url(backend, root, broker_at))
        env = {"PAIR_BROKER": broker_at, "PAIR_BACKEND": backend_at, "PAIR_DIR": str(root)}
        for key, value in env.items():
            patch.setenv(key, value)
        patch.syspath_prepend(str(root))
        sys.modules.pop(MODULE, None)
        import pairtasks  # type: ignore[import-not-found]

        stack.callback(sys.modules.pop, MODULE, None)
        stack.callback(pairtasks.app.close)
        worker = WorkerProcess(root, MODULE, hostname=f"pair-{uuid.uuid4().hex[:6]}@test",
                               env=env, pool="threads", concurrency=2, prefetch_multiplier=1)
        try:
            worker.ready()
            yield Pair(broker, backend, root, env, pairtasks, worker)
            assert worker.stop() == 0, worker.output()
        finally:
            worker.kill()


@pytest.fixture
def fresh_tag() -> str:
    return uuid.uuid4().hex[:8]


def hold_both_slots(pair: Pair, tag: str) -> list[Any]:
    """Occupy the shared worker's two pool slots until :func:`release` (tasks ``hold``)."""
    held = [pair.tasks.hold.delay(f"{tag}-{n}") for n in range(2)]
    wait_until(lambda: all((pair.root / f"started-{tag}-{n}").exists() for n in range(2)),
               30, "both hold tasks started")
    return held


def release(pair: Pair, tag: str) -> None:
    for n in range(2):
        (pair.root / f"release-{tag}-{n}").touch()

