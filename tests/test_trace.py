"""The tracer: prepare -> call -> conclude without I/O, and its async twin."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from celeriac import Celery, chain, chord, group, states
from celeriac.effects import plain
from celeriac.task import Context
from celeriac.trace import conclude, prepare, trace_task, trace_task_async


def _request(task_id: str, **fields: Any) -> Context:
    return Context(id=task_id, called_directly=False, is_eager=False, hostname="w@t", **fields)


def test_tracer_stores_and_publishes_nothing_itself(app: Celery) -> None:
    """A chain step with track_started: the tracer returns the record and the next message,
    and the broker and the backend are untouched."""
    app.conf.task_track_started = True

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    sig = chain(add.s(1, 2), add.s(10))
    frozen = sig.freeze()
    assert frozen.parent is not None
    first_id = frozen.parent.id
    # the embed the first message carries: the rest of the chain
    chain_embed = [dict(add.s(10).set(task_id=frozen.id))]
    outcome = trace_task(add, _request(first_id, chain=chain_embed), [1, 2], {})
    assert outcome.state == states.SUCCESS and outcome.retval == 3
    assert outcome.payload is not None
    assert app.backend.get(first_id) is None
    assert app.broker.queue_size("celery") == 0
    assert outcome.effects is not None
    [(queue, envelope)] = outcome.effects.messages
    assert queue == "celery" and envelope.task_name == add.name
    assert envelope.headers["id"] == frozen.id
    assert envelope.headers["parent_id"] == first_id


def test_failed_chain_step_plans_failure_records_for_the_rest(app: Celery) -> None:
    @app.task
    def boom() -> None:
        raise KeyError("k")

    @app.task
    def after(x: Any) -> None: ...

    embed = [dict(after.s().set(task_id="step-3")), dict(after.s().set(task_id="step-2"))]
    outcome = trace_task(boom, _request("step-1", chain=embed), [], {})
    assert outcome.state == states.FAILURE
    assert outcome.effects is not None
    assert outcome.effects.messages == []
    assert sorted(r[0] for r in outcome.effects.records) == ["step-2", "step-3"]
    assert {r[1] for r in outcome.effects.records} == {states.FAILURE}
    assert app.backend.get("step-2") is None


def test_chord_member_becomes_a_chord_part_not_an_incr(app: Celery) -> None:
    @app.task
    def one() -> int:
        return 1

    @app.task
    def total(values: list[int]) -> int:
        return sum(values)

    body = dict(total.s().set(task_id="body", chord_size=2))
    outcome = trace_task(one, _request("m1", chord=body, group="g1"), [], {})
    assert outcome.effects is not None
    assert outcome.effects.chord_parts == [("g1", plain(body))]
    assert app.backend.get("chord-unlock-g1") is None


def test_plain_task_has_no_effects(app: Celery) -> None:
    @app.task
    def one() -> int:
        return 1

    outcome = trace_task(one, _request("p1"), [], {})
    assert outcome.effects is None
    assert outcome.portable().effects is None


def test_prepare_and_conclude_pair_push_and_pop_the_request(app: Celery) -> None:
    seen: list[Any] = []

    @app.task(bind=True)
    def who(self: Any) -> str:
        seen.append(self.request.id)
        return "me"

    request = _request("r1")
    prepared = prepare(who, request, [], {})
    assert who.request.id == "r1"
    run = conclude(prepared, "me", None)
    assert run.state == states.SUCCESS
    assert who.request.id != "r1"
    run = conclude(prepare(who, _request("r2"), [], {}), None, ValueError("x"))
    assert run.state == states.FAILURE and isinstance(run.retval, ValueError)
    assert who.request.id != "r2"


def test_async_task_runs_through_the_same_prepare_and_conclude(app: Celery) -> None:
    events: list[str] = []

    class Hooked(app.Task):  # type: ignore[name-defined,misc]
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            events.append(f"success:{retval}")

        def on_failure(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            events.append(f"failure:{type(exc).__name__}")

    @app.task(base=Hooked)
    async def slow_add(x: int, y: int) -> int:
        await asyncio.sleep(0.001)
        return x + y

    @app.task(base=Hooked)
    async def slow_fail() -> None:
        await asyncio.sleep(0.001)
        raise LookupError("gone")

    ok = asyncio.run(trace_task_async(slow_add, _request("a1"), [2, 3], {}))
    bad = asyncio.run(trace_task_async(slow_fail, _request("a2"), [], {}))
    assert (ok.state, ok.retval) == (states.SUCCESS, 5)
    assert app.decode_result(ok.payload)["result"] == 5
    assert bad.state == states.FAILURE and bad.exc_type == "LookupError"
    assert events == ["success:5", "failure:LookupError"]


def test_async_tracer_keeps_the_safety_net(app: Celery) -> None:
    @app.task
    async def exits() -> None:
        raise SystemExit(3)

    outcome = asyncio.run(trace_task_async(exits, _request("a3"), [], {}))
    assert outcome.state == states.FAILURE
    assert outcome.exc_type == "SystemExit"


@pytest.mark.parametrize("pool", ["solo", "threads", "prefork"])
def test_chord_through_every_pool_counts_in_the_executor(
    app: Celery, run_worker: Any, pool: str, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app.conf.broker_url = url
    app.conf.result_backend = url

    @app.task
    def square(x: int) -> int:
        return x * x

    @app.task
    def total(values: list[int]) -> int:
        return sum(values)

    result = chord(group(square.s(i) for i in range(5)), total.s()).delay()
    run_worker(pool=pool, concurrency=2)
    assert result.get(timeout=5) == 30
