"""``python -m bench throughput --broker amqp://guest:guest@127.0.0.1:5672// --backend
redis://127.0.0.1:6379/15 --n 20000 --rounds 3``

celeriac and Celery (``pyamqp://``) on the same RabbitMQ, results on the same Redis, the same
``add(x, y)`` task, one worker process each (solo pool, otherwise as installed: see
``WORKER_COMMANDS`` in ``bench/_driver.py``). The configurations run once in every round,
interleaved (see ``bench/_rounds.py``): each system with its default settings, then each tuned
(``worker_prefetch_multiplier = 64``; celeriac also with ``worker_early_ack_batch``). Per run:

* ``delay()`` one by one (celeriac waits for the publisher confirm of each; Celery's default
  ``pyamqp://`` does not ask for confirms),
* drain: N tasks published first (celeriac ``add.delay_many``, Celery a ``group``), then one
  worker process started; worker start to last result stored, and the worker's CPU time (user
  + system, from /proc, start-up included) per task drained: on a shared machine the steadier
  figure,
* round trip ``add.delay(1, 1).get()`` p50/p99 on the warm worker,
* the worker's peak RSS (VmHWM).

Every run declares its own queue and exchange (``bench_amqp_<system>_<pid>``) and deletes
both afterwards; its results are kept under a key prefix of its own in ``--backend`` and
deleted after (the database is never flushed: other runs may share it).
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from typing import Any

from bench._driver import (
    BULK,
    CHILDREN_LINES,
    CLEAR_RESULTS_LINES,
    DRAIN_LINES,
    PEAK_RSS_LINES,
    RTT_LINES,
    START_WORKER_LINES,
    STOP_WORKER_LINES,
    WORKER_COMMANDS,
    add_app,
    results_prefix,
    run_driver,
    splice,
)
from bench._rounds import Column, medians, print_table, run_rounds

AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")

# Runs in a child process beside benchapp.py; prints one JSON object.
DRIVER = splice(
    textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from urllib.parse import unquote, urlsplit
    sys.path.insert(0, os.getcwd())
    import amqp
    from benchapp import add, app, bulk
    QUEUE = app.conf.task_default_queue
    n, delay_n, rtt_n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    worker_cmd = json.loads(sys.argv[4]); broker, backend = sys.argv[5], sys.argv[6]
    #CLEAR
    #CPU

    def drop_queue(purge_only=False):
        u = urlsplit(broker)
        conn = amqp.Connection(
            host=f"{u.hostname}:{u.port or 5672}",
            userid=unquote(u.username or "guest"),
            password=unquote(u.password or "guest"),
            virtual_host=unquote(u.path[1:]) or "/",
        )
        conn.connect()
        try:
            if purge_only:
                # the producer remembers what it declared: both must stay for the next phase
                conn.channel().queue_purge(QUEUE)
            else:
                conn.channel().queue_delete(QUEUE)
                conn.channel().exchange_delete(QUEUE)
        finally:
            conn.close()

    out = {}
    drop_queue(); clear_results()
    t = time.perf_counter()
    for i in range(delay_n):
        add.delay(i, i)
    out["delay_per_s"] = delay_n / (time.perf_counter() - t)

    drop_queue(purge_only=True); clear_results()
    t = time.perf_counter()
    results = bulk(n)
    out["bulk_per_s"] = n / (time.perf_counter() - t)

    #START
    try:
        #DRAIN
        # worker CPU (user + system, start-up included) per task drained, before the round trips
        out["worker_cpu_us_per_task"] = (
            cpu_s(worker.pid) + sum(cpu_s(kid) for kid in descendants(worker.pid))) / n * 1e6
        #RTT
        #RSS
    finally:
        #STOP
        drop_queue(); clear_results()
    print(json.dumps(out))
    """
    ),
    CLEAR=CLEAR_RESULTS_LINES,
    CPU=CHILDREN_LINES,
    START=START_WORKER_LINES,
    STOP=STOP_WORKER_LINES,
    DRAIN=DRAIN_LINES,
    RTT=RTT_LINES,
    RSS=PEAK_RSS_LINES,
)

