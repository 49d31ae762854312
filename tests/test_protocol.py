"""Celery protocol v2 <-> Envelope: what goes on the wire, and reading what Celery sends."""

from __future__ import annotations

import decimal
import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from kombu.utils.json import dumps as kombu_dumps

from celeriac import serialization
from celeriac.exceptions import (
    ContentDisallowed,
    DecodeError,
    EncodeError,
    InvalidTaskError,
    SerializationError,
)
from celeriac.message import Envelope
from celeriac.protocol import TaskMessage, build_task_message, decode_task_message, origin

JSON_ONLY = serialization.accepted_types(["json"])

V2_HEADER_KEYS = {
    "lang",
    "task",
    "id",
    "shadow",
    "eta",
    "expires",
    "group",
    "group_index",
    "retries",
    "timelimit",
    "root_id",
    "parent_id",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "ignore_result",
}


def json_envelope(body: Any, headers: dict[str, Any] | None = None, **properties: Any) -> Envelope:
    return Envelope(
        body=serialization.json_dumps(body),
        headers={"task": "proj.add", "id": "tid"} if headers is None else headers,
        properties=properties,
    )


def test_headers_hold_exactly_the_protocol_v2_keys() -> None:
    env = build_task_message(task_id="tid-1", name="proj.tasks.add", args=(2, 3), kwargs={"z": 1})
    assert set(env.headers) == V2_HEADER_KEYS
    headers = env.headers
    assert headers["lang"] == "py"
    assert headers["task"] == "proj.tasks.add"
    assert headers["id"] == "tid-1"
    assert headers["root_id"] == "tid-1"
    assert headers["parent_id"] is None
    assert headers["retries"] == 0
    assert headers["timelimit"] == [None, None]
    assert headers["eta"] is None and headers["expires"] is None
    assert headers["argsrepr"] == "[2, 3]"
    assert headers["kwargsrepr"] == "{'z': 1}"
    assert headers["origin"] == origin()
    assert headers["ignore_result"] is False


def test_options_land_in_their_headers() -> None:
    env = build_task_message(
        task_id="tid-2",
        name="proj.tasks.add",
        retries=3,
        time_limit=30,
        soft_time_limit=20,
        root_id="root",
        parent_id="parent",
        group_id="grp",
        group_index=4,
        ignore_result=True,
        shadow="shadow-name",
        extra_headers={"custom": "x"},
    )
    h = env.headers
    assert (h["retries"], h["timelimit"], h["root_id"], h["parent_id"]) == (
        3, [30, 20], "root", "parent",
    )
    assert (h["group"], h["group_index"], h["ignore_result"], h["shadow"]) == (
        "grp", 4, True, "shadow-name",
    )
    assert h["custom"] == "x"


def test_correlation_id_property_is_the_task_id() -> None:
    env = build_task_message(task_id="tid-3", name="t", reply_to="replies")
    assert env.properties["correlation_id"] == "tid-3"
    assert env.properties["reply_to"] == "replies"
    assert env.task_id == "tid-3"
    assert env.task_name == "t"


def test_body_is_args_kwargs_embed() -> None:
    env = build_task_message(
        task_id="tid-4",
        name="t",
        args=(1, "two"),
        kwargs={"k": [3]},
        callbacks=[{"task": "cb"}],
        errbacks=[{"task": "eb"}],
        chain=[{"task": "next"}],
        chord={"task": "body"},
    )
    assert (env.content_type, env.content_encoding) == ("application/json", "utf-8")
    body = serialization.loads(env.body, env.content_type, JSON_ONLY)
    assert body == [
        [1, "two"],
        {"k": [3]},
        {
            "callbacks": [{"task": "cb"}],
            "errbacks": [{"task": "eb"}],
            "chain": [{"task": "next"}],
            "chord": {"task": "body"},
        },
    ]


def test_empty_call_has_empty_args_kwargs_and_null_embed() -> None:
    env = build_task_message(task_id="tid-5", name="t")
    assert serialization.json_loads(env.body) == [
        [],
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]


