"""Celery protocol v2 <-> Envelope: what goes on the wire, and reading what Celery sends."""

from __future__ import annotations

import decimal
import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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
from celeriac.protocol import (
    REJECTED_BODY_MAX_BYTES,
    REJECTED_HEADERS_MAX_BYTES,
    REJECTED_REASON_MAX_CHARS,
    TaskMessage,
    build_task_message,
    dead_letter,
    decode_task_message,
    open_stored,
    origin,
)

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


# -- hostile input: decode once, validate every header the worker uses -------------------------
def _headers(**overrides: Any) -> dict[str, Any]:
    headers: dict[str, Any] = {"task": "proj.add", "id": "tid"}
    headers.update(overrides)
    return headers


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"retries": "2"}, "retries"),
        ({"retries": -1}, "retries"),
        ({"retries": True}, "retries"),
        ({"eta": "next tuesday"}, "eta"),
        ({"eta": 1767225600}, "eta"),
        ({"expires": "soon"}, "expires"),
        ({"expires": ["2026-01-01"]}, "expires"),
        ({"timelimit": 30}, "timelimit"),
        ({"timelimit": [1, 2, 3]}, "timelimit"),
        ({"timelimit": ["30", None]}, "timelimit"),
        ({"timelimit": [-1, None]}, "timelimit"),
        ({"group": 5}, "group"),
        ({"root_id": ["r"]}, "root_id"),
        ({"parent_id": {"p": 1}}, "parent_id"),
        ({"group_index": "1"}, "group_index"),
        ({"ignore_result": "no"}, "ignore_result"),
        ({"task": ""}, "task"),
        ({"task": ["proj.add"]}, "task"),
        ({"id": 7}, "id"),
    ],
)
def test_every_header_the_worker_uses_is_validated(
    overrides: dict[str, Any], fragment: str
) -> None:
    env = json_envelope([[], {}, {}], headers=_headers(**overrides))
    with pytest.raises(InvalidTaskError, match=fragment):
        decode_task_message(env, JSON_ONLY)


@pytest.mark.parametrize(
    ("properties", "fragment"),
    [({"priority": 256}, "priority"), ({"priority": "high"}, "priority"),
     ({"priority": -1}, "priority")],
)
def test_priority_property_is_validated(properties: dict[str, Any], fragment: str) -> None:
    env = json_envelope([[], {}, {}], headers=_headers(), **properties)
    with pytest.raises(InvalidTaskError, match=fragment):
        decode_task_message(env, JSON_ONLY)


@pytest.mark.parametrize(
    ("embed", "fragment"),
    [
        (5, "embed"),
        ("x", "embed"),
        ({"callbacks": "not a list"}, "callbacks"),
        ({"errbacks": {"task": "x"}}, "errbacks"),
        ({"chain": 1}, "chain"),
        ({"chord": [1]}, "chord"),
    ],
)
def test_embed_is_validated(embed: Any, fragment: str) -> None:
    with pytest.raises(InvalidTaskError, match=fragment):
        decode_task_message(json_envelope([[], {}, embed]), JSON_ONLY)


def test_kwargs_keys_must_be_strings() -> None:
    env = Envelope(
        body=serialization.dumps([[], {1: 2}, {}], "msgpack")[2],
        headers=_headers(),
        content_type="application/x-msgpack",
        content_encoding="binary",
    )
    with pytest.raises(InvalidTaskError, match="kwargs"):
        decode_task_message(env, serialization.accepted_types(["msgpack"]))


def test_headers_that_are_not_a_mapping_are_invalid() -> None:
    env = Envelope(body=b"[[], {}, {}]", headers=["task", "id"])  # type: ignore[arg-type]
    with pytest.raises(InvalidTaskError, match="headers"):
        decode_task_message(env, JSON_ONLY)


