"""Workflows: signatures and the chain, group, chord, chunks, xmap and xstarmap primitives.

``celeriac.canvas`` is Celery's ``celery.canvas``: the same names, the same wire format.
"""

from __future__ import annotations

from celeriac.canvas import builtins as _builtins  # noqa: F401 - registers celery.map & co.
from celeriac.canvas.primitives import _chain, chain, chord, chunks, group, xmap, xstarmap
from celeriac.canvas.signature import (
    Signature,
    install_verbs,
    maybe_signature,
    signature,
    subtask,
)
from celeriac.canvas.verbs import CanvasVerbs

install_verbs(CanvasVerbs())

__all__ = [
    "Signature",
    "_chain",
    "chain",
    "chord",
    "chunks",
    "group",
    "maybe_signature",
    "signature",
    "subtask",
    "xmap",
    "xstarmap",
]