def test_eta_and_expires_become_iso_strings_with_right_epoch() -> None:
    eta = datetime(2026, 1, 1, tzinfo=UTC)
    expires = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    env = build_task_message(task_id="tid-6", name="t", eta=eta, expires=expires)
    assert env.headers["eta"] == "2026-01-01T00:00:00+00:00"
    assert env.headers["expires"] == "2026-01-01T02:00:00+02:00"
    assert env.eta_timestamp() == 1767225600.0
    assert env.expires_timestamp() == 1767225600.0


def test_naive_eta_is_read_as_utc_and_strings_pass_through() -> None:
    env = build_task_message(task_id="tid-7", name="t", eta=datetime(2026, 1, 1, 0, 0, 30))
    assert env.headers["eta"] == "2026-01-01T00:00:30"
    assert env.eta_timestamp() == 1767225630.0
    env = build_task_message(task_id="tid-8", name="t", expires="2026-01-01T00:01:00+00:00")
    assert env.headers["expires"] == "2026-01-01T00:01:00+00:00"
    assert env.expires_timestamp() == 1767225660.0


def test_no_eta_means_now() -> None:
    env = build_task_message(task_id="tid-9", name="t")
    assert env.eta_timestamp() is None
    assert env.expires_timestamp() is None


def test_priority_goes_into_properties() -> None:
    env = build_task_message(task_id="tid-10", name="t", priority=7)
    assert env.properties["priority"] == 7
    assert env.priority == 7
    assert "priority" not in env.headers
    plain = build_task_message(task_id="tid-11", name="t")
    assert "priority" not in plain.properties
    assert plain.priority == 0


def test_non_serializable_positional_argument_is_named() -> None:
    with pytest.raises(EncodeError, match=r"'proj.add'.*argument 1 \(object\)") as info:
        build_task_message(task_id="tid-12", name="proj.add", args=(1, object()))
    assert "json-serializable" in str(info.value)
    assert isinstance(info.value, TypeError)


def test_non_serializable_keyword_argument_is_named() -> None:
    with pytest.raises(EncodeError, match="keyword argument 'handle'"):
        build_task_message(task_id="tid-13", name="proj.add", kwargs={"ok": 1, "handle": object()})


def test_decode_round_trip() -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    env = build_task_message(
        task_id="tid-14",
        name="proj.tasks.add",
        args=[1, when],
        kwargs={"amount": decimal.Decimal("2.50"), "raw": b"\x00"},
        retries=2,
        callbacks=[{"task": "cb"}],
        priority=3,
    )
    message = decode_task_message(env, JSON_ONLY)
    assert isinstance(message, TaskMessage)
    assert message.id == "tid-14"
    assert message.name == "proj.tasks.add"
    assert message.args == [1, when]
    assert message.kwargs == {"amount": decimal.Decimal("2.50"), "raw": b"\x00"}
    assert message.retries == 2
    assert message.embed["callbacks"] == [{"task": "cb"}]
    assert message.properties["priority"] == 3
    assert message.headers["root_id"] == "tid-14"


def test_decode_round_trip_with_msgpack() -> None:
    env = build_task_message(task_id="tid-15", name="t", args=[b"\x01"], serializer="msgpack")
    assert env.content_type == "application/x-msgpack"
    message = decode_task_message(env, serialization.accepted_types(["msgpack"]))
    assert message.args == [b"\x01"]


def test_task_id_may_come_from_correlation_id() -> None:
    env = json_envelope([[], {}, {}], headers={"task": "t"}, correlation_id="from-props")
    assert decode_task_message(env, JSON_ONLY).id == "from-props"


def test_missing_task_header_is_invalid() -> None:
    env = json_envelope([[], {}, {}], headers={"id": "tid"})
    with pytest.raises(InvalidTaskError, match="no 'task' header"):
        decode_task_message(env, JSON_ONLY)