def test_validated_headers_are_typed_fields() -> None:
    env = build_task_message(
        task_id="tid-20",
        name="proj.add",
        args=[1],
        eta="2026-01-01T00:00:30",
        expires=datetime(2026, 1, 2, tzinfo=UTC),
        retries=4,
        time_limit=30,
        soft_time_limit=20.5,
        root_id="root",
        parent_id="parent",
        group_id="grp",
        group_index=2,
        ignore_result=True,
        priority=200,
        callbacks=[{"task": "cb"}],
        chain=[{"task": "next"}],
        shadow="shown",
        reply_to="replies",
    )
    m = decode_task_message(env, JSON_ONLY)
    assert m.retries == 4
    assert (m.eta, m.eta_s) == ("2026-01-01T00:00:30", 1767225630.0)
    assert m.expires_s == 1767312000.0
    assert (m.time_limit_s, m.soft_time_limit_s) == (30.0, 20.5)
    assert (m.root_id, m.parent_id, m.group, m.group_index) == ("root", "parent", "grp", 2)
    assert m.ignore_result is True
    assert m.priority == 200
    assert m.callbacks == [{"task": "cb"}] and m.errbacks is None
    assert m.chain == [{"task": "next"}] and m.chord is None
    assert (m.shadow, m.reply_to, m.correlation_id) == ("shown", "replies", "tid-20")


def test_celery_shapes_are_accepted() -> None:
    # Celery sends timelimit as a tuple in process (a list on the wire) and may leave it out.
    for timelimit, expected in [((30, None), (30.0, None)), (None, (None, None)),
                                ([None, 10.5], (None, 10.5))]:
        env = json_envelope([[], {}, None], headers=_headers(timelimit=timelimit))
        m = decode_task_message(env, JSON_ONLY)
        assert (m.time_limit_s, m.soft_time_limit_s) == expected
    m = decode_task_message(json_envelope([[], {}, {}], headers=_headers()), JSON_ONLY)
    assert (m.retries, m.eta_s, m.expires_s, m.group_index, m.ignore_result) == (
        0, None, None, None, False,
    )


@pytest.mark.parametrize(
    ("eta", "expires"),
    [("not a date", "nor this"), (12, [1]), ({"a": 1}, b"\xff"), ("2026-02-30", "")],
)
def test_envelope_timestamps_never_raise(eta: Any, expires: Any) -> None:
    env = Envelope(body=b"", headers={"eta": eta, "expires": expires}, properties={"priority": "x"})
    assert env.eta_timestamp() is None
    assert env.expires_timestamp() is None
    assert env.priority == 0


# -- raw stored parts -> envelope ------------------------------------------------------------
GOOD_HEADERS = b'{"task": "proj.add", "id": "tid"}'


def test_open_stored_reads_good_parts() -> None:
    env, problem = open_stored(GOOD_HEADERS, b'{"priority": 3}', b"[[], {}, {}]",
                               b"application/json", "utf-8")
    assert problem is None
    assert env.headers == {"task": "proj.add", "id": "tid"}
    assert env.properties == {"priority": 3}
    assert (env.body, env.content_type, env.content_encoding) == (
        b"[[], {}, {}]", "application/json", "utf-8",
    )


@pytest.mark.parametrize(
    ("parts", "fragment"),
    [
        ((b"[1, 2]", b"{}", b"x", "application/json", "utf-8"), "headers"),
        ((b"\x00\xff{", b"{}", b"x", "application/json", "utf-8"), "headers"),
        ((GOOD_HEADERS, b'"props"', b"x", "application/json", "utf-8"), "properties"),
        ((GOOD_HEADERS, b"{", b"x", "application/json", "utf-8"), "properties"),
        ((GOOD_HEADERS, b"{}", 12, "application/json", "utf-8"), "body"),
        ((GOOD_HEADERS, b"{}", b"x", b"\xff\xfe", "utf-8"), "content type"),
        ((GOOD_HEADERS, b"{}", b"x", "application/json", None), "content encoding"),
        ((None, b"{}", b"x", "application/json", "utf-8"), "headers"),
    ],
)
def test_open_stored_reports_what_is_wrong(parts: tuple[Any, ...], fragment: str) -> None:
    env, problem = open_stored(*parts)
    assert problem is not None and fragment in problem
    assert isinstance(env.body, bytes)
    # a message whose headers decoded keeps them (so its id gets a FAILURE record)
    if parts[0] == GOOD_HEADERS:
        assert env.task_id == "tid"
    else:
        assert env.headers == {}


