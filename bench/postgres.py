"""``python -m bench postgres --broker postgresql://postgres@127.0.0.1:5432/test --n 5000``

Drain rate on one PostgreSQL database, three queues on it, one worker process each:

* celeriac ``postgresql://`` (its own schema),
* Celery ``sqla+postgresql+psycopg://`` (kombu's SQLAlchemy transport; its tables and
  sequences in their own schema through the connection's ``search_path``),
* Procrastinate (``procrastinate.App`` with a ``PsycopgConnector``, its schema applied in its own
  ``search_path``; the worker runs with ``wait=False``: it exits once the queue is empty).

celeriac and Celery store results in the same place (``--backend``, Redis DB 15 by default:
the broker is what is measured); Procrastinate has no result store, a job's row records its
status. Per run: N ``add`` tasks sent one by one (timed: ``delay()``/s, ``defer()``/s), then one
worker process started; drain = worker start to last result stored (Procrastinate: to the
worker's exit, every job then ``succeeded``). Configurations run interleaved in every round
(defaults first, then tuned); each run drops and re-creates its schema, and drops it after.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from typing import Any

from bench._driver import (
    CLEAR_RESULTS_LINES,
    DRAIN_LINES,
    PEAK_RSS_LINES,
    START_WORKER_LINES,
    STOP_WORKER_LINES,
    WORKER_COMMANDS,
    add_app,
    results_prefix,
    run_driver,
    splice,
)
from bench._rounds import Column, medians, print_table, run_rounds

SETTINGS = {
    "celeriac": ["app.conf.broker_transport_options = {{'schema': {schema!r}}}"],
    # kombu passes the transport options it does not know to create_engine()
    "celery": [
        "app.conf.broker_transport_options = "
        "{{'connect_args': {{'options': '-c search_path={schema}'}}}}"
    ],
}

PROCRASTINATE_APP = textwrap.dedent(
    """
    import procrastinate
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo={broker!r}, kwargs={{"options": "-c search_path={schema}"}}
        )
    )
    WORKER_OPTIONS = dict(wait=False, install_signal_handlers=False)

    @app.task(name="add")
    {tuning}def add(x, y):
        return x + y
    """
)

PROCRASTINATE_WORKER = [
    sys.executable,
    "-c",
    "import logging, sys; sys.path.insert(0, '.'); logging.disable(logging.WARNING); "
    "from benchapp import app, WORKER_OPTIONS; app.run_worker(**WORKER_OPTIONS)",
]

# Runs in a child process beside benchapp.py; prints one JSON object.
DRIVER = splice(
    textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    sys.path.insert(0, os.getcwd())
    import psycopg
    import benchapp
    system, n, worker_cmd = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    dsn, backend = sys.argv[4], sys.argv[5]
    schema = sys.argv[6]

    def sql(statement):
        with psycopg.connect(dsn, autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else None

    app = benchapp.app
    #CLEAR

    def reset():
        sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if system != "procrastinate":
            clear_results()

    out = {}
    reset()
    sql(f'CREATE SCHEMA "{schema}"')
    try:
        if system == "procrastinate":
            with benchapp.app.open():
                benchapp.app.schema_manager.apply_schema()
                t = time.perf_counter()
                for i in range(n):
                    benchapp.add.defer(x=i, y=i)
                out["delay_per_s"] = n / (time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run(worker_cmd, check=True, timeout=1800,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            out["drain_per_s"] = n / (time.perf_counter() - t)
            done = sql(f'SELECT count(*) FROM "{schema}".procrastinate_jobs '
                       "WHERE status = 'succeeded'")[0][0]
            out["sampled_success"] = done / n
        else:
            add = benchapp.add
            t = time.perf_counter()
            results = [add.delay(i, i) for i in range(n)]
            out["delay_per_s"] = n / (time.perf_counter() - t)
            #START
            try:
                #DRAIN
                #RSS
            finally:
                #STOP
    finally:
        reset()
    print(json.dumps(out))
    """
    ),
    CLEAR=CLEAR_RESULTS_LINES,
    START=START_WORKER_LINES,
    STOP=STOP_WORKER_LINES,
    DRAIN=DRAIN_LINES,
    RSS=PEAK_RSS_LINES,
)

