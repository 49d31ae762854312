"""Codec registry: JSON markers shared with kombu, accept_content checks, msgpack, errors."""

from __future__ import annotations

import decimal
import pickle
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from celeriac import serialization
from celeriac.exceptions import (
    ContentDisallowed,
    DecodeError,
    EncodeError,
    SerializationError,
)

JSON = "application/json"
PICKLE = "application/x-python-serialize"
MSGPACK = "application/x-msgpack"

AWARE = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
AWARE_OFFSET = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
NAIVE = datetime(2026, 1, 2, 3, 4, 5)

# Values whose JSON form uses kombu's {"__type__", "__value__"} markers.
MARKED_VALUES: dict[str, Any] = {
    "aware_datetime": AWARE,
    "offset_datetime": AWARE_OFFSET,
    "naive_datetime": NAIVE,
    "date": date(2026, 1, 2),
    "time": time(3, 4, 5, 6),
    "decimal": decimal.Decimal("1.10"),
    "decimal_precise": decimal.Decimal("0.1000000000000000000000000001"),
    "bytes": b"\x00\xffbinary\n",
}

BIG_INTS = [2**64, 2**70, -(2**63) - 1, -(2**100), 10**40]


def roundtrip(value: Any) -> Any:
    return serialization.json_loads(serialization.json_dumps(value))


@pytest.mark.parametrize("key", sorted(MARKED_VALUES))
def test_json_round_trip_of_marked_types(key: str) -> None:
    value = MARKED_VALUES[key]
    decoded = roundtrip(value)
    assert decoded == value
    assert type(decoded) is type(value)


def test_aware_datetime_keeps_its_offset_and_naive_stays_naive() -> None:
    assert roundtrip(AWARE_OFFSET).utcoffset() == timedelta(hours=5, minutes=30)
    assert roundtrip(AWARE).tzinfo is not None
    assert roundtrip(NAIVE).tzinfo is None


def test_datetime_is_written_with_kombu_marker() -> None:
    payload = serialization.json_dumps(AWARE)
    assert kombu_loads(payload) == AWARE
    assert b'"__type__":"datetime"' in payload
    assert AWARE.isoformat().encode() in payload


def test_uuid_is_written_as_plain_string() -> None:
    # orjson serializes UUIDs natively (without calling ``default``), as their canonical string.
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    payload = serialization.json_dumps({"id": value})
    assert payload == b'{"id":"12345678-1234-5678-1234-567812345678"}'
    decoded = serialization.json_loads(payload)
    assert decoded == {"id": str(value)}
    assert uuid.UUID(decoded["id"]) == value


@pytest.mark.parametrize(
    "marker",
    [
        {"__type__": "uuid", "__value__": {"hex": "12345678123456781234567812345678"}},
        {"__type__": "uuid", "__value__": "12345678-1234-5678-1234-567812345678"},
    ],
)
def test_uuid_markers_decode(marker: dict[str, Any]) -> None:
    payload = serialization.json_dumps({"id": marker})
    assert serialization.json_loads(payload) == {
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678")
    }


def test_kombu_uuid_payload_decodes_to_uuid() -> None:
    value = uuid.uuid4()
    assert serialization.json_loads(kombu_dumps([value])) == [value]


@pytest.mark.parametrize("value", BIG_INTS, ids=str)
def test_big_ints_beyond_64_bits_round_trip_exactly(value: int) -> None:
    decoded = roundtrip({"n": value, "nested": [value]})
    assert decoded == {"n": value, "nested": [value]}
    assert type(decoded["n"]) is int


@pytest.mark.parametrize("value", BIG_INTS, ids=str)
def test_big_ints_from_kombu_decode_exactly(value: int) -> None:
    decoded = serialization.json_loads(kombu_dumps({"n": value}))
    assert decoded == {"n": value}
    assert type(decoded["n"]) is int


def test_big_int_payload_still_revives_markers() -> None:
    value = [2**70 + 1, AWARE, b"\x01", "1234567890123456789012"]
    assert roundtrip(value) == value


def test_int64_edges_round_trip() -> None:
    edges = [2**63 - 1, -(2**63), 2**64 - 1, 0, -1]
    assert roundtrip(edges) == edges


def test_nested_structure_round_trip() -> None:
    value = {
        "when": AWARE,
        "items": [
            {"day": date(2026, 1, 2), "amount": decimal.Decimal("9.99"), "raw": b"\x00"},
            [NAIVE, [time(1, 2), {"deep": {"deeper": [b"x", decimal.Decimal("-3")]}}]],
        ],
        "plain": {"a": 1, "b": [1.5, None, True, "s"]},
    }
    assert roundtrip(value) == value


def test_tuples_become_lists_and_int_keys_become_strings() -> None:
    decoded = roundtrip({"t": (1, 2), 4: "four"})
    assert decoded == {"t": [1, 2], "4": "four"}


@pytest.mark.parametrize("value", [{3}, frozenset({3})])
def test_sets_are_refused_as_kombu_json_refuses_them(value: Any) -> None:
    # A set silently made a list reaches the task as a list (issue 14): refuse it, and say
    # what to pass instead.
    with pytest.raises(EncodeError, match="is not JSON serializable; pass a list instead"):
        serialization.dumps({"s": value}, "json")


def test_dict_with_user_type_key_is_not_mistaken_for_marker() -> None:
    # A user dict that merely has a "__type__" key (with other keys) is left alone.
    value = {"__type__": "datetime", "__value__": "2026-01-01", "other": 1}
    assert roundtrip(value) == value
    unknown = {"__type__": "no-such-type", "__value__": 3}
    assert roundtrip(unknown) == unknown


