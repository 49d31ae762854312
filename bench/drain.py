"""Drain rate: enqueue N trivial ``add`` tasks, start one worker process, time until the last
result is stored. Each system runs in its own subprocess with a fresh store."""

from __future__ import annotations

import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench._driver import run_driver

CELERIAC_APP = textwrap.dedent(
    """
    from celeriac import Celery
    app = Celery("benchapp", broker={broker!r}, backend={backend!r})
    app.conf.worker_prefetch_multiplier = 64

    @app.task
    def add(x, y):
        return x + y
    """
)

CELERY_APP = textwrap.dedent(
    """
    from celery import Celery
    app = Celery("benchapp", broker={broker!r}, backend={backend!r})
    app.conf.worker_prefetch_multiplier = 64
    app.conf.worker_hijack_root_logger = False

    @app.task
    def add(x, y):
        return x + y
    """
)

# Runs in a child process: enqueue, start the worker, wait for the last result.
DRIVER = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    sys.path.insert(0, os.getcwd())
    from benchapp import app, add
    n = int(sys.argv[1]); worker_cmd = json.loads(sys.argv[2])
    if hasattr(app, "control"):
        try:
            app.control.purge()
        except Exception:
            pass
    t0 = time.perf_counter()
    results = [add.delay(i, i) for i in range(n)]
    enqueue_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    worker = subprocess.Popen(worker_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        last = results[-1].get(timeout=600)
        drain_s = time.perf_counter() - t1
        assert last == 2 * (n - 1), last
        ok = sum(1 for r in results[:: max(1, n // 200)] if r.state == "SUCCESS")
    finally:
        worker.terminate()
        worker.wait(30)
    print(json.dumps({"n": n, "enqueue_s": enqueue_s, "drain_s": drain_s, "sampled_ok": ok}))
    """
)


def _run(system: str, app_src: str, n: int, worker_cmd: list[str], workdir: Path) -> dict:
    data = run_driver(system, app_src, DRIVER, [str(n), json.dumps(worker_cmd)], 900, workdir)
    data["system"] = system
    return data


def _celeriac_worker() -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; sys.path.insert(0, '.'); from benchapp import app; "
        "from celeriac.worker import Worker; Worker(app, pool='solo').start()",
    ]


def _celery_worker() -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "benchapp",
        "worker",
        "-P",
        "solo",
        "-c",
        "1",
        "-l",
        "warning",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def _redis_ok(url: str) -> bool:
    try:
        import redis

        redis.Redis.from_url(url).ping()
        return True
    except Exception:
        return False


def run_sqlite(n: int, celery_n: int, redis_url: str) -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "celeriac"
        d.mkdir()
        url = f"sqlite:///{d / 'bench.db'}"
        rows.append(
            _run(
                "celeriac sqlite",
                CELERIAC_APP.format(broker=url, backend=url),
                n,
                _celeriac_worker(),
                d,
            )
        )
        d = Path(tmp) / "celery-sqla"
        d.mkdir()
        rows.append(
            _run(
                "Celery sqla+sqlite",
                CELERY_APP.format(
                    broker=f"sqla+sqlite:///{d / 'broker.db'}",
                    backend=f"db+sqlite:///{d / 'results.db'}",
                ),
                celery_n,
                _celery_worker(),
                d,
            )
        )
        if redis_url and _redis_ok(redis_url):
            import redis

            redis.Redis.from_url(redis_url).flushdb()
            d = Path(tmp) / "celery-redis"
            d.mkdir()
            rows.append(
                _run(
                    "Celery redis",
                    CELERY_APP.format(broker=redis_url, backend=redis_url),
                    celery_n,
                    _celery_worker(),
                    d,
                )
            )
            redis.Redis.from_url(redis_url).flushdb()
    base = rows[0]
    base_rate = base["n"] / base["drain_s"]
    print(f"{'system':<22}{'tasks':>8}{'delay()/s':>12}{'drain/s':>10}{'celeriac x':>12}")
    for row in rows:
        rate = row["n"] / row["drain_s"]
        ratio = base_rate / rate
        print(
            f"{row['system']:<22}{row['n']:>8}{row['n'] / row['enqueue_s']:>12.0f}"
            f"{rate:>10.0f}{ratio:>12.1f}"
        )
    print(
        f"\n(drain = one worker process, solo pool, from worker start to last result stored; "
        f"measured {time.strftime('%Y-%m-%d')})"
    )
    return 0
