"""Revoking a workflow revokes its members (issue 11, item 3): a saved group's id revokes each
task of the group; ``revoke(parents=True)`` on a chain's result revokes the earlier steps too
(a plain ``revoke()`` keeps Celery's rule: only that step)."""

from __future__ import annotations

from celeriac import Celery, chain, group
from tests.conftest import RunWorker


def test_revoking_a_saved_group_id_revokes_its_members(app: Celery,
                                                       run_worker: RunWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = group(add.s(i, i) for i in range(3)).apply_async()
    result.save()
    app.control.revoke(result.id)
    run_worker()
    assert [r.state for r in result.results] == ["REVOKED"] * 3
    assert all(app.control.is_revoked(r.id) for r in result.results)


def test_revoking_an_id_that_is_no_group_revokes_just_it(app: Celery,
                                                         run_worker: RunWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    doomed, kept = add.delay(1, 1), add.delay(2, 2)
    app.control.revoke(doomed.id)
    run_worker()
    assert (doomed.state, kept.get(timeout=5)) == ("REVOKED", 4)


def test_revoking_a_chain_result_stops_every_step(app: Celery, run_worker: RunWorker) -> None:
    ran: list[int] = []

    @app.task
    def step(x: int) -> int:
        ran.append(x)
        return x + 1

    result = chain(step.s(1), step.s(), step.s()).apply_async()
    result.revoke(parents=True)
    run_worker()
    assert ran == []
    assert result.state == "REVOKED"
    assert result.parent is not None and result.parent.parent is not None
    assert app.control.is_revoked(result.parent.parent.id)


def test_revoking_a_chain_step_alone_is_celerys_rule(app: Celery, run_worker: RunWorker) -> None:
    @app.task
    def step(x: int) -> int:
        return x + 1

    result = chain(step.s(1), step.s(), step.s()).apply_async()
    result.revoke()
    run_worker()
    assert result.state == "REVOKED"
    assert result.parent is not None and result.parent.get(timeout=5) == 3
