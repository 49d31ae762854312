"""``python -m bench trees --before /tmp/before --after .``: one celeriac source tree against
another, on the same services, in one run.

For a redesign that must not slow anything down: each round runs the same driver once per tree
(alternating, so machine noise hits both alike) with ``PYTHONPATH`` pointing at that tree, on
Redis and on the embedded SQLite broker, default settings, solo worker:

* ``delay()`` one by one (enqueue rate),
* drain: worker start to last result stored, with N ``add`` tasks waiting,
* chain drain: the same with N two-step chains (continuations published by the worker),
* round trip ``add.delay(1, 1).get()`` p50 on a warm worker.

The table shows each tree's median over the rounds and after/before ratios (above 1 is
better for rates; below 1 is better for times).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import redis

from bench._driver import results_prefix

APP = textwrap.dedent(
    """
    from celeriac import Celery, chain
    app = Celery("benchapp", broker={url!r}, backend={url!r})

    @app.task
    def add(x, y):
        return x + y
    """
)

DRIVER = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from benchapp import app, add
    from celeriac import chain
    n, delay_n, rtt_n, url = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    worker_cmd = [sys.executable, "-m", "celeriac", "-A", "benchapp", "worker", "-P", "solo",
                  "-l", "warning"]
    out = {}

    def reset():
        app.broker.purge(["celery"])

    def drain(results, expect):
        t = time.perf_counter()
        worker = subprocess.Popen(worker_cmd, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            # A fine polling interval: SQLite's get() backs off up to 0.5 s between reads,
            # which would round every drain time up to the next half second.
            last = results[-1].get(timeout=1800, interval=0.002)
            rate = len(results) / (time.perf_counter() - t)
            assert last == expect, last
        finally:
            worker.terminate()
            worker.wait(60)
        return rate

    reset()
    t = time.perf_counter()
    for i in range(delay_n):
        add.delay(i, i)
    out["delay_per_s"] = delay_n / (time.perf_counter() - t)
    reset()
    results = [add.delay(i, i) for i in range(n)]
    out["drain_per_s"] = drain(results, 2 * (n - 1))
    reset()
    results = [chain(add.s(i, i), add.s(1)).delay() for i in range(n // 2)]
    out["chain_drain_per_s"] = drain(results, 2 * (n // 2 - 1) + 1)
    worker = subprocess.Popen(worker_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        add.delay(1, 1).get(timeout=30)
        rtts = []
        for _ in range(rtt_n):
            t0 = time.perf_counter()
            add.delay(1, 1).get(timeout=30)
            rtts.append((time.perf_counter() - t0) * 1000)
        rtts.sort()
        out["rtt_p50_ms"] = rtts[len(rtts) // 2]
    finally:
        worker.terminate()
        worker.wait(60)
    print(json.dumps(out))
    """
)

COLUMNS = [
    ("delay()/s", "delay_per_s"),
    ("drain/s", "drain_per_s"),
    ("chain drain/s", "chain_drain_per_s"),
    ("rtt p50 ms", "rtt_p50_ms"),
]


def _run(tree: Path, url: str, n: int, delay_n: int, rtt_n: int) -> dict[str, Any]:
    """One driver run of ``tree``; on Redis under a key prefix of its own, whose keys are
    deleted after (the database is shared: never flushed, nothing outside the prefix purged)."""
    prefix = results_prefix("trees")
    try:
        return _run_in(tree, url, n, delay_n, rtt_n, prefix)
    finally:
        if url.startswith(("redis://", "rediss://")):
            client = redis.Redis.from_url(url)
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            for i in range(0, len(keys), 1000):
                client.delete(*keys[i : i + 1000])


def _run_in(tree: Path, url: str, n: int, delay_n: int, rtt_n: int,
            prefix: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if url == "sqlite":
            url = f"sqlite:///{work / 'bench.db'}"
        else:
            url += ("&" if "?" in url else "?") + f"global_keyprefix={prefix}"
        (work / "benchapp.py").write_text(APP.format(url=url))
        (work / "driver.py").write_text(DRIVER)
        proc = subprocess.run(
            [sys.executable, "driver.py", str(n), str(delay_n), str(rtt_n), url],
            cwd=work,
            env=dict(os.environ, PYTHONPATH=f"{work}{os.pathsep}{tree}"),
            capture_output=True,
            text=True,
            timeout=3600,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{tree} on {url} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run(before: str, after: str, redis_url: str, n: int, delay_n: int, rtt_n: int,
        rounds: int, sqlite: bool = True) -> int:
    trees = {"before": Path(before).resolve(), "after": Path(after).resolve()}
    services = ([("SQLite", "sqlite")] if sqlite else []) + (
        [("Redis", redis_url)] if redis_url else [])
    print(f"before = {trees['before']}\nafter  = {trees['after']}")
    print(f"n={n} delay_n={delay_n} rtt_n={rtt_n} rounds={rounds}, default settings, solo\n")
    for label, url in services:
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for _ in range(rounds):
            for name, tree in trees.items():
                runs[name].append(_run(tree, url, n, delay_n, rtt_n))
        print(f"{label}:")
        print(f"| {'':8} | " + " | ".join(c[0] for c in COLUMNS) + " |")
        print("|---|" + "---:|" * len(COLUMNS))
        medians = {
            name: {key: statistics.median(r[key] for r in results) for _, key in COLUMNS}
            for name, results in runs.items()
        }
        for name in trees:
            cells = [f"{medians[name][key]:.2f}" if "ms" in title else f"{medians[name][key]:.0f}"
                     for title, key in COLUMNS]
            print(f"| {name:8} | " + " | ".join(cells) + " |")
        ratios = [f"{medians['after'][key] / medians['before'][key]:.2f}x" for _, key in COLUMNS]
        print("| after/before | " + " | ".join(ratios) + " |\n")
    return 0
