"""The tutorial's tasks."""

import os

from celeriac import Task
from celeriac.utils.log import get_task_logger

from .celery import app

logger = get_task_logger(__name__)

# Seconds between retries of fetch_page (the tests make it shorter).
RETRY_DELAY = float(os.environ.get("PROJ_RETRY_DELAY", 4))


@app.task
def add(x, y):
    return x + y


@app.task(bind=True, max_retries=4, default_retry_delay=RETRY_DELAY)
def fetch_page(self, url):
    """Pretend to download a page from a server that is down: retry, and give up after 4."""
    logger.info("attempt %d: fetching %s", self.request.retries + 1, url)
    try:
        raise ConnectionError(f"{url} is unreachable")
    except ConnectionError as exc:
        raise self.retry(exc=exc)


class LoggedTask(Task):
    """A base class: its hooks run in the worker after each call of a task using it."""

    def on_success(self, retval, task_id, args, kwargs):
        logger.info("on_success: %s returned %r", self.name, retval)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        logger.error("on_failure: %s raised %r", self.name, exc)

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        logger.info("after_return: %s ended in state %s", self.name, status)


@app.task(base=LoggedTask)
def divide(x, y):
    return x / y
