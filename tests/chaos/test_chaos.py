"""Chaos on real worker processes: SIGKILL, SIGTERM, broker restarts and poison input, counting
lost, stuck and duplicated tasks (pass = 0 lost, 0 stuck, duplicates within the tasks that
were running at the attacks). See tests/chaos/harness.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos import harness
from tests.chaos.targets import AMQP_CUT_PREFETCH, KINDS, AmqpConnectionCut, Target, target


@pytest.fixture(params=KINDS)
def chaos_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    with target(request.param, tmp_path) as found:
        yield found


def _check(report: harness.Report) -> None:
    print("\n" + harness.HEADER + "\n" + report.row())
    assert report.passed, report


@pytest.mark.slow
def test_sigkill_under_load(chaos_target: Target, tmp_path: Path,
                            size: dict[str, int]) -> None:
    _check(harness.sigkill(tmp_path, chaos_target, tasks=size["tasks"], kills=size["attacks"]))


@pytest.mark.slow
def test_sigterm_under_load(chaos_target: Target, tmp_path: Path,
                            size: dict[str, int]) -> None:
    _check(harness.sigterm(tmp_path, chaos_target, tasks=size["tasks"], stops=size["attacks"]))


@pytest.mark.slow
def test_poison_input(chaos_target: Target, tmp_path: Path, size: dict[str, int]) -> None:
    _check(harness.poison(tmp_path, chaos_target, tasks=size["tasks"] // 2))


def _restart(tmp_path: Path, server: Any, label: str, size: dict[str, int],
             **options: Any) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    _check(harness.broker_restart(workdir, server, label, tasks=size["tasks"],
                                  restarts=max(1, size["attacks"] // 2), **options))


@pytest.mark.slow
@pytest.mark.redis
def test_redis_restart_under_load(durable_redis: Any, tmp_path: Path,
                                  size: dict[str, int]) -> None:
    _restart(tmp_path, durable_redis, "redis", size)


@pytest.mark.slow
def test_postgres_restart_under_load(private_postgres: Any, tmp_path: Path,
                                     size: dict[str, int]) -> None:
    # The private cluster of tests/postgres/test_restart.py (never the shared server); results
    # in Celery's tables on the same database, so they restart with the messages.
    _restart(tmp_path, private_postgres, "postgresql", size,
             backend_url="db+" + private_postgres.url)


@pytest.mark.slow
def test_amqp_connections_cut_under_load(tmp_path: Path, size: dict[str, int]) -> None:
    # RabbitMQ is shared: every connection of this test's own vhost is closed instead. A cut
    # gives back all the worker held; what it started before noticing may run twice.
    with target("amqp", tmp_path) as where:
        _restart(tmp_path, AmqpConnectionCut(where.broker_url), "amqp", size,
                 backend_url=where.backend_url, scenario="connections cut",
                 prefetch_multiplier=AMQP_CUT_PREFETCH)
