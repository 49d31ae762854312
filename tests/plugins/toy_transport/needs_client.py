"""A transport whose client library is not installed (its extra would install it)."""

from __future__ import annotations

import toy_client_library_that_is_not_installed  # noqa: F401

from celeriac.brokers.memory import MemoryBroker


class NeedsClientBroker(MemoryBroker):
    schemes = ("toy-needs-client",)
