"""The worker runtime."""

from __future__ import annotations

from celeriac.worker.worker import Worker

__all__ = ["Worker"]
