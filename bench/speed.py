"""``python -m bench speed [--n 20000] [--rounds 3]``: the issue 15 table, from one run.

Celery 5.7, celeriac and Huey 3.5 on the same local Redis, the same ``add(x, y)`` task with its
result stored. Every row runs once per round, interleaved (``bench/_rounds.py``); the table
shows medians. Default-settings rows come first, tuned rows after. Per timed run:

* ``delay()``/s: N tasks sent one by one (Huey: ``add(x, y)``, its way of enqueueing);
* drain/s: then one worker started; worker start to the last result stored, start-up included;
* p50 round trip: ``add.delay(1, 1).get()`` on the now warm worker (Huey ``add(1, 1).get(
  blocking=True)``, which polls), up to ``--rtt-n`` times or 10 s, whichever ends first;
* worker CPU per task: user + system time of the worker and its children during the drain;
* peak RSS: VmHWM of the worker plus its children's (prefork), summed.

Then, once per row, two more drains that are not timed:

* round trips per task: ``--count-n`` tasks queued on Redis's own port, then the worker started
  on a counting proxy (``bench/_proxy.py`` explains what is counted);
* profile: N tasks drained by the worker started under py-spy; the top 10 functions by self
  time (``bench/_profile.py``) are printed under the table. Skipped, with a note, without py-spy.

Celery runs as installed (gossip, mingle, heartbeat on: ``bench/_driver.py`` says why). Each
run has a queue of its own and keeps its results under a prefix of its own (Huey: a name of
its own) and deletes only those keys after (``RUN_KEYS`` below).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bench import _profile
from bench._driver import CHILDREN_LINES, results_prefix, run_driver, splice
from bench._rounds import Column, medians, run_rounds


@dataclass(frozen=True)
class Row:
    """One line of the table: what runs, and which Celery row its drain is compared with."""

    label: str
    system: str
    worker_args: tuple[str, ...]
    versus: str = ""


CELERY_PREFORK = "Celery 5.7 default worker (prefork, -c CPUs)"
CELERY_SOLO = "Celery -P solo (defaults)"
CELERY_SOLO_64 = "tuned: Celery -P solo --prefetch-multiplier 64"
SHORT = {CELERY_PREFORK: "prefork", CELERY_SOLO: "solo", CELERY_SOLO_64: "solo p64"}
ROWS = [
    Row(CELERY_PREFORK, "celery", ()),
    Row("celeriac default worker (no flags)", "celeriac", (), CELERY_PREFORK),
    Row(CELERY_SOLO, "celery", ("-P", "solo")),
    Row("celeriac -P solo (defaults)", "celeriac", ("-P", "solo"), CELERY_SOLO),
    Row(CELERY_SOLO_64, "celery", ("-P", "solo", "--prefetch-multiplier", "64")),
    Row("tuned: celeriac -P solo --prefetch-multiplier 64", "celeriac",
        ("-P", "solo", "--prefetch-multiplier", "64"), CELERY_SOLO_64),
    Row("tuned: celeriac -P prefork -c 2", "celeriac", ("-P", "prefork", "-c", "2"),
        CELERY_PREFORK),
    Row("tuned: celeriac -P prefork -c 4", "celeriac", ("-P", "prefork", "-c", "4"),
        CELERY_PREFORK),
    # Huey's consumer logs every task at INFO by default; -q keeps it to warnings, as the
    # other two log by default
    Row("Huey 3.5, one thread worker (-w 1 -k thread -q)", "huey",
        ("-w", "1", "-k", "thread", "-q"), CELERY_SOLO),
]

# (title, key in a run's JSON, format, higher is better)
COLUMNS = [Column(*spec) for spec in (
    ("drain/s", "drain_per_s", "{:,.0f}", True),
    ("delay()/s", "delay_per_s", "{:,.0f}", True),
    ("p50 round trip ms", "rtt_p50_ms", "{:.2f}", False),
    ("round trips/task", "rt_per_task", "{:.3f}", False),
    ("CPU us/task", "cpu_us_per_task", "{:.0f}", False),
    ("peak RSS MB", "worker_peak_rss_mb", "{:.1f}", False),
)]

# RUN_KEYS: how runs sharing the database stay apart. A run's queue is named after it and its
# results live under its own prefix; cleanup() deletes the keys holding either name (the
# queue, kombu's binding of it, celeriac's queue streams, the results) and nothing else. A
# broker-side ``global_keyprefix`` would also do, but costs Celery's worker 5-10% CPU per task
# here (kombu rewrites every command's keys), and the rows compare libraries as installed.
# The broker's shared bookkeeping keys (kombu's unacked index, pidbox bindings, celeriac's
# revoked set) are left alone: other runs may be using them.
#
# ``benchapp.py`` per system: the app on Redis (the worker gets the proxy's port through
# BENCH_PORT), ``add``, and the four functions the driver calls.
APPS = {
    "celeriac": textwrap.dedent(
        """
        import os
        import redis
        from {system} import Celery
        PREFIX, HOST, DB = {prefix!r}, {host!r}, {db!r}
        URL = f"redis://{{HOST}}:{{os.environ.get('BENCH_PORT', {port!r})}}/{{DB}}"
        app = Celery("benchapp", broker=URL, backend=URL)
        # the run's own queue, and its results under its own prefix (see RUN_KEYS)
        QUEUE = PREFIX.rstrip(":") + "q"
        app.conf.task_default_queue = QUEUE
        app.conf.result_backend_transport_options = {{"global_keyprefix": PREFIX}}
        {extra}

        @app.task
        def add(x, y):
            return x + y

        def send(x, y):
            return add.delay(x, y)

        def wait(result, timeout_s):
            return result.get(timeout=timeout_s)

        def round_trip():
            return add.delay(1, 1).get(timeout=30)

        def cleanup():
            client = redis.Redis(HOST, {port!r}, DB)
            keys = {{k for pattern in (PREFIX + "*", "*" + QUEUE + "*")
                    for k in client.scan_iter(match=pattern, count=1000)}}
            keys = list(keys)
            for i in range(0, len(keys), 1000):
                client.delete(*keys[i : i + 1000])
        """
    ),
    "huey": textwrap.dedent(
        """
        import os, time
        from huey import RedisHuey
        PREFIX, HOST, DB = {prefix!r}, {host!r}, {db!r}
        URL = f"redis://{{HOST}}:{{os.environ.get('BENCH_PORT', {port!r})}}/{{DB}}"
        huey = RedisHuey(PREFIX, url=URL, results=True)

        @huey.task()
        def add(x, y):
            return x + y

        def send(x, y):
            return add(x, y)

        def wait(result, timeout_s):
            # polled finely: Huey's own blocking get() backs off to 1 s between reads, which
            # would add up to a second to the drain time
            deadline = time.monotonic() + timeout_s
            while (value := result.get(preserve=True)) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("no result")
                time.sleep(0.002)
            return value

        def round_trip():
            return add(1, 1).get(blocking=True, timeout=30)

        def cleanup():
            huey.flush()
        """
    ),
}
APPS["celery"] = APPS["celeriac"]

# How a run stops its worker once everything is measured: nothing is in flight then, so a cold
# shutdown loses nothing and saves the second an idle warm shutdown takes (Huey: SIGTERM is
# its immediate shutdown).
STOP_SIGNALS = {"celeriac": "SIGQUIT", "celery": "SIGQUIT", "huey": "SIGTERM"}

WORKERS = {
    "celeriac": [sys.executable, "-m", "celeriac", "-A", "benchapp", "worker"],
    "celery": [sys.executable, "-m", "celery", "-A", "benchapp", "worker"],
    "huey": [sys.executable, "-m", "huey.bin.huey_consumer", "benchapp.huey"],
}

# Runs in a child process beside benchapp.py; prints one JSON object. ``mode`` is ``timed``,
# ``count`` (worker on a counting proxy) or ``profile`` (worker under py-spy).
DRIVER = splice(
    textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time
    sys.path.insert(0, os.getcwd())
    import benchapp
    from bench import _profile
    from bench._proxy import CountingProxy
    mode, n, rtt_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    worker_cmd = json.loads(sys.argv[4]); host, port = sys.argv[5], int(sys.argv[6])
    stop_signal = getattr(signal, sys.argv[7])
    #CHILDREN

    out = {}
    proxy = None
    benchapp.cleanup()
    try:
        t = time.perf_counter()
        results = [benchapp.send(i, i) for i in range(n)]
        out["delay_per_s"] = n / (time.perf_counter() - t)
        env = dict(os.environ)
        command = worker_cmd
        if mode == "count":
            proxy = CountingProxy(host, port)
            env["BENCH_PORT"] = str(proxy.port)
        if mode == "profile":
            raw_path = os.path.abspath("profile.raw")
            command = _profile.record_command(raw_path, worker_cmd)
        err = open("worker.err", "w+")
        t = time.perf_counter()
        started = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            # a worker that cannot drain (crash-looping children, say) fails the run instead
            # of holding the benchmark: even Celery's slowest row drains 100 tasks/s here
            last = benchapp.wait(results[-1], 120 + n / 20)
            out["drain_per_s"] = n / (time.perf_counter() - t)
            assert last == 2 * (n - 1), last
            worker = children(started.pid)[0] if mode == "profile" else started.pid
            family = [worker, *descendants(worker)]
            out["cpu_us_per_task"] = sum(cpu_s(pid) for pid in family) * 1e6 / n
            if proxy is not None:
                out["round_trips"] = proxy.round_trips()
                out["rt_per_task"] = out["round_trips"] / n
                out["connections"] = proxy.connections()
            if mode == "timed":
                benchapp.round_trip()  # warm
                rtts = []
                deadline = time.perf_counter() + 10
                while len(rtts) < rtt_n and (time.perf_counter() < deadline or len(rtts) < 20):
                    t0 = time.perf_counter()
                    benchapp.round_trip()
                    rtts.append((time.perf_counter() - t0) * 1000)
                rtts.sort()
                out["rtt_p50_ms"] = rtts[len(rtts) // 2]
                out["rtt_n"] = len(rtts)
                family = [worker, *descendants(worker)]
                out["worker_peak_rss_mb"] = sum(peak_rss_kb(pid) for pid in family) / 1024
        finally:
            worker = started.pid
            if mode == "profile":
                worker = (children(started.pid) or [started.pid])[0]
            if started.poll() is None:
                os.kill(worker, stop_signal)
            try:
                started.wait(60)
            except subprocess.TimeoutExpired:
                for pid in (*descendants(worker), worker, started.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                started.wait()
            err.seek(0)
            sys.stderr.write(err.read()[-3000:])
        if mode == "profile":
            with open(raw_path) as fh:
                out["profile"] = _profile.top_self(fh.read(), worker)
    finally:
        if proxy is not None:
            proxy.close()
        benchapp.cleanup()
    print(json.dumps(out))
    """
    ),
    CHILDREN=CHILDREN_LINES,
)