@pytest.mark.parametrize("key", sorted(MARKED_VALUES))
def test_kombu_decodes_our_payload(key: str) -> None:
    value = MARKED_VALUES[key]
    assert kombu_loads(serialization.json_dumps({"v": value})) == {"v": value}


@pytest.mark.parametrize("key", sorted(MARKED_VALUES))
def test_we_decode_kombu_payload(key: str) -> None:
    value = MARKED_VALUES[key]
    assert serialization.json_loads(kombu_dumps({"v": value})) == {"v": value}


def test_kombu_and_we_agree_on_a_nested_payload() -> None:
    value = [[1, AWARE], {"d": decimal.Decimal("2.5"), "b": b"\xfe", "day": date(2020, 2, 29)}]
    assert kombu_loads(serialization.json_dumps(value)) == value
    assert serialization.json_loads(kombu_dumps(value)) == value


def test_json_loads_accepts_str() -> None:
    assert serialization.json_loads(kombu_dumps({"d": AWARE})) == {"d": AWARE}
    assert isinstance(kombu_dumps({}), str)


def test_dumps_returns_content_type_encoding_and_bytes() -> None:
    content_type, encoding, payload = serialization.dumps({"a": 1})
    assert (content_type, encoding) == (JSON, "utf-8")
    assert serialization.loads(payload, content_type) == {"a": 1}


def test_dumps_of_unserializable_value_raises_encode_error() -> None:
    with pytest.raises(EncodeError, match="object"):
        serialization.dumps({"x": object()})


def test_dumps_with_unknown_serializer_raises_encode_error() -> None:
    with pytest.raises(EncodeError, match="no-such"):
        serialization.dumps(1, "no-such")


def test_accepted_types_maps_names_to_content_types() -> None:
    assert serialization.accepted_types(["json"]) == frozenset({JSON})
    assert serialization.accepted_types([JSON]) == frozenset({JSON})
    assert serialization.accepted_types(["json", "pickle", "msgpack"]) == frozenset(
        {JSON, PICKLE, MSGPACK}
    )
    assert serialization.accepted_types(["application/x-custom"]) == frozenset(
        {"application/x-custom"}
    )
    assert serialization.accepted_types(None) == frozenset({JSON})
    assert serialization.accepted_types([]) == frozenset()


def test_loads_refuses_content_type_not_in_accept() -> None:
    _, _, payload = serialization.dumps([1, 2], "pickle")
    with pytest.raises(ContentDisallowed, match="x-python-serialize"):
        serialization.loads(payload, PICKLE, serialization.accepted_types(["json"]))


class _Exploding:
    """Unpickling this records that it happened: pickle must not be decoded when refused."""

    loaded = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (_mark_loaded, ())


def _mark_loaded() -> None:
    _Exploding.loaded = True


def test_pickle_refused_by_default_never_unpickles() -> None:
    payload = pickle.dumps(_Exploding())
    _Exploding.loaded = False
    with pytest.raises(ContentDisallowed):
        serialization.loads(payload, PICKLE, serialization.accepted_types(None))
    assert _Exploding.loaded is False


def test_pickle_accepted_when_listed() -> None:
    value = {"a": (1, 2), "s": {3}}
    content_type, encoding, payload = serialization.dumps(value, "pickle")
    assert (content_type, encoding) == (PICKLE, "binary")
    accept = serialization.accepted_types(["json", "pickle"])
    assert serialization.loads(payload, content_type, accept) == value


def test_loads_of_unknown_content_type_raises_decode_error() -> None:
    with pytest.raises(DecodeError, match="application/x-nope"):
        serialization.loads(b"{}", "application/x-nope")


def test_loads_of_garbage_raises_decode_error() -> None:
    with pytest.raises(DecodeError) as info:
        serialization.loads(b"\xff{not json", JSON, serialization.accepted_types(["json"]))
    assert isinstance(info.value, SerializationError)
    assert isinstance(info.value, ValueError)


def test_msgpack_round_trip() -> None:
    value = {
        "when": AWARE,
        "day": date(2026, 1, 2),
        "amount": decimal.Decimal("1.10"),
        "raw": b"\x00\xff",
        "nested": [1, "two", {"three": [3.0, None, True]}],
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    }
    content_type, encoding, payload = serialization.dumps(value, "msgpack")
    assert (content_type, encoding) == (MSGPACK, "binary")
    accept = serialization.accepted_types(["msgpack"])
    assert serialization.loads(payload, content_type, accept) == value


def test_msgpack_refused_unless_accepted() -> None:
    _, _, payload = serialization.dumps([1], "msgpack")
    with pytest.raises(ContentDisallowed):
        serialization.loads(payload, MSGPACK, serialization.accepted_types(["json"]))


def test_codec_lookup_by_name_and_content_type() -> None:
    assert serialization.codec("json") is serialization.codec(JSON)
    assert serialization.codec("pickle").content_type == PICKLE
    with pytest.raises(EncodeError):
        serialization.codec("application/x-nope")


def test_find_unserializable_names_positional_argument() -> None:
    message = serialization.find_unserializable([1, "ok", object()], {"k": 1}, "json")
    assert message.startswith("argument 2 (object)")


def test_find_unserializable_names_keyword_argument() -> None:
    message = serialization.find_unserializable([1], {"fine": 2, "bad": {1, object()}}, "json")
    assert message.startswith("keyword argument 'bad' (set)")


def test_find_unserializable_when_arguments_are_fine() -> None:
    assert serialization.find_unserializable([1], {"k": AWARE}, "json") == "an option or header"
    assert serialization.find_unserializable(None, None, "json") == "an option or header"
