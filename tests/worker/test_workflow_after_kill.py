"""A workflow goes on when its task ends outside the tracer: the prefork parent killed the
child at the hard time limit, or the child was lost. The chain's remaining steps fail, the
chord counts the member (its body fails with ChordError instead of waiting forever) and
link_error callbacks run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery, chain, chord
from celeriac.worker import Worker


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Celery]:
    application = Celery("t", broker=f"sqlite:///{tmp_path}/b.db")
    yield application
    application.close()


@pytest.mark.slow
def test_hard_time_limit_on_prefork_fails_the_chain_and_the_chord(
    app: Celery, tmp_path: Path
) -> None:
    errback_marker = tmp_path / "errback-ran"

    @app.task(time_limit=0.5)
    def stuck() -> None:
        time.sleep(30)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def collect(values: list[int]) -> int:
        return sum(values)

    @app.task
    def on_error(task_id: str) -> None:
        errback_marker.write_text(task_id)

    chained = chain(stuck.s(), add.si(1, 2)).apply_async()
    chorded = chord([stuck.s(), add.si(1, 1)], collect.s()).apply_async()
    linked = stuck.apply_async(link_error=on_error.si("linked"))

    Worker(app, pool="prefork", concurrency=2, burst=True, install_signal_handlers=False).start()

    with pytest.raises(Exception, match="TimeLimitExceeded"):
        chained.get(timeout=5)
    assert chained.parent is not None and chained.parent.state == "FAILURE"
    assert chained.state == "FAILURE"  # the step that will never run
    with pytest.raises(Exception, match=r"ChordError|Dependency"):
        chorded.get(timeout=5)
    assert linked.state == "FAILURE"
    assert errback_marker.read_text() == "linked"
