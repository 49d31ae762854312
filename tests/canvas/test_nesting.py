"""Nested workflows: fixed shapes on every broker, and random ones checked against a direct
evaluation of the same expression (hypothesis)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celeriac import Celery, chain, chord, group
from celeriac.canvas import Signature
from celeriac.exceptions import ChordError
from tests.canvas.conftest import Drain, close_app, drain_app
from tests.canvas.tasks import ExpectedError, Tasks


def test_chain_of_groups_becomes_a_chord(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    t = tasks
    result = chain(group(t.add.s(1, 1), t.add.s(2, 2)), t.xsum.s(), t.mul.s(10)).delay()
    twice = chain(group(t.add.s(1, 1), t.add.s(2, 2)), group(t.xsum.s(), t.xsum.s())).delay()
    drain()
    assert result.get(timeout=5) == 60
    assert twice.get(timeout=5) == [6, 6]


def test_group_of_chains(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    t = tasks
    result = group(t.add.s(i, i) | t.mul.s(10) for i in range(5)).delay()
    drain()
    assert result.get(timeout=5) == [0, 20, 40, 60, 80]
    assert result.results[1].parent.get(timeout=5) == 2


def test_chain_and_chord_in_a_chord_header(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    t = tasks
    header = [
        t.add.s(1, 1) | t.mul.s(3),
        chord([t.add.s(1, 1), t.add.s(2, 2)], t.xsum.s()),
        t.add.s(1, 1) | group(t.mul.s(2), t.mul.s(3)),
        group(t.add.s(0, 1), t.add.s(0, 2)),
    ]
    result = chord(header, t.record.s())()
    drain()
    assert result.get(timeout=5) == [6, 6, [4, 6], 1, 2]


def test_chord_in_a_chain_in_a_chord(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    t = tasks
    inner = t.add.s(1, 1) | chord([t.add.s(1), t.mul.s(2)], t.xsum.s()) | t.mul.s(10)
    result = chord([inner, t.add.s(0, 1)], t.xsum.s())()
    drain()
    assert result.get(timeout=5) == 71


def test_failure_deep_inside_stops_everything(
    canvas_app: Celery, tasks: Tasks, drain: Drain
) -> None:
    t = tasks
    inner = t.add.s(1, 1) | chord([t.fail.s(), t.mul.s(2)], t.xsum.s()) | t.record.s()
    result = (chord([inner, t.add.s(0, 1)], t.xsum.s()) | t.record.s()).delay()
    drain()
    with pytest.raises(ChordError):
        result.get(timeout=5)
    assert t.calls == []


def test_failing_first_step_of_a_chord_member_chain(
    canvas_app: Celery, tasks: Tasks, drain: Drain
) -> None:
    t = tasks
    result = chord([t.fail.s() | t.add.s(1), t.add.s(1, 1)], t.xsum.s())()
    drain()
    with pytest.raises(ChordError, match="raised ExpectedError"):
        result.get(timeout=5)
    with pytest.raises(ExpectedError):
        result.parent.results[0].get(timeout=5)


# -- random canvases -------------------------------------------------------------------------
# Expressions: ("add", a, b) / ("mul", a, b) need no input; ("addk", k) / ("mulk", k) /
# ("nsum",) take one; ("chain", first, [steps]), ("group", [members]), ("chord", [members],
# body). A group member that is itself a group is spliced in (Celery unrolls nested groups).

Expr = tuple[Any, ...]


def evaluate(expr: Expr, given_value: Any = None) -> Any:
    op = expr[0]
    if op == "add":
        return expr[1] + expr[2]
    if op == "mul":
        return expr[1] * expr[2]
    if op == "addk":
        return given_value + expr[1]
    if op == "mulk":
        return given_value * expr[1]
    if op == "nsum":
        return nested_sum(given_value)
    if op == "chain":
        value = evaluate(expr[1], given_value)
        for step in expr[2]:
            value = evaluate(step, value)
        return value
    if op == "group":
        return _members(expr[1], given_value)
    if op == "chord":
        return evaluate(expr[2], _members(expr[1], given_value))
    raise AssertionError(op)


def _members(members: list[Expr], given_value: Any) -> list[Any]:
    out: list[Any] = []
    for member in members:
        if member[0] == "group":
            out.extend(_members(member[1], given_value))
        else:
            out.append(evaluate(member, given_value))
    return out


def nested_sum(value: Any) -> int:
    return sum(nested_sum(v) for v in value) if isinstance(value, list) else int(value)


def build(expr: Expr, t: Tasks) -> Signature:
    op = expr[0]
    if op in ("add", "mul"):
        return getattr(t, op).s(expr[1], expr[2])  # type: ignore[no-any-return]
    if op == "addk":
        return t.add.s(expr[1])  # type: ignore[no-any-return]
    if op == "mulk":
        return t.mul.s(expr[1])  # type: ignore[no-any-return]
    if op == "nsum":
        return t.xsum.s()  # type: ignore[no-any-return]
    if op == "chain":
        return chain(build(expr[1], t), *(build(s, t) for s in expr[2]))
    if op == "group":
        return group(build(m, t) for m in expr[1])
    if op == "chord":
        return chord([build(m, t) for m in expr[1]], build(expr[2], t))
    raise AssertionError(op)


small = st.integers(0, 4)
src_leaf = st.tuples(st.sampled_from(["add", "mul"]), small, small)
int_to_int_leaf = st.tuples(st.sampled_from(["addk", "mulk"]), small)
list_to_int: Any = st.one_of(
    st.just(("nsum",)),
    st.tuples(st.just("chain"), st.just(("nsum",)), st.lists(int_to_int_leaf, max_size=1)),
)


def _few(strategy: Any) -> Any:
    return st.lists(strategy, min_size=1, max_size=3)


def members_of(item: Any, transformer: Any) -> Any:
    """Members of a group or chord header: ``item``s, nested groups of them (spliced in), and
    chains ending in a group (list-valued members)."""
    ends_in_group = _few(transformer).map(lambda members: [("group", members)])
    return _few(
        st.one_of(
            item,
            st.tuples(st.just("group"), _few(item)),
            st.tuples(st.just("chain"), item, ends_in_group),
        )
    )


int_to_int = st.recursive(
    int_to_int_leaf,
    lambda inner: st.one_of(
        st.tuples(st.just("chain"), inner, st.lists(inner, min_size=1, max_size=2)),
        st.tuples(st.just("chord"), members_of(inner, inner), list_to_int),
        st.tuples(st.just("chain"), st.tuples(st.just("group"), _few(inner)), st.just([("nsum",)])),
    ),
    max_leaves=4,
)
source = st.recursive(
    src_leaf,
    lambda inner: st.one_of(
        st.tuples(st.just("chain"), inner, st.lists(int_to_int, min_size=1, max_size=2)),
        st.tuples(st.just("chord"), members_of(inner, int_to_int), list_to_int),
        st.tuples(
            st.just("chain"),
            st.tuples(st.just("group"), members_of(inner, int_to_int)),
            st.just([("nsum",)]),
        ),
    ),
    max_leaves=5,
)
workflow = st.one_of(source, st.tuples(st.just("group"), members_of(source, int_to_int)))


def _fresh_app() -> tuple[Celery, Tasks]:
    from tests.canvas.tasks import define

    url = f"memory://nesting-{uuid.uuid4().hex}"
    app = Celery("n", broker=url, backend=url)

    t = define(app)

    @app.task(name="t.xsum")
    def xsum(numbers: list[Any]) -> int:
        return nested_sum(numbers)

    t.xsum = xsum
    return app, t


@settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(workflow)
def test_random_workflow_on_the_worker_matches_direct_evaluation(expr: Expr) -> None:
    app, t = _fresh_app()
    try:
        result = build(expr, t).apply_async()
        drain_app(app)
        assert result.get(timeout=10) == evaluate(expr)
    finally:
        close_app(app)


@settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(workflow)
def test_random_workflow_eagerly_matches_direct_evaluation(expr: Expr) -> None:
    app, t = _fresh_app()
    app.conf.task_always_eager = True
    try:
        assert build(expr, t).apply_async().get() == evaluate(expr)
    finally:
        close_app(app)
