"""The application ``celeriac demo`` runs: the tutorial's tasks in one module.

The worker of the demo imports it with ``-A celeriac.cli.demo_app`` and the demo's broker URL
given by ``-b``; the retry delay comes from ``$CELERIAC_DEMO_RETRY_DELAY`` (``--quick``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from celeriac import Celery, Task
from celeriac.utils.log import get_task_logger

RETRY_DELAY_ENV = "CELERIAC_DEMO_RETRY_DELAY"
RETRY_DELAY_S = float(os.environ.get(RETRY_DELAY_ENV, "4"))
MAX_RETRIES = 4

# result_extended: the demo shows how many retries a task went through.
app = Celery("demo", broker="sqlite:///demo.db", result_extended=True)
logger = get_task_logger(__name__)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True, max_retries=MAX_RETRIES, default_retry_delay=RETRY_DELAY_S)
def fetch(self: Task, url: str) -> str:
    """Always fails to connect, so it retries ``MAX_RETRIES`` times and then fails."""
    logger.info("attempt %d: fetching %s", self.request.retries + 1, url)
    try:
        raise ConnectionError(f"{url} is unreachable")
    except ConnectionError as exc:
        raise self.retry(exc=exc)


class HookedTask(Task):
    """A base class whose hooks log what happened to each call."""

    def on_success(
        self, retval: Any, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        logger.info("on_success: returned %r", retval)

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        logger.warning("on_failure: raised %r", exc)

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: Any,
    ) -> None:
        logger.info("after_return: state %s", status)


@app.task(base=HookedTask)
def divide(x: float, y: float) -> float:
    return x / y
