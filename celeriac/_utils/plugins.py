"""Which class serves a URL scheme, found without importing the class (docs/decisions/0010).

A :class:`PluginRegistry` holds the built-in transports of one kind (brokers or result backends)
in a table inside the package, so a source checkout on ``PYTHONPATH`` works without being
pip-installed, and adds third-party ones from an entry-point group. An entry point is named by
the URL scheme it serves; its value is ``module:Class``, with the extra that installs the client
library in brackets::

    [celeriac.brokers]
    toy = toy_transport:ToyBroker [toyclient]

Rules:

* Finding a scheme reads metadata only; the class is imported when a URL asks for it, so
  ``import celeriac`` loads no client library.
* A built-in scheme cannot be taken over: an entry point claiming one is ignored, with a
  :class:`~celeriac.exceptions.CeleriacWarning` naming it when that scheme is used.
* Two third-party packages claiming one scheme make that scheme an error, naming both.
* The class must list the scheme in its own ``schemes``: the entry point is an index of that
  list, and a mismatch is reported instead of serving a URL the class does not expect.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celeriac._utils.imports import symbol_by_name
from celeriac._utils.text import closest
from celeriac.exceptions import CeleriacWarning, ImproperlyConfigured


@dataclass(frozen=True, slots=True)
class Plugin:
    """One class serving one or more URL schemes, named but not imported."""

    #: ``"package.module:Class"``
    target: str
    schemes: tuple[str, ...]
    #: extras of ``distribution`` that install the client library the class needs
    extras: tuple[str, ...] = ()
    distribution: str = "celeriac"

    @property
    def install_hint(self) -> str | None:
        if not self.extras:
            return None
        return f"pip install '{self.distribution}[{','.join(self.extras)}]'"


def scheme_of(url: str) -> str:
    """The lower-cased scheme of ``url`` (all of it when there is no ``://``)."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else url.lower()


@functools.lru_cache(maxsize=8)
def _entry_points(group: str, path: tuple[str, ...]) -> tuple[Plugin, ...]:
    """Third-party registrations in ``group``; cached per ``sys.path`` (the ``path`` key)."""
    # importlib.metadata costs more to import than the rest of celeriac's core: only a URL pays it.
    from importlib.metadata import entry_points

    found: list[Plugin] = []
    for ep in entry_points(group=group):
        dist = ep.dist.name if ep.dist is not None else ep.module.partition(".")[0]
        target = f"{ep.module}:{ep.attr}" if ep.attr else ep.module
        found.append(Plugin(target, (ep.name.lower(),), tuple(ep.extras), dist))
    return tuple(found)


class PluginRegistry:
    """URL scheme -> class, for one kind of plug-in (see the module docstring for the rules)."""

    def __init__(self, kind: str, group: str, builtins: Sequence[Plugin]) -> None:
        #: what the classes are, for messages: "broker", "result backend"
        self.kind = kind
        #: the entry-point group third parties register in
        self.group = group
        self.builtins: dict[str, Plugin] = {}
        for plugin in builtins:
            for scheme in plugin.schemes:
                if scheme in self.builtins:
                    raise ValueError(f"built-in {kind} scheme {scheme!r} listed twice")
                self.builtins[scheme] = plugin

    def third_party(self) -> dict[str, list[Plugin]]:
        """Scheme -> the distinct third-party registrations claiming it."""
        claims: dict[str, list[Plugin]] = {}
        for plugin in _entry_points(self.group, tuple(sys.path)):
            for scheme in plugin.schemes:
                same = claims.setdefault(scheme, [])
                if all(p.target != plugin.target for p in same):
                    same.append(plugin)
        return claims

    def schemes(self) -> list[str]:
        """Every scheme a URL may use, sorted."""
        return sorted({*self.builtins, *self.third_party()})

    def lookup(self, url: str) -> tuple[str, Plugin]:
        """The scheme of ``url`` and the registration serving it; no import happens here."""
        scheme = scheme_of(url)
        claims = self.third_party().get(scheme, [])
        builtin = self.builtins.get(scheme)
        if builtin is not None:
            ignored = [p for p in claims if p.target != builtin.target]
            if ignored:
                names = ", ".join(f"{p.target} (from {p.distribution})" for p in ignored)
                warnings.warn(
                    f"{scheme!r} is a built-in {self.kind} scheme; ignoring the {self.group!r} "
                    f"entry point that claims it: {names}. Register that {self.kind} under a "
                    "scheme of its own.",
                    CeleriacWarning,
                    stacklevel=3,
                )
            return scheme, builtin
        if len(claims) > 1:
            names = ", ".join(
                f"{p.target} (from {p.distribution})"
                for p in sorted(claims, key=lambda p: p.distribution)
            )
            raise ImproperlyConfigured(
                f"{len(claims)} installed packages register a {self.kind} for URL scheme "
                f"{scheme!r}: {names}. Uninstall all but one."
            )
        if claims:
            return scheme, claims[0]
        supported = self.schemes()
        if "://" not in url:
            problem = f"The {self.kind} URL has no scheme (expected scheme://...)"
        else:
            problem = f"No {self.kind} for URL scheme {scheme!r}"
            guess = closest(scheme, supported)
            if guess is not None:
                problem += f" (did you mean {guess!r}?)"
        raise ImproperlyConfigured(
            f"{problem}. Supported: {', '.join(supported)}. Other packages can add one "
            f"through the {self.group!r} entry-point group."
        )

    def load(self, url: str, base: type[Any]) -> type[Any]:
        """Import and check the class serving ``url``, a subclass of ``base``."""
        scheme, plugin = self.lookup(url)
        try:
            cls = symbol_by_name(plugin.target)
        except ImportError as exc:
            hint = plugin.install_hint
            detail = f"The {scheme!r} {self.kind} ({plugin.target}) cannot be imported: {exc}"
            if hint is not None:
                detail += f". Install its client library with: {hint}"
            raise ImproperlyConfigured(detail) from exc
        except AttributeError as exc:
            raise ImproperlyConfigured(
                f"The {scheme!r} {self.kind} names {plugin.target}, which does not exist: {exc}"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise ImproperlyConfigured(
                f"The {scheme!r} {self.kind} names {plugin.target}, which is not a "
                f"{base.__module__}.{base.__qualname__} subclass"
            )
        served: tuple[str, ...] = getattr(cls, "schemes", ())
        if scheme not in served:
            raise ImproperlyConfigured(
                f"{plugin.target} is registered for URL scheme {scheme!r} but serves only "
                f"{', '.join(served) or 'no scheme'} (its `schemes` attribute)"
            )
        return cls


__all__ = ["Plugin", "PluginRegistry", "scheme_of"]
