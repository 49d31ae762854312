"""The signature verbs (:class:`~celeriac.canvas.signature.Verbs`) over ``send`` and
``compose``: installed on :class:`~celeriac.canvas.signature.Signature` by the package."""

from __future__ import annotations

from typing import Any

from celeriac.canvas import compose, send
from celeriac.canvas.signature import Signature


class CanvasVerbs:
    """Sending and running go to :mod:`.send`; ids, copies and ``|`` to :mod:`.compose`."""

    def call_directly(self, sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return send.call_directly(sig, args, kwargs)

    def apply_async(
        self, sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> Any:
        return send.apply_async(sig, args, kwargs, options)

    def apply(
        self, sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> Any:
        return send.apply(sig, args, kwargs, options)

    def freeze(self, sig: Signature, **ids: Any) -> Any:
        return compose.freeze(sig, **ids)

    def clone(
        self, sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> Signature:
        return compose.clone(sig, args, kwargs, options)

    def pipe(self, left: Signature, right: Any) -> Any:
        return compose.pipe(left, right)
