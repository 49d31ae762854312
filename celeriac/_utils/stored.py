"""How an envelope is laid out when a transport or a store keeps it: headers and properties as
JSON, then body, content type and content encoding. Shared by the SQLite and Redis brokers and
coordination stores (the rejected-message log keeps the same parts). orjson is a core
dependency, so this module loads nothing optional.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from celeriac.exceptions import EncodeError

#: the stored parts of one message as :func:`envelope_parts` lays them out: headers JSON,
#: properties JSON, body, content type, content encoding
StoredParts = tuple[bytes, bytes, bytes, str, str]


def dump_json(mapping: Mapping[str, Any]) -> bytes:
    """``mapping`` as JSON; EncodeError names what cannot be stored."""
    try:
        return orjson.dumps(mapping if type(mapping) is dict else dict(mapping))
    except orjson.JSONEncodeError as exc:
        raise EncodeError(f"Message headers/properties are not JSON-serialisable: {exc}") from exc


def envelope_parts(envelope: Any) -> tuple[bytes, bytes, bytes, str, str]:
    """Headers (JSON), properties (JSON), body, content type and content encoding of an
    :class:`~celeriac.message.Envelope`: what ``protocol.open_stored`` reads back."""
    return (
        dump_json(envelope.headers),
        dump_json(envelope.properties),
        envelope.body,
        envelope.content_type,
        envelope.content_encoding,
    )


def envelope_bytes(envelope: Any) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """:func:`envelope_parts` with the content type and encoding as UTF-8 bytes (Redis)."""
    h, p, b, t, e = envelope_parts(envelope)
    return h, p, b, t.encode(), e.encode()
