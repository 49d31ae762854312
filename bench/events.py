"""``python -m bench events --broker redis://... --n 50000 --rounds 3``

What sending events costs a worker: the drain rate (worker start to last result stored, N
``add`` tasks waiting, one worker process, solo pool) with events off and with ``-E``, the two
alternating in one run, each with a receiver listening as a monitor would (it counts the events
to show they flowed; ``--no-listener``: nobody listens, so only the worker's own cost shows).
Prints the median rate of each and the ratio; the target is that events cost at most 10% of
the drain rate (ratio >= 0.90).
"""

from __future__ import annotations

import json
import statistics
import sys
import textwrap
import time
from typing import Any

from bench._driver import run_driver

APP = textwrap.dedent(
    """
    from celeriac import Celery
    app = Celery("benchapp", broker={url!r}, backend={url!r})
    app.conf.worker_prefetch_multiplier = {prefetch}

    @app.task
    def add(x, y):
        return x + y
    """
)

DRIVER = textwrap.dedent(
    """
    import json, os, subprocess, sys, threading, time
    sys.path.insert(0, os.getcwd())
    import redis
    from benchapp import app, add
    n, url, worker_cmd = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    listen = sys.argv[4] == "listen"
    redis.Redis.from_url(url).flushdb()
    results = add.delay_many([(i, i) for i in range(n)])
    counted = {"events": 0, "task_events": 0}

    def count(event):
        counted["events"] += 1
        if event["type"].startswith("task-"):
            counted["task_events"] += 1

    receiver = app.events.Receiver(app.connection(), handlers={"*": count})
    listener = threading.Thread(target=receiver.capture, daemon=True)
    if listen:
        receiver.open()
        listener.start()
    t = time.perf_counter()
    worker = subprocess.Popen(worker_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        last = results[-1].get(timeout=1800)
        drain_s = time.perf_counter() - t
        assert last == 2 * (n - 1), last
        with open(f"/proc/{worker.pid}/stat") as fh:
            ticks = fh.read().rpartition(")")[2].split()
        cpu_s = (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")
    finally:
        worker.terminate()
        worker.wait(60)
    if listen:
        time.sleep(1.0)  # the last batch of events
        receiver.should_stop = True
        listener.join(5)
    redis.Redis.from_url(url).flushdb()
    print(json.dumps({"n": n, "drain_per_s": n / drain_s, "cpu_us_per_task": cpu_s / n * 1e6,
                      **counted}))
    """
)


def _worker(events: bool) -> list[str]:
    command = [sys.executable, "-m", "celeriac", "-A", "benchapp", "worker", "-P", "solo",
               "-l", "warning"]
    return [*command, "-E"] if events else command


def run(url: str, n: int, rounds: int, prefetch: int, listen: bool = True) -> int:
    app_source = APP.format(url=url, prefetch=prefetch)
    rates: dict[bool, list[float]] = {False: [], True: []}
    counts: dict[bool, list[int]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(rounds):
        # Alternate which goes first, so a warming machine favours neither.
        order = (False, True) if round_ % 2 == 0 else (True, False)
        for events in order:
            label = "events on" if events else "events off"
            data: dict[str, Any] = run_driver(
                label, app_source, DRIVER,
                [str(n), url, json.dumps(_worker(events)), "listen" if listen else "-"], 1800,
            )
            rates[events].append(data["drain_per_s"])
            counts[events].append(data["task_events"])
            cpu[events].append(data["cpu_us_per_task"])
            print(f"round {round_ + 1} {label:<11} drain {data['drain_per_s']:>8.0f}/s  "
                  f"worker CPU {data['cpu_us_per_task']:>6.1f} us/task  "
                  f"task events received {data['task_events']}", flush=True)
    print(f"\n{'worker':<14}{'tasks':>8}{'median/s':>10}{'best/s':>10}{'CPU us/task':>13}"
          f"{'task events':>13}")
    for label, key in (("events off", False), ("events on -E", True)):
        print(f"{label:<14}{n:>8}{statistics.median(rates[key]):>10.0f}{max(rates[key]):>10.0f}"
              f"{statistics.median(cpu[key]):>13.1f}{statistics.median(counts[key]):>13.0f}")
    # Each round's two runs ran back to back: their ratio is the least disturbed by a machine
    # whose load changes between rounds.
    paired = statistics.median(
        on_ / off_ for on_, off_ in zip(rates[True], rates[False], strict=True))
    median = statistics.median(rates[True]) / statistics.median(rates[False])
    best = max(rates[True]) / max(rates[False])
    cpu_ratio = statistics.median(cpu[True]) / statistics.median(cpu[False])
    print(f"\nevents on / off: drain rate x{paired:.3f} by the median of each round's ratio "
          f"(cost {100 * (1 - paired):.1f}%), x{median:.3f} by medians "
          f"(cost {100 * (1 - median):.1f}%), x{best:.3f} best of each "
          f"(cost {100 * (1 - best):.1f}%); worker CPU per task "
          f"x{cpu_ratio:.3f}.\nTarget: events cost <= 10% of the drain rate. {rounds} rounds, "
          f"one worker process, solo pool, "
          f"{'a receiver listening' if listen else 'nobody listening'}; "
          f"measured {time.strftime('%Y-%m-%d')}")
    return 0
