"""Result records in Celery's format: building, encoding, decoding, and exceptions in them."""

from __future__ import annotations

import pickle
import sys
import types
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, serialization, states
from celeriac._utils.timeutils import parse_iso
from celeriac.exceptions import ContentDisallowed, DecodeError, EncodeError, Retry
from celeriac.result_meta import (
    MAX_EXC_MESSAGE_CHARS,
    MAX_TRACEBACK_CHARS,
    build_meta,
    decode_exception,
    decode_meta,
    encode_exception,
    encode_meta,
    encode_meta_checked,
    is_encoded_exception,
    pending_meta,
)
from celeriac.task import Context

META_KEYS = {"status", "result", "traceback", "children", "date_done", "task_id"}


class TaskFailedError(Exception):
    """A user-defined exception importable as tests.test_result_meta.TaskFailedError."""


class Outer:
    class InnerError(ValueError):
        pass


class KeywordOnlyError(Exception):
    def __init__(self, *, code: int) -> None:
        super().__init__(code)
        self.code = code


class Handle:
    """Not JSON-serializable."""

    def __repr__(self) -> str:
        return "<Handle 7>"


def roundtrip_exception(exc: BaseException) -> BaseException:
    encoded = serialization.json_loads(serialization.json_dumps(encode_exception(exc)))
    return decode_exception(encoded)


# -- build_meta ----------------------------------------------------------------------------------

def test_build_meta_has_celery_keys() -> None:
    meta = build_meta("tid", states.SUCCESS, 16)
    assert set(meta) == META_KEYS
    assert meta["status"] == "SUCCESS"
    assert meta["result"] == 16
    assert meta["traceback"] is None
    assert meta["children"] == []
    assert meta["task_id"] == "tid"


@pytest.mark.parametrize("state", sorted(states.READY_STATES))
def test_date_done_set_for_ready_states(state: str) -> None:
    before = datetime.now(UTC)
    meta = build_meta("tid", state, None)
    done = parse_iso(meta["date_done"])
    assert done is not None
    assert done.tzinfo is not None
    assert before <= done <= datetime.now(UTC)


@pytest.mark.parametrize("state", [*sorted(states.ALL_STATES - states.READY_STATES), "PROGRESS"])
def test_date_done_absent_for_unready_states(state: str) -> None:
    assert build_meta("tid", state, {"done": 1})["date_done"] is None


def test_build_meta_encodes_an_exception_result() -> None:
    meta = build_meta("tid", states.FAILURE, ValueError("bad", 2), traceback="Traceback...")
    assert meta["result"] == {"exc_type": "ValueError", "exc_message": ["bad", 2],
                              "exc_module": "builtins"}
    assert meta["traceback"] == "Traceback..."


def test_build_meta_records_group_and_parent_from_request() -> None:
    request = Context(group="grp", parent_id="parent", task="proj.add", args=[1], kwargs={})
    meta = build_meta("tid", states.SUCCESS, 1, request=request)
    assert meta["group_id"] == "grp"
    assert meta["parent_id"] == "parent"
    assert "name" not in meta


def test_build_meta_extended_fields() -> None:
    request = Context(
        task="proj.add", args=[1, 2], kwargs={"k": 3}, retries=2,
        delivery_info={"routing_key": "math"}, hostname="w1@host",
    )
    meta = build_meta("tid", states.SUCCESS, 3, request=request, extended=True)
    assert {k: meta[k] for k in ("name", "args", "kwargs", "worker", "retries", "queue")} == {
        "name": "proj.add", "args": [1, 2], "kwargs": {"k": 3}, "worker": "w1@host",
        "retries": 2, "queue": "math",
    }
    assert build_meta("tid", states.SUCCESS, 3, request=request, extended=True,
                      worker="other")["worker"] == "other"


def test_pending_meta() -> None:
    meta = pending_meta("tid")
    assert set(meta) == META_KEYS
    assert (meta["status"], meta["result"], meta["date_done"]) == ("PENDING", None, None)


# -- exceptions ----------------------------------------------------------------------------------

def test_builtin_exception_encodes_to_celery_fields() -> None:
    assert encode_exception(KeyError("missing")) == {
        "exc_type": "KeyError", "exc_message": ["missing"], "exc_module": "builtins",
    }
    assert is_encoded_exception(encode_exception(KeyError("missing")))
    assert not is_encoded_exception({"exc_type": "KeyError"})
    assert not is_encoded_exception("KeyError")


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad", 2), KeyError("k"), ZeroDivisionError("division by zero"), RuntimeError()],
    ids=lambda e: type(e).__name__,
)
def test_builtin_exception_decodes_to_same_class(exc: BaseException) -> None:
    decoded = roundtrip_exception(exc)
    assert type(decoded) is type(exc)
    assert decoded.args == exc.args


