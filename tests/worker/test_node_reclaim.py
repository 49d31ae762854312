"""Crash costs little (issue 8, item 4): after a worker is SIGKILLed, a restarted worker with the
same node name (``-n``) runs its held acks_late tasks at once instead of one lease later; a
worker with another name gets them once the lease runs out; a live duplicate keeps its own.
Real worker processes, on SQLite and on Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from celeriac.result import AsyncResult
from tests.redis.support import (
    HOST,
    PORT,
    REDIS_BROKER_DB,
    SPARE_DB,
    drop_keys,
    redis_url,
    unique_prefix,
)

ROOT = Path(__file__).resolve().parents[2]
#: the Redis database of this module's tests (prefixed keys, deleted afterwards)
REDIS_DB = SPARE_DB

TASKS = textwrap.dedent(
    """
    import os, time
    from celeriac import Celery, signals

    app = Celery("reclaimy", broker=os.environ["RECLAIM_URL"], backend=os.environ["RECLAIM_URL"])
    if os.environ.get("RECLAIM_LEASE_S"):
        app.conf.worker_lease_seconds = float(os.environ["RECLAIM_LEASE_S"])
    MARKERS = os.environ["RECLAIM_MARKERS"]

    @signals.worker_ready.connect
    def _ready(sender, **kwargs):
        open(os.path.join(MARKERS, f"ready-{os.getpid()}"), "w").close()

    @app.task(bind=True, acks_late=True)
    def hold(self, i):
        redelivered = bool(self.request.delivery_info.get("redelivered"))
        with open(os.path.join(MARKERS, f"started-{i}-{os.getpid()}"), "w") as fh:
            fh.write(str(redelivered))
        if not redelivered:
            time.sleep(120)
        return i
    """
)

# A fixed window (Celery's 4): the adaptive default would give the reserved task back to the
# queue while the first one runs (docs/worker.md, Prefetch), and these tests need it held.
WORKER = (
    "import sys; sys.path.insert(0, {root!r}); import reclaimy; "
    "from celeriac.worker import Worker; "
    "sys.exit(Worker(reclaimy.app, pool='solo', hostname={name!r}, "
    "prefetch_multiplier=4).start())"
)


def _url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'broker.db'}"
    redis_url(REDIS_BROKER_DB)  # skips (fails in CI) without a server
    return f"redis://{HOST}:{PORT}/{REDIS_DB}?global_keyprefix={unique_prefix()}"


class Scene:
    """The tasks module, its URL and marker directory, and the worker processes started."""

    def __init__(self, root: Path, url: str, lease_s: float | None, module: ModuleType) -> None:
        self.root = root
        self.url = url
        self.markers = root / "markers"
        self.env = dict(os.environ, RECLAIM_URL=url, RECLAIM_LEASE_S=str(lease_s or ""),
                        RECLAIM_MARKERS=str(self.markers),
                        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.module = module
        self.workers: list[subprocess.Popen[bytes]] = []

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        code = WORKER.format(root=str(self.root), name=name)
        with open(self.root / f"worker-{len(self.workers)}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-c", code], env=self.env, cwd=self.root,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(proc)
        return proc

    def started(self, i: int) -> list[Path]:
        return sorted(self.markers.glob(f"started-{i}-*"))

    def ready(self, proc: subprocess.Popen[bytes]) -> bool:
        return (self.markers / f"ready-{proc.pid}").exists()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("*.log")))

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


SceneFactory = Callable[[float | None], Scene]


def _until(predicate: Callable[[], object], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


@pytest.fixture(params=["sqlite", "redis"])
def scene_factory(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[SceneFactory]:
    url = _url(request.param, tmp_path)
    scenes: list[Scene] = []
    (tmp_path / "reclaimy.py").write_text(TASKS)
    (tmp_path / "markers").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(lease_s: float | None) -> Scene:
        """``lease_s``: ``worker_lease_seconds``, None for the default."""
        monkeypatch.setenv("RECLAIM_URL", url)
        monkeypatch.setenv("RECLAIM_LEASE_S", str(lease_s or ""))
        monkeypatch.setenv("RECLAIM_MARKERS", str(tmp_path / "markers"))
        import reclaimy  # type: ignore[import-not-found]

        scene = Scene(tmp_path, url, lease_s, reclaimy)
        scenes.append(scene)
        return scene

    yield make
    for scene in scenes:
        for proc in scene.workers:
            Scene.kill(proc)
    module = sys.modules.pop("reclaimy", None)
    if module is not None:
        module.app.close()
    if request.param == "redis":
        drop_keys(url)


def _held_then_killed(scene: Scene, name: str) -> list[AsyncResult]:
    """Two acks_late tasks held by worker ``name`` (one running, one reserved), then the worker
    SIGKILLed; returns their results."""
    results = [scene.module.hold.delay(i) for i in (1, 2)]
    first = scene.worker(name)
    assert _until(lambda: scene.started(1), 30), scene.logs()
    Scene.kill(first)
    assert [r.state for r in results] == ["PENDING", "PENDING"]
    return results


def test_restart_with_the_same_name_runs_held_tasks_at_once(
    scene_factory: SceneFactory
) -> None:
    # A 30 s lease: anything done within a few seconds was reclaimed, not waited out.
    scene = scene_factory(30.0)
    results = _held_then_killed(scene, "same@reclaim")
    second = scene.worker("same@reclaim")
    assert _until(lambda: scene.ready(second), 30), scene.logs()
    ready_at = time.monotonic()
    assert [r.get(timeout=15) for r in results] == [1, 2], scene.logs()
    assert time.monotonic() - ready_at < 10, "came back by lease expiry, not by reclaim"
    assert [p.read_text() for p in scene.started(1)] == ["False", "True"]
    # The reserved one never started before the kill, and now ran once.
    assert len(scene.started(2)) == 1


def test_another_name_gets_them_once_the_default_lease_runs_out(
    scene_factory: SceneFactory
) -> None:
    # The default lease is 10 s: back within about that of the last heartbeat (not 30 s).
    scene = scene_factory(None)
    results = _held_then_killed(scene, "gone@reclaim")
    scene.worker("other@reclaim")
    assert [r.get(timeout=20) for r in results] == [1, 2], scene.logs()


def test_a_live_duplicate_keeps_what_it_holds(scene_factory: SceneFactory) -> None:
    scene = scene_factory(30.0)
    results = [scene.module.hold.delay(i) for i in (1, 2)]
    first = scene.worker("twin@reclaim")
    assert _until(lambda: scene.started(1), 30), scene.logs()
    twin = scene.worker("twin@reclaim")
    assert _until(lambda: scene.ready(twin), 30), scene.logs()
    time.sleep(2.0)  # room for a wrong reclaim to show
    assert first.poll() is None
    assert [p.name for p in scene.started(1)] == [f"started-1-{first.pid}"]
    assert scene.started(2) == []
    assert [r.state for r in results] == ["PENDING", "PENDING"]
