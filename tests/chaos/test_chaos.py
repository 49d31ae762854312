"""Chaos on real worker processes: SIGKILL, SIGTERM, broker restarts and poison input, counting
lost, stuck and duplicated tasks (pass = 0 lost, 0 stuck, duplicates within the tasks that
were running at the attacks). See tests/chaos/harness.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos import harness, inject
from tests.redis.support import SPARE_DB, drop_keys, redis_url

CHAOS_REDIS_DB = SPARE_DB


@pytest.fixture(params=["sqlite", "redis"])
def target(request: pytest.FixtureRequest, tmp_path: Path
           ) -> Iterator[tuple[str, str, Callable[[Any], int]]]:
    if request.param == "sqlite":
        yield "sqlite", f"sqlite:///{tmp_path / 'broker.db'}", inject.into_sqlite
        return
    url = redis_url(CHAOS_REDIS_DB)
    yield "redis", url, inject.into_redis
    drop_keys(url)


def _check(report: harness.Report) -> None:
    print("\n" + harness.HEADER + "\n" + report.row())
    assert report.passed, report


@pytest.mark.slow
def test_sigkill_under_load(target: tuple[str, str, Any], tmp_path: Path,
                            size: dict[str, int]) -> None:
    label, url, _ = target
    _check(harness.sigkill(tmp_path, url, label, tasks=size["tasks"], kills=size["attacks"]))


@pytest.mark.slow
def test_sigterm_under_load(target: tuple[str, str, Any], tmp_path: Path,
                            size: dict[str, int]) -> None:
    label, url, _ = target
    _check(harness.sigterm(tmp_path, url, label, tasks=size["tasks"], stops=size["attacks"]))


@pytest.mark.slow
def test_poison_input(target: tuple[str, str, Any], tmp_path: Path,
                      size: dict[str, int]) -> None:
    label, url, injector = target
    _check(harness.poison(tmp_path, url, label, tasks=size["tasks"] // 2, inject=injector))


@pytest.mark.slow
@pytest.mark.redis
def test_redis_restart_under_load(durable_redis: Any, tmp_path: Path,
                                  size: dict[str, int]) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    _check(harness.broker_restart(workdir, durable_redis, "redis", tasks=size["tasks"],
                                  restarts=max(1, size["attacks"] // 2)))
