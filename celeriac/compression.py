"""Message body compression, as kombu does it: ``task_compression`` / ``apply_async(
compression=...)``.

Rules:

* Names and wire types are kombu's: ``zlib`` and ``gzip`` -> ``application/x-gzip`` (zlib's
  format, as kombu writes it), ``bzip2``/``bzip`` -> ``application/x-bz2``, ``lzma``/``xz``
  -> ``application/x-lzma``. The serialized body is compressed and the message's
  ``compression`` header names the type, so Celery workers read celeriac's compressed
  messages and the reverse.
* An unknown name at send time is an :class:`ImproperlyConfigured` naming the known ones.
* Reading never trusts the body: an unknown type, data that does not decompress, or output
  larger than :data:`MAX_DECOMPRESSED_BYTES` (a decompression bomb) is a
  :class:`~celeriac.exceptions.DecodeError`, so the worker rejects that one message and goes
  on. Decompression stops at the limit; it never allocates the whole bomb.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable

from celeriac.exceptions import DecodeError, ImproperlyConfigured

__all__ = ["MAX_DECOMPRESSED_BYTES", "compress", "content_type_of", "decompress"]

#: the most a compressed body may expand to
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024

GZIP, BZ2, LZMA = "application/x-gzip", "application/x-bz2", "application/x-lzma"
_ALIASES = {"zlib": GZIP, "gzip": GZIP, "bzip2": BZ2, "bzip": BZ2, "lzma": LZMA, "xz": LZMA}
_COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    GZIP: zlib.compress, BZ2: bz2.compress, LZMA: lzma.compress,
}


def content_type_of(name: str) -> str:
    """The wire type of compression ``name`` (a kombu name, or the type itself)."""
    found = _ALIASES.get(name.lower(), name if name in _COMPRESSORS else None)
    if found is None:
        raise ImproperlyConfigured(
            f"Unknown compression {name!r}: use one of {', '.join(sorted(_ALIASES))}"
        )
    return found


def compress(body: bytes, name: str) -> tuple[bytes, str]:
    """``body`` compressed with ``name``, and the type for the ``compression`` header."""
    content_type = content_type_of(name)
    return _COMPRESSORS[content_type](body), content_type


def _bounded(decompressor: zlib._Decompress | bz2.BZ2Decompressor | lzma.LZMADecompressor,
             body: bytes, max_bytes: int) -> bytes:
    out = decompressor.decompress(body, max_bytes + 1)
    if len(out) > max_bytes:
        raise DecodeError(f"compressed body expands beyond {max_bytes} bytes: refused")
    if not decompressor.eof:
        raise DecodeError("compressed body is truncated")
    return out


def decompress(body: bytes, content_type: object,
               max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """``body`` as it was before :func:`compress` (see the module rules for what fails)."""
    if not isinstance(content_type, str) or content_type not in _COMPRESSORS:
        raise DecodeError(
            f"message compressed with {content_type!r}, which celeriac does not read "
            f"(it reads {GZIP}, {BZ2} and {LZMA})"
        )
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise DecodeError(f"compressed body is {type(body).__name__}, not bytes")
    decompressor: zlib._Decompress | bz2.BZ2Decompressor | lzma.LZMADecompressor
    if content_type == GZIP:
        decompressor = zlib.decompressobj()
    elif content_type == BZ2:
        decompressor = bz2.BZ2Decompressor()
    else:
        decompressor = lzma.LZMADecompressor()
    try:
        return _bounded(decompressor, bytes(body), max_bytes)
    except (zlib.error, OSError, lzma.LZMAError, EOFError) as exc:
        raise DecodeError(f"compressed body ({content_type}) does not decompress: {exc}") from None
