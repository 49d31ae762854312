"""Run one benchmark driver script in a fresh directory beside its app module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_driver(
    label: str,
    app_source: str,
    driver_source: str,
    args: list[str],
    timeout_s: float,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Write ``benchapp.py`` and ``driver.py``, run the driver with ``args`` and return the JSON
    object it prints last."""
    with tempfile.TemporaryDirectory() as tmp:
        work = workdir or Path(tmp)
        (work / "benchapp.py").write_text(app_source)
        (work / "driver.py").write_text(driver_source)
        proc = subprocess.run(
            [sys.executable, "driver.py", *args],
            cwd=work,
            # the repository root too: drivers may import bench's own modules
            env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(work), str(REPO)])),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# One worker process, solo pool, each library otherwise as installed. Celery's worker keeps its
# remote control, gossip, mingle and heartbeat: turned off, it drained 85-120 tasks/s on
# RabbitMQ here instead of 230-690 (prefetch 4; its event loop then waits in epoll with
# deliveries ready), so the broker benchmarks do not turn them off.
WORKER_COMMANDS = {
    "celeriac": [sys.executable, "-m", "celeriac", "-A", "benchapp", "worker", "-P", "solo",
                 "-l", "warning"],
    "celery": [sys.executable, "-m", "celery", "-A", "benchapp", "worker", "-P", "solo",
               "-l", "warning"],
}


# ``bulk(n)`` in benchapp.py: n ``add`` tasks sent at once, their results returned.
BULK = {
    "celeriac": "def bulk(n):\n    return add.delay_many([(i, i) for i in range(n)])",
    # Celery has no bulk API: its best is a group sent by one producer
    "celery": "from celery import group\n\n"
    "def bulk(n):\n    return group(add.s(i, i) for i in range(n)).apply_async().results",
}


def add_app(system: str, broker: str, backend: str, settings: list[str], extra: str = "") -> str:
    """``benchapp.py`` for ``system`` (``celeriac`` or ``celery``): an app on ``broker`` and
    ``backend``, the ``add`` task, then ``settings`` (Python lines run after the app is made,
    e.g. ``app.conf.worker_prefetch_multiplier = 64``) and ``extra`` source."""
    lines = [
        f"from {system} import Celery",
        f"app = Celery('benchapp', broker={broker!r}, backend={backend!r})",
    ]
    if system == "celery":
        lines.append("app.conf.worker_hijack_root_logger = False")
    lines += [*settings, "", "@app.task", "def add(x, y):", "    return x + y", "", extra]
    return "\n".join(lines) + "\n"


def results_prefix(system: str) -> str:
    """A Redis key prefix of one run (``global_keyprefix``, which celeriac and Celery both
    honour on broker and results): runs sharing a database delete only their own keys, never
    flush it."""
    global _runs
    _runs += 1
    return f"bench_{system}_{os.getpid()}_{_runs}:"


_runs = 0

# Driver lines: ``clear_results()`` deletes the keys under this run's result prefix.
CLEAR_RESULTS_LINES = '''
def clear_results():
    import redis
    prefix = app.conf.result_backend_transport_options["global_keyprefix"]
    client = redis.Redis.from_url(backend)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])
'''
# Driver lines: start the worker (``worker_cmd``) at ``t``, its stderr kept in a file (a pipe
# nobody reads could fill and stop it); stop it and pass its stderr on (shown on failure).
START_WORKER_LINES = '''
t = time.perf_counter()
err = open("worker.err", "w+")
worker = subprocess.Popen(worker_cmd, stdout=subprocess.DEVNULL, stderr=err)
'''
STOP_WORKER_LINES = '''
worker.terminate()
worker.wait(60)
err.seek(0)
sys.stderr.write(err.read()[-3000:])
'''
# Driver lines after the worker started at ``t``: wait for the last of ``results`` (N ``add``
# tasks, ``add(i, i)``), check a sample stored SUCCESS, read the worker's peak RSS into ``out``.
DRAIN_LINES = '''
last = results[-1].get(timeout=1800)
out["drain_per_s"] = n / (time.perf_counter() - t)
assert last == 2 * (n - 1), last
sample = results[:: max(1, n // 500)]
out["sampled_success"] = sum(1 for x in sample if x.state == "SUCCESS") / len(sample)
'''
# ... then ``rtt_n`` round trips ``add.delay(1, 1).get()`` on the warm worker, p50/p99 in ms.
RTT_LINES = '''
add.delay(1, 1).get(timeout=30)  # warm
rtts = []
for _ in range(rtt_n):
    t0 = time.perf_counter()
    add.delay(1, 1).get(timeout=30)
    rtts.append((time.perf_counter() - t0) * 1000)
rtts.sort()
out["rtt_p50_ms"] = rtts[len(rtts) // 2]
out["rtt_p99_ms"] = rtts[int(len(rtts) * 0.99) - 1]
'''
PEAK_RSS_LINES = '''
with open(f"/proc/{worker.pid}/status") as fh:
    for line in fh:
        if line.startswith("VmHWM:"):
            out["worker_peak_rss_mb"] = int(line.split()[1]) / 1024
'''

# Driver lines: a process's children and all its descendants (Linux /proc), its CPU time
# (user + system, s) and its peak RSS (VmHWM, kB); 0 once the process is gone.
CHILDREN_LINES = '''
def children(pid):
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return kids

def descendants(pid):
    return [d for kid in children(pid) for d in (kid, *descendants(kid))]

def cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def peak_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
'''


def splice(source: str, **blocks: str) -> str:
    """``source`` with each line that reads ``#NAME`` replaced by ``blocks[NAME]``, indented as
    that line was (drivers share blocks of lines at different depths)."""
    out = []
    for line in source.splitlines(keepends=True):
        name = line.strip().removeprefix("#")
        if line.strip().startswith("#") and name in blocks:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(textwrap.indent(blocks[name].strip("\n") + "\n", indent))
        else:
            out.append(line)
    return "".join(out)
