"""The benchmark plumbing that decides what the published tables say: interleaving, medians,
the direction of each ratio, and which driver a broker URL reaches."""

from __future__ import annotations

from typing import Any

import pytest

from bench import __main__ as bench_main
from bench import amqp, postgres
from bench._rounds import Column, medians, print_table, run_rounds


def test_rounds_interleave_every_configuration() -> None:
    order: list[str] = []

    def run_one(label: str) -> dict[str, Any]:
        order.append(label)
        return {"rate": float(len(order))}

    runs = run_rounds(["a", "b", "c"], 2, run_one)
    assert order == ["a", "b", "c", "a", "b", "c"]
    assert [r["rate"] for r in runs["b"]] == [2.0, 5.0]


def test_medians_ignore_outliers_and_drop_absent_columns() -> None:
    columns = [Column("rate", "rate", "{:.0f}", True), Column("rss", "rss", "{:.1f}", False)]
    runs = {"x": [{"rate": 10.0, "rss": 5.0}, {"rate": 1000.0}, {"rate": 12.0, "rss": 7.0}]}
    assert medians(runs, columns) == {"x": {"runs": 3.0, "rate": 12.0}}


def test_a_failed_run_costs_its_sample_not_the_benchmark() -> None:
    calls = {"flaky": 0, "dead": 0}

    def run_one(label: str) -> dict[str, Any]:
        calls[label] += 1
        if label == "flaky" and calls["flaky"] == 2:
            raise RuntimeError("flaky failed: the worker died")
        if label == "dead":
            raise RuntimeError("dead failed")
        return {"rate": 1.0}

    runs = run_rounds(["flaky", "dead"], 2, run_one)
    assert len(runs["flaky"]) == 1 and runs["dead"] == []
    table = medians(runs, [Column("rate", "rate", "{:.0f}", True)])
    assert table == {"flaky": {"runs": 1.0, "rate": 1.0}}


def test_ratios_say_how_many_times_better(capsys: pytest.CaptureFixture[str]) -> None:
    columns = [Column("rate", "rate", "{:.0f}", True), Column("ms", "ms", "{:.1f}", False)]
    table = {"ours": {"rate": 300.0, "ms": 1.0}, "theirs": {"rate": 100.0, "ms": 4.0}}
    print_table(table, columns, [("ours", "theirs"), ("ours", "missing")])
    ratio_rows = [line for line in capsys.readouterr().out.splitlines() if " vs " in line]
    assert len(ratio_rows) == 1
    assert ratio_rows[0].split()[-2:] == ["3.0x", "4.0x"]


def test_each_library_gets_the_same_database_in_its_own_spelling() -> None:
    urls = postgres._urls("postgresql://postgres@127.0.0.1:5432/test")
    assert urls["celery"] == "sqla+postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert urls["procrastinate"] == "postgresql://postgres@127.0.0.1:5432/test"
    assert amqp._celery_url("amqp://guest:guest@h:5672//") == "pyamqp://guest:guest@h:5672//"
    assert amqp._celery_url("amqps://h//") == "amqps://h//"


def test_defaults_run_before_tuned_settings() -> None:
    assert list(amqp._configurations(64, 1)) == [
        "celeriac defaults",
        "Celery defaults",
        "celeriac prefetch=64",
        "Celery prefetch=64",
    ]
    assert list(postgres._configurations(64))[:3] == [
        "celeriac defaults",
        "Celery defaults",
        "Procrastinate defaults",
    ]


def test_an_amqp_broker_reaches_the_rabbitmq_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(amqp, "run", lambda *a: calls.append(a) or 0)
    argv = ["throughput", "--broker", "pyamqp://guest:guest@127.0.0.1:5672//", "--n", "7"]
    assert bench_main.main(argv) == 0
    assert calls[0][:3] == ("pyamqp://guest:guest@127.0.0.1:5672//", "redis://127.0.0.1:6379/15", 7)
    assert calls[0][-1] == 0  # defaults drain --n tasks too


def test_a_backend_beside_a_redis_broker_is_refused() -> None:
    with pytest.raises(SystemExit):
        bench_main.main(["throughput", "--backend", "redis://127.0.0.1:6379/14"])
