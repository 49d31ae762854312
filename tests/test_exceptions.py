"""The error tree drawn in celeriac.exceptions' docstring is the real class hierarchy."""

from __future__ import annotations

import builtins
import pickle
import re
from datetime import UTC, datetime

import pytest

from celeriac import exceptions
from celeriac.exceptions import (
    CeleriacError,
    MaxRetriesExceededError,
    NotRegistered,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    TaskError,
)

_TREE_LINE = re.compile(r"^(?P<lead>[ │├└─]*)(?P<name>[A-Z]\w*)(?: \((?P<extra>[\w.]+)\))?")


def _tree_edges() -> list[tuple[str, str, str | None]]:
    """(child, parent, extra base) for every line of the tree in the module docstring."""
    doc = exceptions.__doc__ or ""
    block = doc.split("::", 1)[1]
    lines = [line for line in block.splitlines() if line.strip()]
    root_line = lines[0]
    root_col = len(root_line) - len(root_line.lstrip())
    edges: list[tuple[str, str, str | None]] = []
    stack: list[str] = []
    for line in lines:
        match = _TREE_LINE.match(line)
        if match is None or not set(line[:root_col]) <= {" "}:
            continue
        column = len(match["lead"])
        if column > root_col and not {"├", "└"} & set(match["lead"]):
            continue  # prose under the tree, not a node
        depth = (column - root_col) // 4
        if depth == 0 and stack:
            break  # the tree has one root; a second top-level name is prose
        del stack[depth:]
        if stack:
            edges.append((match["name"], stack[-1], match["extra"]))
        stack.append(match["name"])
    return edges


EDGES = _tree_edges()


def test_docstring_tree_was_parsed() -> None:
    children = {child for child, _, _ in EDGES}
    assert len(EDGES) >= 20
    assert {"Retry", "ContentDisallowed", "BrokerConnectionError", "ChordError"} <= children


@pytest.mark.parametrize(("child", "parent", "extra"), EDGES, ids=[e[0] for e in EDGES])
def test_tree_line_holds(child: str, parent: str, extra: str | None) -> None:
    child_cls = getattr(exceptions, child)
    parent_cls = getattr(exceptions, parent)
    assert issubclass(child_cls, parent_cls)
    assert issubclass(child_cls, CeleriacError)
    if extra is not None:
        extra_cls = getattr(builtins, extra.removeprefix("builtins."))
        assert issubclass(child_cls, extra_cls)


@pytest.mark.parametrize(("child", "parent", "extra"), EDGES, ids=[e[0] for e in EDGES])
def test_tree_names_are_public(child: str, parent: str, extra: str | None) -> None:
    assert child in exceptions.__all__
    assert parent in exceptions.__all__


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        ("ImproperlyConfigured", "CeleriacError"),
        ("NotRegistered", "CeleriacError"),
        ("Retry", "TaskError"),
        ("Ignore", "TaskError"),
        ("Reject", "TaskError"),
        ("MaxRetriesExceededError", "TaskError"),
        ("TaskRevokedError", "TaskError"),
        ("InvalidTaskError", "TaskError"),
        ("WorkerLostError", "TaskError"),
        ("TimeLimitExceeded", "TaskError"),
        ("ContentDisallowed", "SerializationError"),
        ("EncodeError", "SerializationError"),
        ("DecodeError", "SerializationError"),
        ("BrokerConnectionError", "TransportError"),
        ("TimeoutError", "CeleriacError"),
        ("ChordError", "CeleriacError"),
    ],
)
def test_parsed_tree_contains_known_edges(child: str, parent: str) -> None:
    assert (child, parent) in {(c, p) for c, p, _ in EDGES}


def test_timeout_error_is_also_the_builtin() -> None:
    assert exceptions.TimeoutError is not builtins.TimeoutError
    assert issubclass(exceptions.TimeoutError, builtins.TimeoutError)
    with pytest.raises(builtins.TimeoutError):
        raise exceptions.TimeoutError("The operation timed out.")


def test_not_registered_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        raise NotRegistered("proj.tasks.missing")


def test_soft_time_limit_is_not_a_celeriac_error() -> None:
    assert issubclass(SoftTimeLimitExceeded, Exception)
    assert not issubclass(SoftTimeLimitExceeded, CeleriacError)
    assert not issubclass(SoftTimeLimitExceeded, TaskError)


def test_celery_aliases() -> None:
    assert exceptions.CeleryError is CeleriacError
    assert exceptions.RetryTaskError is Retry


def test_retry_str_with_exception_and_countdown() -> None:
    retry = Retry(exc=ValueError("flaky"), when=5)
    assert retry.humanize() == "in 5s"
    assert str(retry) == "Retry in 5s: ValueError('flaky')"
    assert retry.exc.args == ("flaky",)


def test_retry_str_with_eta() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    retry = Retry(when=when)
    assert retry.humanize() == "at 2026-01-01 00:00:00+00:00"
    assert str(retry) == "Retry at 2026-01-01 00:00:00+00:00"


def test_retry_str_prefers_message() -> None:
    assert str(Retry("custom message", exc=ValueError("x"), when=1.5)) == "custom message"
    assert str(Retry(exc="already text", when=2.5)) == "Retry in 2.5s: already text"


def test_retry_pickles() -> None:
    retry = Retry(exc=ValueError("flaky"), when=10)
    copy = pickle.loads(pickle.dumps(retry))
    assert type(copy) is Retry
    assert str(copy) == str(retry)
    assert copy.when == 10
    assert copy.message is None
    assert copy.excs == "ValueError('flaky')"


def test_retry_with_message_pickles() -> None:
    copy = pickle.loads(pickle.dumps(Retry("try later", when=3)))
    assert (copy.message, copy.when, str(copy)) == ("try later", 3, "try later")


def test_not_registered_message() -> None:
    exc = NotRegistered("proj.tasks.missing")
    assert str(exc) == (
        "Task of kind 'proj.tasks.missing' never registered, please make sure it's imported."
    )


def test_reject_fields() -> None:
    reject = Reject("bad input", requeue=True)
    assert (reject.reason, reject.requeue) == ("bad input", True)
    assert Reject().requeue is False
    assert Reject("x").reason == "x"


def test_max_retries_exceeded_keeps_task_arguments() -> None:
    exc = MaxRetriesExceededError("gave up", task_args=[1], task_kwargs={"k": 2})
    assert (exc.task_args, exc.task_kwargs, str(exc)) == ([1], {"k": 2}, "gave up")


@pytest.mark.parametrize("name", exceptions.__all__)
def test_every_public_name_is_an_exception_or_warning(name: str) -> None:
    obj = getattr(exceptions, name)
    assert isinstance(obj, type)
    assert issubclass(obj, (BaseException, Warning))


def test_cold_shutdown_is_not_an_exception() -> None:
    from celeriac.worker.worker import ColdShutdown as WorkersName

    assert WorkersName is exceptions.ColdShutdown
    assert issubclass(exceptions.ColdShutdown, BaseException)
    assert not issubclass(exceptions.ColdShutdown, Exception)


def test_terminated_is_a_revoke() -> None:
    assert issubclass(exceptions.Terminated, exceptions.TaskRevokedError)