def _app_source(system: str, redis_url: str) -> str:
    """``benchapp.py`` for one run of ``system`` on ``redis_url``, its keys under a prefix
    of its own."""
    where = urlsplit(redis_url)
    extra = "app.conf.worker_hijack_root_logger = False" if system == "celery" else ""
    return APPS[system].format(
        system=system,
        prefix=results_prefix(system),
        host=where.hostname or "127.0.0.1",
        port=where.port or 6379,
        db=int(where.path.strip("/") or 0),
        extra=extra,
    )


def _run(row: Row, mode: str, redis_url: str, n: int, rtt_n: int) -> dict[str, Any]:
    where = urlsplit(redis_url)
    worker = [*WORKERS[row.system], *row.worker_args]
    args = [mode, str(n), str(rtt_n), json.dumps(worker), where.hostname or "127.0.0.1",
            str(where.port or 6379), STOP_SIGNALS[row.system]]
    return run_driver(f"{row.label} ({mode})", _app_source(row.system, redis_url), DRIVER,
                      args, timeout_s=3600)


def _cell(row: dict[str, float], column: Column) -> str:
    return column.fmt.format(row[column.key]) if column.key in row else "-"


def print_markdown(table: dict[str, dict[str, float]], rows: list[Row]) -> None:
    """The table as Markdown: medians, then the drain ratio against the Celery row named."""
    titles = [c.title for c in COLUMNS]
    print("\n| worker | " + " | ".join(titles) + " | drain vs Celery | runs |")
    print("|---|" + "---:|" * (len(titles) + 2))
    for row in rows:
        values = table.get(row.label, {})
        ours = values.get("drain_per_s")
        theirs = table.get(row.versus, {}).get("drain_per_s")
        ratio = f"{ours / theirs:.1f}x {SHORT[row.versus]}" if ours and theirs else "-"
        cells = [_cell(values, c) for c in COLUMNS]
        print(f"| {row.label} | " + " | ".join(cells) + f" | {ratio} | "
              f"{int(values.get('runs', 0))} |")


