"""``python -m bench speed`` end to end on a small run: every row of issue 15's table comes out
with a number in every column, a profile per row when py-spy is installed, and the run leaves
nothing behind in Redis but what was there before."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from bench import speed
from bench._profile import top_self
from bench._proxy import CountingProxy
from tests.redis.support import HOST, PORT, SPARE_DB, plain_url, redis_url

REPO = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")


def _table(output: str) -> dict[str, list[str]]:
    """The Markdown table's rows: label -> cells."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("| ") and not line.startswith("| worker |"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_speed_prints_every_row_and_column_with_numbers() -> None:
    redis_url(SPARE_DB)  # skips (fails in CI) without a Redis server
    client = redis.Redis(HOST, PORT, SPARE_DB)
    client.set("not_the_bench:sentinel", "kept")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench", "speed", "--redis", plain_url(SPARE_DB),
             "--n", "200", "--rounds", "1", "--rtt-n", "20"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=280)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the drivers and workers it started too
            raise
        assert client.get("not_the_bench:sentinel") == b"kept"
        leftovers = [k for k in client.scan_iter(match=f"*bench_*_{proc.pid}_*", count=1000)]
    finally:
        client.delete("not_the_bench:sentinel")
        client.close()
    assert proc.returncode == 0, output[-4000:]
    assert leftovers == []
    table = _table(output)
    expected = [r for r in speed.ROWS
                if r.system != "huey" or importlib.util.find_spec("huey") is not None]
    assert list(table) == [r.label for r in expected], output[-4000:]
    for row in expected:
        cells = table[row.label]
        numbers = cells[: len(speed.COLUMNS)]
        assert all(NUMBER.match(c) for c in numbers), (row.label, cells)
        ratio = cells[len(speed.COLUMNS)]
        assert bool(re.match(r"^\d+\.\dx ", ratio)) == bool(row.versus), (row.label, ratio)
        if shutil.which("py-spy"):
            section = output.split(f"Profile, {row.label} (")[1]
            first = section.splitlines()[1]
            assert re.match(r"^\s+\d+\.\d% ", first), (row.label, first)


def test_the_proxy_counts_turns_not_commands() -> None:
    redis_url(SPARE_DB)
    proxy = CountingProxy(HOST, PORT)
    try:
        client = redis.Redis("127.0.0.1", proxy.port, SPARE_DB)
        client.ping()  # the connection's own first exchange (HELLO/SELECT-less: one PING)
        base = proxy.round_trips()
        client.get("bench_proxy_test:absent")
        assert proxy.round_trips() == base + 1
        pipe = client.pipeline(transaction=False)
        for i in range(50):
            pipe.get(f"bench_proxy_test:{i}")
        pipe.execute()
        assert proxy.round_trips() == base + 2  # fifty commands sent before any reply: one
        assert proxy.connections() == 1
        client.close()
    finally:
        proxy.close()


def test_profile_self_time_is_by_function_and_process() -> None:
    # py-spy --subprocesses writes a child's stack under the chain of processes, child last
    raw = (
        'process 10:"python -m w";main (w.py:3);work (w.py:9) 5\n'
        'process 10:"python -m w";main (w.py:3);work (w.py:12) 2\n'
        'process 10:"python -m w";process 11:"python -m w";run (pool/c.py:5);work (w.py:9) 2\n'
        'process 10:"python -m w";_find_and_load (<frozen importlib._bootstrap>:1176) 1\n'
    )
    assert top_self(raw, parent_pid=10) == [
        (70.0, "parent work (w.py)"),
        (20.0, "child work (w.py)"),
        (10.0, "parent importing modules (importlib's own frames)"),
    ]
