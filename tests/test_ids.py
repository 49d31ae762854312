"""Task ids are RFC 4122 version-4 UUID strings, all different."""

from __future__ import annotations

import uuid

from celeriac._utils.ids import new_id, new_ids


def test_new_id_is_a_version_4_uuid() -> None:
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:500]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_new_ids_are_version_4_uuids() -> None:
    ids = new_ids(5000)
    assert len(ids) == 5000
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
