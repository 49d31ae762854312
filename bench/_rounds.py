"""Interleaved rounds and the median table shared by the broker-vs-broker benchmarks.

Rule: every configuration runs once per round, in the same order, so a burst of load from
other work on the machine lands on all of them alike; the table shows each configuration's
median over the rounds, and a ratio row per celeriac configuration against the reference
configuration named beside it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    """One metric: its title, its key in a run's JSON, its format, and whether higher wins."""

    title: str
    key: str
    fmt: str
    higher_better: bool


def run_rounds(
    labels: list[str], rounds: int, run_one: Callable[[str], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Run ``run_one(label)`` for every label, ``rounds`` times, interleaved."""
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    for round_no in range(1, rounds + 1):
        for label in labels:
            print(f"round {round_no}/{rounds}: {label} ...", flush=True)
            try:
                row = run_one(label)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                # one failed run (a shared machine, a service restarted by a test) costs its
                # own sample, not the whole run: the table says how many runs each median has
                print(f"    FAILED: {str(exc)[-2000:]}", flush=True)
                continue
            # the machine is shared: the load beside each run goes into the log
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            print("    " + ", ".join(f"{k}={v:.6g}" for k, v in row.items()
                                     if isinstance(v, float | int)) + f"; load {load}",
                  flush=True)
            runs[label].append(row)
    return runs


def medians(
    runs: dict[str, list[dict[str, Any]]], columns: list[Column]
) -> dict[str, dict[str, float]]:
    """Each label's median of each column present in its runs (absent columns are left out)."""
    out: dict[str, dict[str, float]] = {}
    for label, rows in runs.items():
        if not rows:
            continue
        out[label] = {"runs": float(len(rows))} | {
            c.key: statistics.median(float(r[c.key]) for r in rows)
            for c in columns
            if all(c.key in r for r in rows)
        }
    return out


def print_table(
    table: dict[str, dict[str, float]],
    columns: list[Column],
    versus: list[tuple[str, str]],
    width: int = 58,
) -> None:
    """Print medians, then for each ``(ours, theirs)`` pair in ``versus`` a ratio row
    (how many times better: faster, or lower latency / memory)."""
    print(f"\n{'(medians)':<{width}}" + "".join(f"{c.title:>13}" for c in columns) + "   runs")
    for label, row in table.items():
        cells = "".join(
            f"{c.fmt.format(row[c.key]):>13}" if c.key in row else f"{'-':>13}" for c in columns
        )
        print(f"{label:<{width}}{cells}{int(row.get('runs', 0)):>7}")
    for ours, theirs in versus:
        if ours not in table or theirs not in table:
            continue
        cells = ""
        for c in columns:
            a, b = table[ours].get(c.key), table[theirs].get(c.key)
            if not a or not b:
                cells += f"{'-':>13}"
                continue
            cells += f"{(a / b if c.higher_better else b / a):>12.1f}x"
        print(f"{ours + ' vs ' + theirs:<{width}}{cells}")
