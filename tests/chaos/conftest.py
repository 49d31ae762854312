"""Chaos tests are short by default; ``CELERIAC_CHAOS=long`` runs the sizes docs/reliability.md
quotes (5,000 tasks, 5 attacks)."""

from __future__ import annotations

import os

import pytest

LONG = os.environ.get("CELERIAC_CHAOS", "").lower() == "long"


@pytest.fixture
def size() -> dict[str, int]:
    if LONG:
        return {"tasks": 5000, "attacks": 5}
    return {"tasks": 600, "attacks": 2}


from tests.postgres.test_restart import private_postgres  # noqa: E402, F401 - a private cluster
from tests.redis.conftest import durable_redis  # noqa: E402, F401 - the private server fixture
