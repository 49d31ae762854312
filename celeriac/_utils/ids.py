"""Task ids: random (version 4) UUID strings, made without building a uuid.UUID object."""

from __future__ import annotations

import os


def new_id() -> str:
    """``str(uuid.uuid4())``, about 4x faster (ids are made once per message sent)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_ids(count: int) -> list[str]:
    """``count`` ids like :func:`new_id`'s from one read of the random source (bulk sends
    make thousands; one ``os.urandom`` call per id was most of an id's cost)."""
    h = os.urandom(16 * count).hex()
    variant = "89ab89ab89ab89ab"
    return [
        f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-"
        f"{variant[int(h[i + 16], 16)]}{h[i + 17:i + 20]}-{h[i + 20:i + 32]}"
        for i in range(0, 32 * count, 32)
    ]
