"""``python -m bench throughput --broker redis://... --n 100000``

celeriac and Celery on the same Redis, the same ``add(x, y)`` task, one worker process each
(solo pool), measured one after the other in one run:

* ``delay()`` one by one (enqueue rate),
* bulk enqueue (celeriac: ``add.delay_many``; Celery has no bulk API, so its best is a
  ``group`` of signatures, sent by one producer),
* drain: worker start to last result stored, with N tasks waiting,
* round trip ``add.delay(1, 1).get()`` p50/p99 on a warm worker,
* the worker's peak RSS (VmHWM).
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from typing import Any

from bench._driver import run_driver

APPS = {
    "celeriac": textwrap.dedent(
        """
        from celeriac import Celery
        app = Celery("benchapp", broker={url!r}, backend={url!r})
        app.conf.worker_prefetch_multiplier = {prefetch}
        app.conf.worker_early_ack_batch = {early_ack_batch}

        @app.task
        def add(x, y):
            return x + y

        def bulk(n):
            return add.delay_many([(i, i) for i in range(n)])
        """
    ),
    "celery": textwrap.dedent(
        """
        from celery import Celery, group
        app = Celery("benchapp", broker={url!r}, backend={url!r})
        app.conf.worker_prefetch_multiplier = {prefetch}
        app.conf.worker_hijack_root_logger = False

        @app.task
        def add(x, y):
            return x + y

        def bulk(n):
            return group(add.s(i, i) for i in range(n)).apply_async().results
        """
    ),
}

WORKERS = {
    "celeriac": [
        sys.executable,
        "-m",
        "celeriac",
        "-A",
        "benchapp",
        "worker",
        "-P",
        "solo",
        "-l",
        "warning",
    ],
    "celery": [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "benchapp",
        "worker",
        "-P",
        "solo",
        "-l",
        "warning",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ],
}

DRIVER = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    sys.path.insert(0, os.getcwd())
    import redis
    from benchapp import app, add, bulk
    n, delay_n, rtt_n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    worker_cmd = json.loads(sys.argv[4]); url = sys.argv[5]
    r = redis.Redis.from_url(url)
    out = {}

    r.flushdb()
    t = time.perf_counter()
    for i in range(delay_n):
        add.delay(i, i)
    out["delay_per_s"] = delay_n / (time.perf_counter() - t)

    r.flushdb()
    t = time.perf_counter()
    results = bulk(n)
    out["bulk_per_s"] = n / (time.perf_counter() - t)

    t = time.perf_counter()
    worker = subprocess.Popen(worker_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        last = results[-1].get(timeout=1800)
        out["drain_per_s"] = n / (time.perf_counter() - t)
        assert last == 2 * (n - 1), last
        sample = results[:: max(1, n // 500)]
        out["sampled_success"] = sum(1 for x in sample if x.state == "SUCCESS") / len(sample)
        add.delay(1, 1).get(timeout=30)  # warm
        rtts = []
        for _ in range(rtt_n):
            t0 = time.perf_counter()
            add.delay(1, 1).get(timeout=30)
            rtts.append((time.perf_counter() - t0) * 1000)
        rtts.sort()
        out["rtt_p50_ms"] = rtts[len(rtts) // 2]
        out["rtt_p99_ms"] = rtts[int(len(rtts) * 0.99) - 1]
        with open(f"/proc/{worker.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    out["worker_peak_rss_mb"] = int(line.split()[1]) / 1024
    finally:
        worker.terminate()
        worker.wait(60)
    r.flushdb()
    print(json.dumps(out))
    """
)

COLUMNS = [
    ("delay()/s", "delay_per_s", "{:.0f}", True),
    ("bulk/s", "bulk_per_s", "{:.0f}", True),
    ("drain/s", "drain_per_s", "{:.0f}", True),
    ("rtt p50 ms", "rtt_p50_ms", "{:.2f}", False),
    ("rtt p99 ms", "rtt_p99_ms", "{:.2f}", False),
    ("peak RSS MB", "worker_peak_rss_mb", "{:.1f}", False),
]


def _run_one(
    system: str,
    url: str,
    n: int,
    delay_n: int,
    rtt_n: int,
    prefetch: int,
    early_ack_batch: int = 1,
) -> dict[str, Any]:
    source = APPS[system].format(url=url, prefetch=prefetch, early_ack_batch=early_ack_batch)
    return run_driver(
        system,
        source,
        DRIVER,
        [str(n), str(delay_n), str(rtt_n), json.dumps(WORKERS[system]), url],
        timeout_s=3600,
    )


def run(url: str, n: int, delay_n: int, rtt_n: int, prefetch: int, early_ack_batch: int) -> int:
    runs = [("celeriac", "celeriac", 1)]
    if early_ack_batch > 1:
        runs.append((f"celeriac eab={early_ack_batch}", "celeriac", early_ack_batch))
    runs.append(("celery", "celery", 1))
    rows = {}
    for label, system, batch in runs:
        print(f"running {label} ...", flush=True)
        rows[label] = _run_one(system, url, n, delay_n, rtt_n, prefetch, batch)
    theirs = rows["celery"]
    width = 22
    print(f"\n{'':<{width}}" + "".join(f"{title:>13}" for title, *_ in COLUMNS))
    for label, row in rows.items():
        cells = "".join(f"{fmt.format(row[key]):>13}" for _, key, fmt, _ in COLUMNS)
        print(f"{label:<{width}}{cells}")
    for label, ours in rows.items():
        if label == "celery":
            continue
        ratios = []
        for _, key, _, higher_better in COLUMNS:
            a, b = ours[key], theirs[key]
            ratios.append((a / b) if higher_better else (b / a))
        print(f"{label + ' vs Celery':<{width}}" + "".join(f"{r:>12.1f}x" for r in ratios))
    print(
        f"\n(n={n}, delay n={delay_n}, round trips={rtt_n}, prefetch multiplier={prefetch}, "
        f"solo pool, one worker process each, {url}, {time.strftime('%Y-%m-%d')}; "
        "ratios = how many times better: faster, lower latency, less memory; "
        "eab = worker_early_ack_batch)"
    )
    return 0