def _once(row: Row, mode: str, redis_url: str, n: int) -> dict[str, Any] | None:
    """One untimed drain (``count`` or ``profile``); None, said on the console, if it failed."""
    print(f"{mode}: {row.label} ({n} tasks) ...", flush=True)
    try:
        return _run(row, mode, redis_url, n, 0)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"    FAILED: {str(exc)[-2000:]}", flush=True)
        return None


def run(redis_url: str, n: int, rounds: int, rtt_n: int, count_n: int,
        profile: bool = True) -> int:
    """Run the rows, print the table and the profiles; 0 when every row has numbers."""
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = list(ROWS)
    notes = []
    if importlib.util.find_spec("huey") is None:
        rows = [r for r in rows if r.system != "huey"]
        notes.append("Huey row skipped: huey is not installed (pip install huey).")
    if profile and _profile.py_spy() is None:
        profile = False
        notes.append("Profiles skipped: py-spy is not installed (pip install py-spy).")
    by_label = {r.label: r for r in rows}
    runs = run_rounds(list(by_label), rounds,
                      lambda label: _run(by_label[label], "timed", redis_url, n, rtt_n))
    table = medians(runs, COLUMNS)
    count_n = min(count_n, n)
    profiles: dict[str, list[list[Any]]] = {}
    for row in rows:
        counted = _once(row, "count", redis_url, count_n)
        if counted is not None:
            table.setdefault(row.label, {"runs": 0.0})["rt_per_task"] = counted["rt_per_task"]
        sampled = _once(row, "profile", redis_url, n) if profile else None
        if sampled is not None:
            profiles[row.label] = sampled["profile"]
    print_markdown(table, rows)
    print(
        f"\n(`python -m bench speed --n {n} --rounds {rounds}`, started {started}: medians of "
        f"{rounds} interleaved rounds on {redis_url}; {n} tasks queued one by one, then one "
        f"worker started, drain = worker start to last result stored; round trip p50 of up to "
        f"{rtt_n} `delay().get()` on the warm worker (10 s at most); round trips/task from one "
        f"more drain of {count_n} tasks through a counting proxy, all the worker's connections "
        "(bench/_proxy.py); CPU = worker and children, user + system, during the drain; RSS = "
        "VmHWM of the worker plus its children; ratios = drain/s over Celery's row: "
        "prefork = its default worker, solo = -P solo, solo p64 = -P solo "
        "--prefetch-multiplier 64.)"
    )
    for note in notes:
        print(note)
    for row in rows:
        if row.label in profiles:
            print(f"\nProfile, {row.label} (self time, % of samples, py-spy during a drain of "
                  f"{n}):")
            for percent, name in profiles[row.label]:
                print(f"  {percent:5.1f}%  {name}")
    missing = [r.label for r in rows if any(c.key not in table.get(r.label, {}) for c in COLUMNS)]
    return 1 if missing else 0
