"""``python -m bench canvas --broker redis://... --n 10000``

celeriac and Celery on the same Redis (broker and result backend), the same ``add(x, y)`` and
``tsum(numbers)`` tasks, one warm worker process each (solo pool), measured one after the other
in one run:

* group: ``group(add.s(i, i) for i in range(n)).apply_async()`` until ``.get()`` returns all n
  results (and the send alone),
* chord: ``chord((add.s(i, i) for i in range(n)), tsum.s()).apply_async()`` until ``.get()``
  returns the sum (and the send alone),
* the same chord again, waited for by polling ``res.ready()`` every 10 ms before ``.get()``:
  Celery's ``get()`` on a chord result re-reads every header result's state on each wait
  interval in the client, which on a small machine starves its worker; this row shows the
  chord itself without that client cost.

The worker is started first and the measurement begins once a trivial task has round-tripped.
The Redis DB is flushed before and after each system (never while a worker runs: Celery's
Redis transport keeps its queue bindings in that DB).
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from typing import Any

from bench._driver import WORKER_COMMANDS as WORKERS
from bench._driver import run_driver

APPS = {
    "celeriac": textwrap.dedent(
        """
        from celeriac import Celery, chord, group
        app = Celery("benchapp", broker={url!r}, backend={url!r})
        app.conf.worker_prefetch_multiplier = {prefetch}

        @app.task
        def add(x, y):
            return x + y

        @app.task
        def tsum(numbers):
            return sum(numbers)
        """
    ),
    "celery": textwrap.dedent(
        """
        from celery import Celery, chord, group
        app = Celery("benchapp", broker={url!r}, backend={url!r})
        app.conf.worker_prefetch_multiplier = {prefetch}
        app.conf.worker_hijack_root_logger = False

        @app.task
        def add(x, y):
            return x + y

        @app.task
        def tsum(numbers):
            return sum(numbers)
        """
    ),
}

DRIVER = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    sys.path.insert(0, os.getcwd())
    import redis
    from benchapp import add, chord, group, tsum
    n, timeout = int(sys.argv[1]), float(sys.argv[2])
    worker_cmd = json.loads(sys.argv[3]); url = sys.argv[4]
    r = redis.Redis.from_url(url)
    out = {}

    r.flushdb()
    worker = subprocess.Popen(worker_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t = time.perf_counter()
        assert add.delay(1, 1).get(timeout=120) == 2
        out["warmup_s"] = time.perf_counter() - t
        for _ in range(20):
            add.delay(1, 1).get(timeout=30)

        t = time.perf_counter()
        res = group(add.s(i, i) for i in range(n)).apply_async()
        out["group_send_s"] = time.perf_counter() - t
        values = res.get(timeout=timeout)
        out["group_s"] = time.perf_counter() - t
        assert values == [2 * i for i in range(n)], "group results differ"

        t = time.perf_counter()
        res = chord((add.s(i, i) for i in range(n)), tsum.s()).apply_async()
        out["chord_send_s"] = time.perf_counter() - t
        total = res.get(timeout=timeout)
        out["chord_s"] = time.perf_counter() - t
        assert total == n * (n - 1), total

        # The same chord, waited for by polling ready() (one GET of the body's result) before
        # get(): Celery's get() on a chord result re-reads every header result on each wait
        # interval (AsyncResult._maybe_reraise_parent_error), which this leaves out.
        t = time.perf_counter()
        res = chord((add.s(i, i) for i in range(n)), tsum.s()).apply_async()
        while not res.ready():
            if time.perf_counter() - t > timeout:
                raise TimeoutError("chord (polled)")
            time.sleep(0.01)
        total = res.get(timeout=timeout)
        out["chord_polled_s"] = time.perf_counter() - t
        assert total == n * (n - 1), total
    finally:
        worker.terminate()
        worker.wait(60)
    r.flushdb()
    print(json.dumps(out))
    """
)

ROWS = [
    ("group send", "group_send_s"),
    ("group send -> get()", "group_s"),
    ("chord send", "chord_send_s"),
    ("chord send -> get()", "chord_s"),
    ("chord, ready() polled", "chord_polled_s"),
]


def _run_one(system: str, url: str, n: int, prefetch: int, timeout: float) -> dict[str, Any]:
    return run_driver(
        system,
        APPS[system].format(url=url, prefetch=prefetch),
        DRIVER,
        [str(n), str(timeout), json.dumps(WORKERS[system]), url],
        timeout_s=3 * timeout + 300,
    )


def run(url: str, n: int, prefetch: int, timeout: float, argv: list[str] | None = None) -> int:
    rows = {}
    for system in ("celeriac", "celery"):
        print(f"running {system} ...", flush=True)
        rows[system] = _run_one(system, url, n, prefetch, timeout)
    ours, theirs = rows["celeriac"], rows["celery"]
    width = 22
    print(f"\n{'n=' + str(n):<{width}}{'celeriac s':>13}{'Celery s':>13}{'ratio':>10}")
    for title, key in ROWS:
        a, b = ours[key], theirs[key]
        print(f"{title:<{width}}{a:>13.3f}{b:>13.3f}{b / a:>9.1f}x")
    command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
    print(
        f"\n(n={n}, prefetch multiplier={prefetch}, solo pool, one warm worker process each, "
        f"broker and result backend {url}, {time.strftime('%Y-%m-%d')}; "
        "times include building the signatures; 'ready() polled': a second chord waited for "
        "by polling res.ready() every 10 ms, then get(); ratio = Celery time / celeriac time)\n"
        f"command: {command}"
    )
    return 0