def test_dead_letter_copy_is_bounded() -> None:
    body = b"x" * (REJECTED_BODY_MAX_BYTES * 4)
    env = Envelope(
        body=body,
        headers={"task": "proj.add", "id": "tid", "argsrepr": "a" * 1_000_000, "x": [1, 2]},
        properties={"correlation_id": "tid", "junk": "j" * 1_000_000},
    )
    record, reason = dead_letter(env, "bad " * 10_000)
    assert len(record.body) == REJECTED_BODY_MAX_BYTES
    assert "truncated" in reason
    assert len(reason) <= REJECTED_REASON_MAX_CHARS + 200
    assert len(serialization.json_dumps(dict(record.headers))) <= REJECTED_HEADERS_MAX_BYTES
    assert len(serialization.json_dumps(dict(record.properties))) <= REJECTED_HEADERS_MAX_BYTES
    assert record.headers["id"] == "tid" and record.headers["task"] == "proj.add"
    small = Envelope(body=b"[[], {}, {}]", headers={"id": "t2", "task": "x"})
    same, why = dead_letter(small, "bad")
    assert (same.body, dict(same.headers), why) == (small.body, dict(small.headers), "bad")


# -- property tests: nothing but the documented errors escape the decoder ----------------------
_json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_HEADER_KEYS = [
    "task", "id", "retries", "eta", "expires", "timelimit", "group", "group_index", "root_id",
    "parent_id", "ignore_result", "shadow", "origin", "argsrepr", "kwargsrepr",
]
_plausible = {
    "task": st.just("proj.add"),
    "id": st.just("tid"),
    "retries": st.integers(-2, 3),
    "eta": st.sampled_from(["2026-01-01T00:00:00+00:00", "garbage", "2026-13-01"]),
    "expires": st.sampled_from(["2026-01-01T00:00:00", "later", ""]),
    "timelimit": st.lists(st.none() | st.floats(-1, 100) | st.integers(-1, 100), max_size=3),
}
_header_dicts = st.dictionaries(
    st.sampled_from(_HEADER_KEYS),
    _json_values,
    max_size=8,
).flatmap(
    lambda base: st.fixed_dictionaries(
        {}, optional={k: s | _json_values for k, s in _plausible.items()}
    ).map(lambda extra: {**base, **extra})
)
_bodies = st.binary(max_size=40) | _json_values.map(serialization.json_dumps) | st.tuples(
    _json_values, _json_values, _json_values
).map(lambda t: serialization.json_dumps(list(t)))
_raw_mappings = (
    st.binary(max_size=40)
    | _json_values.map(serialization.json_dumps)
    | _header_dicts.map(serialization.json_dumps)
)
_content_types = st.sampled_from(
    ["application/json", "application/x-msgpack", "application/x-python-serialize",
     "application/x-yaml", "text/plain"]
) | st.binary(max_size=8)
_DOCUMENTED = (InvalidTaskError, SerializationError)


@settings(max_examples=300, deadline=None, database=None)
@given(headers=_raw_mappings, properties=_raw_mappings, body=_bodies, content_type=_content_types,
       content_encoding=st.sampled_from(["utf-8", "binary"]) | st.binary(max_size=4))
def test_decoder_lets_nothing_but_documented_errors_escape(
    headers: bytes, properties: bytes, body: bytes, content_type: Any, content_encoding: Any
) -> None:
    env, problem = open_stored(headers, properties, body, content_type, content_encoding)
    assert isinstance(env.headers, dict) and isinstance(env.properties, dict)
    assert isinstance(env.body, bytes)
    env.eta_timestamp(), env.expires_timestamp(), env.priority, env.task_id, env.task_name
    if problem is not None:
        return
    accept = serialization.accepted_types(["json", "msgpack"])
    try:
        m = decode_task_message(env, accept)
    except _DOCUMENTED:
        return
    assert isinstance(m.id, str) and m.id and isinstance(m.name, str) and m.name
    assert isinstance(m.args, list) and isinstance(m.kwargs, dict)
    assert isinstance(m.retries, int) and m.retries >= 0
    assert m.time_limit_s is None or m.time_limit_s >= 0
    assert m.soft_time_limit_s is None or m.soft_time_limit_s >= 0
    assert m.group_index is None or isinstance(m.group_index, int)
    assert m.priority is None or 0 <= m.priority <= 255


@settings(max_examples=200, deadline=None, database=None)
@given(headers=_header_dicts, properties=st.dictionaries(st.text(max_size=12), _json_values),
       body=_bodies)
def test_decoder_on_arbitrary_header_values(
    headers: dict[str, Any], properties: dict[str, Any], body: bytes
) -> None:
    env = Envelope(body=body, headers=headers, properties=properties)
    try:
        decode_task_message(env, JSON_ONLY)
    except _DOCUMENTED:
        pass