def test_user_defined_exception_decodes_to_same_class() -> None:
    encoded = encode_exception(TaskFailedError("disk full"))
    assert encoded["exc_module"] == __name__
    assert encoded["exc_type"] == "TaskFailedError"
    decoded = roundtrip_exception(TaskFailedError("disk full"))
    assert type(decoded) is TaskFailedError
    assert decoded.args == ("disk full",)


def test_nested_exception_class_decodes() -> None:
    decoded = roundtrip_exception(Outer.InnerError("inner"))
    assert type(decoded) is Outer.InnerError


def test_celeriac_exception_decodes() -> None:
    decoded = roundtrip_exception(EncodeError("cannot"))
    assert type(decoded) is EncodeError


def test_exception_whose_init_rejects_its_args_still_decodes() -> None:
    decoded = roundtrip_exception(KeywordOnlyError(code=7))
    assert type(decoded) is KeywordOnlyError
    assert decoded.args == (7,)


def test_unimportable_module_gives_stand_in_exception() -> None:
    data = {"exc_type": "QuotaExceeded", "exc_message": ["over"], "exc_module": "no_such_mod_x"}
    decoded = decode_exception(data)
    assert type(decoded).__name__ == "QuotaExceeded"
    assert type(decoded).__module__ == "no_such_mod_x"
    assert isinstance(decoded, Exception)
    assert decoded.args == ("over",)
    with pytest.raises(type(decoded)):
        raise decoded
    # The same name decodes to the same stand-in class, so ``except`` clauses can match it.
    assert type(decode_exception(dict(data))) is type(decoded)


@pytest.mark.parametrize(
    ("module", "name"),
    [("os", "system"), ("builtins", "dict"), ("builtins", "no_such_name"), (None, "Thing")],
)
def test_names_that_are_not_exception_classes_give_stand_ins(module: str | None, name: str) -> None:
    decoded = decode_exception({"exc_type": name, "exc_message": ["x"], "exc_module": module})
    assert type(decoded).__name__ == name
    assert type(decoded).__mro__[1] is Exception
    assert decoded.args == ("x",)


def test_string_message_becomes_single_arg() -> None:
    decoded = decode_exception({"exc_type": "ValueError", "exc_message": "plain",
                                "exc_module": "builtins"})
    assert type(decoded) is ValueError
    assert decoded.args == ("plain",)


def test_unserializable_exception_args_become_reprs() -> None:
    encoded = encode_exception(ValueError(Handle(), 1))
    assert encoded["exc_message"] == ["<Handle 7>", "1"]
    assert decode_exception(encoded).args == ("<Handle 7>", "1")


def test_decode_exception_passes_through_or_wraps() -> None:
    exc = ValueError("x")
    assert decode_exception(exc) is exc
    wrapped = decode_exception("something went wrong")
    assert type(wrapped) is Exception
    assert wrapped.args == ("something went wrong",)


# -- encode / decode records ---------------------------------------------------------------------

def test_encode_decode_round_trip() -> None:
    meta = build_meta("tid", states.SUCCESS, {"at": datetime(2026, 1, 1, tzinfo=UTC), "n": 2})
    assert decode_meta(encode_meta(meta)) == meta


def test_encode_meta_falls_back_to_failure_when_result_cannot_be_serialized() -> None:
    meta = build_meta("tid", states.SUCCESS, object())
    decoded = decode_meta(encode_meta(meta), accept=serialization.accepted_types(["json"]))
    assert decoded["status"] == states.FAILURE
    assert decoded["task_id"] == "tid"
    exc = decode_exception(decoded["result"])
    assert type(exc) is EncodeError
    assert "object" in str(exc)
    assert "json-serializable" in str(exc)


def test_encode_meta_with_pickle_serializer() -> None:
    meta = build_meta("tid", states.SUCCESS, {1, 2})
    payload = encode_meta(meta, "pickle")
    assert pickle.loads(payload)["result"] == {1, 2}
    with pytest.raises(ContentDisallowed):
        decode_meta(payload, "pickle", serialization.accepted_types(["json"]))
    assert decode_meta(payload, "pickle", serialization.accepted_types(["pickle"]))["result"] == {
        1, 2,
    }