COLUMNS = [
    Column("send/s", "delay_per_s", "{:.0f}", True),
    Column("drain/s", "drain_per_s", "{:.0f}", True),
    Column("peak RSS MB", "worker_peak_rss_mb", "{:.1f}", False),
]


def _configurations(prefetch: int, early_ack_batch: int = 1) -> dict[str, tuple[str, list[str]]]:
    """label -> (system, settings lines); defaults first, tuned after."""
    tuned = [f"app.conf.worker_prefetch_multiplier = {prefetch}"]
    configs: dict[str, tuple[str, list[str]]] = {
        "celeriac defaults": ("celeriac", []),
        "Celery defaults": ("celery", []),
        "Procrastinate defaults": ("procrastinate", []),
        f"celeriac prefetch={prefetch}": ("celeriac", tuned),
        f"Celery prefetch={prefetch}": ("celery", tuned),
        # Procrastinate has no prefetch or batching setting (one job per query); its worker
        # runs a coroutine task on its event loop, a plain function in a thread
        "Procrastinate async task": ("procrastinate", ["async "]),
    }
    if early_ack_batch > 1:
        configs[f"celeriac prefetch={prefetch} eab={early_ack_batch}"] = (
            "celeriac",
            [*tuned, f"app.conf.worker_early_ack_batch = {early_ack_batch}"],
        )
    return configs


def _urls(broker: str) -> dict[str, str]:
    """The one database as each library spells it."""
    rest = broker.split("://", 1)[1]
    return {
        "celeriac": broker,
        "celery": f"sqla+postgresql+psycopg://{rest}",
        "procrastinate": f"postgresql://{rest}",
    }


def run(
    broker: str, backend: str, n: int, rounds: int, prefetch: int, early_ack_batch: int
) -> int:
    """Print the medians of ``rounds`` interleaved rounds and the ratios against the others."""
    configs = _configurations(prefetch, early_ack_batch)
    urls = _urls(broker)

    def run_one(label: str) -> dict[str, Any]:
        system, tuning = configs[label]
        schema = f"bench_pg_{system}_{os.getpid()}"
        if system == "procrastinate":
            source = PROCRASTINATE_APP.format(
                broker=urls[system], schema=schema, tuning="".join(tuning)
            )
            worker = PROCRASTINATE_WORKER
        else:
            settings = [line.format(schema=schema) for line in SETTINGS[system]]
            settings.append("app.conf.result_backend_transport_options = "
                            f"{{'global_keyprefix': {results_prefix(system)!r}}}")
            source = add_app(system, urls[system], backend, [*settings, *tuning])
            worker = WORKER_COMMANDS[system]
        args = [system, str(n), json.dumps(worker), urls["procrastinate"], backend, schema]
        return run_driver(label, source, DRIVER, args, timeout_s=3600)

    table = medians(run_rounds(list(configs), rounds, run_one), COLUMNS)
    tuned = f"prefetch={prefetch}"
    print_table(table, COLUMNS, [
        ("celeriac defaults", "Celery defaults"),
        (f"celeriac {tuned}", f"Celery {tuned}"),
        ("celeriac defaults", "Procrastinate defaults"),
        (f"celeriac {tuned}", "Procrastinate async task"),
        (f"celeriac {tuned} eab={early_ack_batch}", f"Celery {tuned}"),
        (f"celeriac {tuned} eab={early_ack_batch}", "Procrastinate async task"),
    ])
    print(
        f"\n(medians of {rounds} interleaved rounds; n={n} per run, one worker process each, "
        f"solo pool for celeriac and Celery, database {urls['procrastinate']}, results of "
        f"celeriac and Celery in {backend}, {time.strftime('%Y-%m-%d %H:%M')}; "
        "eab = worker_early_ack_batch)"
    )
    return 0
