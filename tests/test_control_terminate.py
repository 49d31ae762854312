"""The terminate request of ``revoke(terminate=True, signal=...)`` as workers read it."""

from __future__ import annotations

import signal

import pytest

from celeriac import Celery
from celeriac.control import signal_name, termination_requests


@pytest.mark.parametrize(
    ("given", "name"),
    [(None, "SIGTERM"), ("TERM", "SIGTERM"), ("sigkill", "SIGKILL"), (signal.SIGUSR1, "SIGUSR1"),
     (int(signal.SIGINT), "SIGINT")],
)
def test_signal_names_as_celery_accepts_them(given: object, name: str) -> None:
    assert signal_name(given) == name


@pytest.mark.parametrize("given", ["SIGSTOP", "NOPE", int(signal.SIGCHLD)])
def test_signals_terminate_does_not_send_are_refused(given: object) -> None:
    with pytest.raises(ValueError, match="cannot send"):
        signal_name(given)


def test_only_terminate_revokes_carry_a_signal(app: Celery) -> None:
    app.control.revoke("plain")
    app.control.revoke(["t1", "t2"], terminate=True, signal="KILL")
    app.control.revoke("t3", terminate=True)
    found = termination_requests(app, ["plain", "t1", "t2", "t3", "other"])
    assert found == {"t1": signal.SIGKILL, "t2": signal.SIGKILL, "t3": signal.SIGTERM}
    assert app.control.is_revoked("plain") and app.control.is_revoked("t1")
