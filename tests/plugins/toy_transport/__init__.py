"""A third-party transport as small as one can be: ``toy://`` for a broker and a result backend.

It reuses the memory broker's storage; what it shows is the registration, declared in the
distribution's entry points (see tests/test_plugins.py)::

    [celeriac.brokers]
    toy = toy_transport:ToyBroker

    [celeriac.backends]
    toy = toy_transport:ToyBackend
"""

from __future__ import annotations

from celeriac.backends.memory import MemoryBackend
from celeriac.brokers.memory import MemoryBroker


class ToyBroker(MemoryBroker):
    schemes = ("toy",)


class ToyBackend(MemoryBackend):
    schemes = ("toy",)


class WrongSchemeBroker(MemoryBroker):
    """Registered under a scheme it does not list: celeriac must refuse it."""

    schemes = ("something-else",)


class NotABroker:
    schemes = ("toy-not-a-broker",)
