"""``python -m bench throughput --broker redis://... --n 100000``

celeriac and Celery on the same Redis, the same ``add(x, y)`` task, one worker process each
(solo pool), measured one after the other in one run:

* ``delay()`` one by one (enqueue rate),
* bulk enqueue (celeriac: ``add.delay_many``; Celery has no bulk API, so its best is a
  ``group`` of signatures, sent by one producer),
* drain: worker start to last result stored, with N tasks waiting,
* round trip ``add.delay(1, 1).get()`` p50/p99 on a warm worker,
* the worker's peak RSS (VmHWM).

Celery's worker runs as installed (``WORKER_COMMANDS`` in ``bench/_driver.py`` says why). Each
run keeps its queues and results under a key prefix of its own and deletes only those keys:
the database is never flushed, so runs sharing it do not wipe each other.
"""

from __future__ import annotations

import json
import textwrap
import time
from typing import Any

from bench import _driver, amqp
from bench._rounds import medians, print_table

# Runs in a child process beside benchapp.py; prints one JSON object. Queues and results live
# under the run's own key prefix; ``clear_results()`` deletes those keys (never FLUSHDB:
# other runs may share the database).
DRIVER = _driver.splice(
    textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    sys.path.insert(0, os.getcwd())
    from benchapp import app, add, bulk
    n, delay_n, rtt_n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    worker_cmd = json.loads(sys.argv[4]); backend = sys.argv[5]
    #CLEAR
    out = {}

    clear_results()
    t = time.perf_counter()
    for i in range(delay_n):
        add.delay(i, i)
    out["delay_per_s"] = delay_n / (time.perf_counter() - t)

    clear_results()
    t = time.perf_counter()
    results = bulk(n)
    out["bulk_per_s"] = n / (time.perf_counter() - t)

    #START
    try:
        #DRAIN
        #RTT
        #RSS
    finally:
        #STOP
        clear_results()
    print(json.dumps(out))
    """
    ),
    CLEAR=_driver.CLEAR_RESULTS_LINES,
    START=_driver.START_WORKER_LINES,
    STOP=_driver.STOP_WORKER_LINES,
    DRAIN=_driver.DRAIN_LINES,
    RTT=_driver.RTT_LINES,
    RSS=_driver.PEAK_RSS_LINES,
)

# the RabbitMQ run's columns: delay()/s, bulk/s, drain/s, rtt p50/p99, peak RSS
COLUMNS = amqp.COLUMNS


def _run_one(
    system: str,
    url: str,
    n: int,
    delay_n: int,
    rtt_n: int,
    prefetch: int,
    early_ack_batch: int = 1,
) -> dict[str, Any]:
    prefix = _driver.results_prefix(system)
    settings = [
        f"app.conf.worker_prefetch_multiplier = {prefetch}",
        # queues and results under the run's own prefix, deleted after
        f"app.conf.broker_transport_options = {{'global_keyprefix': {prefix!r}}}",
        f"app.conf.result_backend_transport_options = {{'global_keyprefix': {prefix!r}}}",
    ]
    if system == "celeriac":
        settings.append(f"app.conf.worker_early_ack_batch = {early_ack_batch}")
    source = _driver.add_app(system, url, url, settings, _driver.BULK[system])
    worker = json.dumps(_driver.WORKER_COMMANDS[system])
    args = [str(n), str(delay_n), str(rtt_n), worker, url]
    return _driver.run_driver(system, source, DRIVER, args, timeout_s=3600)


def run(url: str, n: int, delay_n: int, rtt_n: int, prefetch: int, early_ack_batch: int) -> int:
    runs = [("celeriac", "celeriac", 1)]
    if early_ack_batch > 1:
        runs.append((f"celeriac eab={early_ack_batch}", "celeriac", early_ack_batch))
    runs.append(("celery", "celery", 1))
    rows = {}
    for label, system, batch in runs:
        print(f"running {label} ...", flush=True)
        rows[label] = _run_one(system, url, n, delay_n, rtt_n, prefetch, batch)
    table = medians({label: [row] for label, row in rows.items()}, COLUMNS)
    print_table(table, COLUMNS, [(label, "celery") for label in rows if label != "celery"],
                width=30)
    print(
        f"\n(n={n}, delay n={delay_n}, round trips={rtt_n}, prefetch multiplier={prefetch}, "
        f"solo pool, one worker process each, {url}, {time.strftime('%Y-%m-%d')}; "
        "ratios = how many times better: faster, lower latency, less memory; "
        "eab = worker_early_ack_batch)"
    )
    return 0