def test_protocol_v1_message_is_invalid() -> None:
    # Protocol v1 put everything in the body; no headers.
    env = json_envelope({"task": "t", "id": "tid", "args": [], "kwargs": {}}, headers={})
    with pytest.raises(InvalidTaskError):
        decode_task_message(env, JSON_ONLY)


def test_missing_id_is_invalid() -> None:
    env = json_envelope([[], {}, {}], headers={"task": "proj.add"})
    with pytest.raises(InvalidTaskError, match=r"'proj\.add' has no task id"):
        decode_task_message(env, JSON_ONLY)


@pytest.mark.parametrize(
    "body",
    [
        [[], {}],
        [[], {}, {}, {}],
        {"args": [], "kwargs": {}},
        "text",
        None,
    ],
    ids=["two-items", "four-items", "dict", "string", "null"],
)
def test_body_that_is_not_a_three_list_is_invalid(body: Any) -> None:
    with pytest.raises(InvalidTaskError, match=r"proj.add\[tid\].*\[args, kwargs, embed\]"):
        decode_task_message(json_envelope(body), JSON_ONLY)


@pytest.mark.parametrize(
    "body",
    [[{"a": 1}, {}, {}], ["1, 2", {}, {}], [[], [], {}], [[], "k=1", {}]],
    ids=["args-dict", "args-str", "kwargs-list", "kwargs-str"],
)
def test_args_and_kwargs_of_wrong_type_are_invalid(body: Any) -> None:
    with pytest.raises(InvalidTaskError, match="wrong type"):
        decode_task_message(json_envelope(body), JSON_ONLY)


def test_non_dict_embed_is_tolerated_as_empty() -> None:
    message = decode_task_message(json_envelope([[1], {}, None]), JSON_ONLY)
    assert message.args == [1]
    assert message.embed == {}


def test_undecodable_body_raises_decode_error() -> None:
    env = Envelope(body=b"\xff\xfe not json", headers={"task": "t", "id": "tid"})
    with pytest.raises(DecodeError) as info:
        decode_task_message(env, JSON_ONLY)
    assert isinstance(info.value, SerializationError)


def test_disallowed_content_type_raises_content_disallowed() -> None:
    env = Envelope(
        body=pickle.dumps([[], {}, {}]),
        headers={"task": "t", "id": "tid"},
        content_type="application/x-python-serialize",
        content_encoding="binary",
    )
    with pytest.raises(ContentDisallowed) as info:
        decode_task_message(env, JSON_ONLY)
    assert isinstance(info.value, SerializationError)
    accepted = decode_task_message(env, serialization.accepted_types(["json", "pickle"]))
    assert accepted.name == "t"


def test_message_built_by_celery_decodes() -> None:
    celery = pytest.importorskip("celery")
    app = celery.Celery("x", broker="memory://", set_as_current=False)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    msg = app.amqp.as_task_v2(
        "celery-task-id",
        "proj.tasks.add",
        args=(2, 3),
        kwargs={"when": when, "amount": decimal.Decimal("1.5")},
        countdown=10,
        expires=60,
        retries=1,
        time_limit=30,
        soft_time_limit=20,
    )
    env = Envelope(
        body=kombu_dumps(msg.body).encode("utf-8"),
        headers=msg.headers,
        properties=msg.properties,
        content_type="application/json",
        content_encoding="utf-8",
    )
    message = decode_task_message(env, JSON_ONLY)
    assert message.name == "proj.tasks.add"
    assert message.id == "celery-task-id"
    assert message.args == [2, 3]
    assert message.kwargs == {"when": when, "amount": decimal.Decimal("1.5")}
    assert message.retries == 1
    assert message.embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    assert env.properties["correlation_id"] == message.id
    eta, expires = env.eta_timestamp(), env.expires_timestamp()
    assert eta is not None and expires is not None
    assert expires - eta == pytest.approx(50, abs=1)
    assert set(V2_HEADER_KEYS) <= set(msg.headers)