@pytest.mark.parametrize("payload", [b"[1, 2]", b'{"result": 1}', b'"SUCCESS"'])
def test_decode_meta_rejects_non_records(payload: bytes) -> None:
    with pytest.raises(DecodeError, match="not a result meta record"):
        decode_meta(payload)


def test_decode_meta_of_garbage_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_meta(b"\x00garbage")


def test_celery_result_meta_decodes() -> None:
    stored = (
        b'{"status": "SUCCESS", "result": 16, "traceback": null, "children": [], '
        b'"date_done": "2026-01-01T00:00:00+00:00", "task_id": "abc"}'
    )
    meta = decode_meta(stored, accept=serialization.accepted_types(["json"]))
    assert meta == {
        "status": "SUCCESS", "result": 16, "traceback": None, "children": [],
        "date_done": "2026-01-01T00:00:00+00:00", "task_id": "abc",
    }
    assert parse_iso(meta["date_done"]) == datetime(2026, 1, 1, tzinfo=UTC)


def test_celery_failure_meta_decodes_to_exception() -> None:
    stored = (
        b'{"status": "FAILURE", "result": {"exc_type": "ZeroDivisionError", '
        b'"exc_message": ["division by zero"], "exc_module": "builtins"}, '
        b'"traceback": "Traceback (most recent call last): ...", "children": null, '
        b'"date_done": "2026-01-01T00:00:00.123456+00:00", "task_id": "abc"}'
    )
    meta = decode_meta(stored)
    exc = decode_exception(meta["result"])
    assert type(exc) is ZeroDivisionError
    assert exc.args == ("division by zero",)


def _celery_backend() -> Any:
    celery = pytest.importorskip("celery")
    from celery.backends.base import BaseBackend

    app = celery.Celery("x", broker="memory://", set_as_current=False)
    return BaseBackend(app=app)


def test_record_written_by_celery_backend_decodes() -> None:
    backend = _celery_backend()
    failure = backend.prepare_exception(TaskFailedError("disk full", 3))
    payload = backend.encode(backend._get_result_meta(failure, "FAILURE", "tb", None))
    meta = decode_meta(payload.encode() if isinstance(payload, str) else payload)
    assert meta["status"] == "FAILURE"
    assert meta["traceback"] == "tb"
    exc = decode_exception(meta["result"])
    assert type(exc) is TaskFailedError
    assert exc.args == ("disk full", 3)


def test_celery_backend_reads_our_records() -> None:
    backend = _celery_backend()
    ok = backend.decode_result(encode_meta(build_meta("tid", states.SUCCESS, [1, "two"])))
    assert (ok["status"], ok["result"], ok["task_id"]) == ("SUCCESS", [1, "two"], "tid")
    failed = backend.decode_result(encode_meta(build_meta("tid", states.FAILURE,
                                                          TaskFailedError("boom"))))
    exc = backend.exception_to_python(failed["result"])
    assert type(exc) is TaskFailedError
    assert exc.args == ("boom",)


def test_retry_result_encodes() -> None:
    meta = build_meta("tid", states.RETRY, Retry(exc=ValueError("later"), when=5))
    assert meta["result"]["exc_type"] == "Retry"
    assert meta["date_done"] is None
    decoded = decode_exception(decode_meta(encode_meta(meta))["result"])
    assert type(decoded) is Retry


# -- safety: records are input ---------------------------------------------------------------------

_MARKER_MODULE = '''
import pathlib
pathlib.Path(__file__).with_name("imported.marker").write_text("imported")

class Boom(Exception):
    pass
'''