COLUMNS = [
    Column("delay()/s", "delay_per_s", "{:.0f}", True),
    Column("bulk/s", "bulk_per_s", "{:.0f}", True),
    Column("drain/s", "drain_per_s", "{:.0f}", True),
    Column("rtt p50 ms", "rtt_p50_ms", "{:.2f}", False),
    Column("rtt p99 ms", "rtt_p99_ms", "{:.2f}", False),
    Column("peak RSS MB", "worker_peak_rss_mb", "{:.1f}", False),
]


# the RabbitMQ run's own table: the columns above (bench/throughput.py shares them) and, after
# drain/s, the worker's CPU per task drained
AMQP_COLUMNS = [*COLUMNS[:3], Column("CPU us/task", "worker_cpu_us_per_task", "{:.0f}", False),
                *COLUMNS[3:]]


def _celery_url(url: str) -> str:
    """Celery spells its py-amqp transport ``pyamqp://`` (``amqps://`` keeps TLS)."""
    scheme, rest = url.split("://", 1)
    return f"pyamqp://{rest}" if scheme == "amqp" else url


def _configurations(prefetch: int, early_ack_batch: int) -> dict[str, tuple[str, list[str]]]:
    """label -> (system, settings lines); defaults first, tuned after."""
    tuned = [f"app.conf.worker_prefetch_multiplier = {prefetch}"]
    configs = {
        "celeriac defaults": ("celeriac", []),
        "Celery defaults": ("celery", []),
        f"celeriac prefetch={prefetch}": ("celeriac", tuned),
        f"Celery prefetch={prefetch}": ("celery", tuned),
    }
    if early_ack_batch > 1:
        configs[f"celeriac prefetch={prefetch} eab={early_ack_batch}"] = (
            "celeriac",
            [*tuned, f"app.conf.worker_early_ack_batch = {early_ack_batch}"],
        )
    return configs


def run(
    broker: str,
    backend: str,
    n: int,
    delay_n: int,
    rtt_n: int,
    prefetch: int,
    early_ack_batch: int,
    rounds: int,
    defaults_n: int = 0,
) -> int:
    """Print the medians of ``rounds`` interleaved rounds and the ratios against Celery.
    ``defaults_n`` (0: ``n``) tasks are drained by the default-settings pair, ``n`` by the
    tuned ones: Celery's defaults drain a few dozen tasks a second here (see
    docs/benchmarks.md), so a smaller count keeps a round short; both sides of a pair always
    drain the same number."""
    configs = _configurations(prefetch, early_ack_batch)
    defaults_n = defaults_n or n

    def run_one(label: str) -> dict[str, Any]:
        system, tuning = configs[label]
        url = broker if system == "celeriac" else _celery_url(broker)
        queue = f"app.conf.task_default_queue = 'bench_amqp_{system}_{os.getpid()}'"
        keys = (
            "app.conf.result_backend_transport_options = "
            f"{{'global_keyprefix': {results_prefix(system)!r}}}"
        )
        source = add_app(system, url, backend, [queue, keys, *tuning], BULK[system])
        drained = defaults_n if label.endswith("defaults") else n
        worker = json.dumps(WORKER_COMMANDS[system])
        args = [str(drained), str(delay_n), str(rtt_n), worker, url, backend]
        return run_driver(label, source, DRIVER, args, timeout_s=3600)

    table = medians(run_rounds(list(configs), rounds, run_one), AMQP_COLUMNS)
    versus = [
        (ours, theirs if theirs in configs else f"Celery prefetch={prefetch}")
        for ours, theirs in ((label, label.replace("celeriac", "Celery")) for label in configs)
        if ours.startswith("celeriac")
    ]
    print_table(table, AMQP_COLUMNS, versus)
    print(
        f"\n(medians of {rounds} interleaved rounds; n={n} (defaults: {defaults_n}), "
        f"delay n={delay_n}, round trips="
        f"{rtt_n}, solo pool, one worker process each, broker {broker}, results {backend}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}; defaults = each library's own settings "
        "(celeriac: adaptive prefetch; Celery: multiplier 4), eab = worker_early_ack_batch; "
        "CPU us/task = the worker's CPU time per task drained, start-up included)"
    )
    return 0
