"""Testing a Django project's tasks: eager mode and a pytest fixture.

In eager mode ``delay()``/``apply_async()`` run the task at once, in the caller's process and
database transaction (so a test's ``django_db`` data is visible, and nothing needs a broker or
a worker); errors propagate to the caller. Use it as a context manager or decorator::

    from celeriac.contrib.django.testing import eager

    def test_signup(client):
        with eager():
            client.post("/signup/", {...})     # the view's send_welcome.delay(...) runs here

or, with pytest, load the plugin in the project's ``conftest.py`` and ask for the fixture::

    pytest_plugins = ["celeriac.contrib.django.testing"]

    def test_signup(client, celeriac_eager):
        ...

``delay_on_commit`` works too: Django's test case runs ``on_commit`` callbacks only on a real
commit, so use ``django_db(transaction=True)`` or ``captureOnCommitCallbacks(execute=True)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from celeriac import _state
from celeriac.app.base import Celery

__all__ = ["celeriac_eager", "eager"]


@contextmanager
def eager(app: Celery | None = None, *, propagate: bool = True) -> Iterator[Celery]:
    """Run ``app``'s tasks eagerly (the current app by default) inside the block; the settings
    are put back after it."""
    target = app if app is not None else _state.get_current_app()
    conf = target.conf
    saved = (conf.task_always_eager, conf.task_eager_propagates)
    conf.task_always_eager = True
    conf.task_eager_propagates = propagate
    try:
        yield target
    finally:
        conf.task_always_eager, conf.task_eager_propagates = saved


@pytest.fixture
def celeriac_eager() -> Iterator[Celery]:
    """The current app (the project's, once Django is set up) in eager mode for one test."""
    with eager() as app:
        yield app