@pytest.fixture
def trap_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A real module on sys.path that writes a marker file when imported."""
    name = f"trap_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(_MARKER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, tmp_path / "imported.marker"


def test_decoding_never_imports_the_module_a_record_names(trap_module: tuple[str, Path]) -> None:
    name, marker = trap_module
    decoded = decode_exception({"exc_type": "Boom", "exc_message": ["x"], "exc_module": name})
    assert not marker.exists()
    assert name not in sys.modules
    assert type(decoded).__name__ == "Boom"
    assert type(decoded).__module__ == name
    assert type(decoded).__mro__[1] is Exception
    assert decoded.args == ("x",)


def test_get_raises_a_stand_in_without_importing(app: Celery,
                                                 trap_module: tuple[str, Path]) -> None:
    name, marker = trap_module
    meta = pending_meta("tid")
    meta.update(status="FAILURE",
                result={"exc_type": "Boom", "exc_message": ["stored"], "exc_module": name})
    app.backend.store("tid", "FAILURE", encode_meta(meta), 60)
    with pytest.raises(Exception, match="stored") as raised:
        app.AsyncResult("tid").get(timeout=1)
    assert type(raised.value).__name__ == "Boom"
    assert not marker.exists()
    assert name not in sys.modules


def test_module_getattr_hooks_are_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "getattr.marker"
    module = types.ModuleType(f"lazy_{uuid.uuid4().hex}")

    def lazy(attr: str) -> Any:
        marker.write_text(attr)
        return ValueError

    module.__getattr__ = lazy  # type: ignore[method-assign]
    sys.modules[module.__name__] = module
    try:
        decoded = decode_exception({"exc_type": "Lazy", "exc_message": [],
                                    "exc_module": module.__name__})
    finally:
        del sys.modules[module.__name__]
    assert not marker.exists()
    assert type(decoded).__name__ == "Lazy"
    assert type(decoded) is not ValueError


@pytest.mark.parametrize(
    ("module", "name"),
    [("builtins", "SystemExit"), ("builtins", "KeyboardInterrupt"),
     ("builtins", "GeneratorExit"), ("builtins", "BaseException"),
     ("celeriac.exceptions", "ColdShutdown")],
)
def test_base_exception_only_types_are_never_rebuilt(module: str, name: str) -> None:
    decoded = decode_exception({"exc_type": name, "exc_message": [3], "exc_module": module})
    assert isinstance(decoded, Exception)
    assert type(decoded).__name__ == name
    assert type(decoded).__mro__[1] is Exception
    assert decoded.args == (3,)


def test_exiting_exception_in_a_record_does_not_exit_get(app: Celery) -> None:
    app.backend.store("tid", "FAILURE", encode_meta(build_meta("tid", "FAILURE", SystemExit(3))),
                      60)
    result = app.AsyncResult("tid")
    with pytest.raises(Exception, match="3") as raised:
        result.get(timeout=1)
    assert not isinstance(raised.value, SystemExit)
    assert type(raised.value).__name__ == "SystemExit"
    assert isinstance(result.result, Exception)


def test_stored_traceback_keeps_its_bounded_tail() -> None:
    traceback = "Traceback (most recent call last):\n" + "  frame\n" * 100_000 + "ValueError: x\n"
    stored = build_meta("tid", states.FAILURE, ValueError("x"), traceback=traceback)["traceback"]
    assert len(stored) <= MAX_TRACEBACK_CHARS + 100
    assert stored.endswith("  frame\nValueError: x\n")
    assert "characters cut" in stored.splitlines()[0]


def test_stored_exception_message_is_bounded() -> None:
    encoded = encode_exception(ValueError("x" * 1_000_000))
    assert len(serialization.json_dumps(encoded)) <= MAX_EXC_MESSAGE_CHARS + 200
    assert encoded["exc_message"][0].startswith("xxxx")
    assert "characters cut" in encoded["exc_message"][0]
    many = encode_exception(ValueError(*range(100_000)))
    assert len(serialization.json_dumps(many)) <= MAX_EXC_MESSAGE_CHARS + 200


class BadRepr:
    """An object whose repr() (and so str()) raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class ExitingRepr:
    """An object whose repr() raises SystemExit (a BaseException, not an Exception)."""

    def __repr__(self) -> str:
        raise SystemExit(9)


_BAD_REPRS = {"raises": BadRepr, "exits": ExitingRepr}


@pytest.mark.parametrize("kind", sorted(_BAD_REPRS))
def test_exception_argument_whose_repr_raises_encodes(kind: str) -> None:
    encoded = encode_exception(ValueError(_BAD_REPRS[kind](), 1))
    assert _BAD_REPRS[kind].__name__ in encoded["exc_message"][0]
    assert encoded["exc_message"][1] == "1"


@pytest.mark.parametrize("kind", sorted(_BAD_REPRS))
def test_result_whose_repr_raises_falls_back_to_encode_error(kind: str) -> None:
    result = _BAD_REPRS[kind]()
    payload, error = encode_meta_checked(build_meta("tid", states.SUCCESS, result))
    assert isinstance(error, EncodeError)
    meta = decode_meta(payload)
    assert meta["status"] == states.FAILURE
    assert type(decode_exception(meta["result"])) is EncodeError


def test_result_nested_too_deep_falls_back_to_encode_error() -> None:
    value: list[Any] = []
    for _ in range(900):
        value = [value]
    payload, error = encode_meta_checked(build_meta("tid", states.SUCCESS, value))
    assert isinstance(error, EncodeError)
    assert decode_meta(payload)["status"] == states.FAILURE
    assert encode_meta_checked(build_meta("tid", states.SUCCESS, [1]))[1] is None
