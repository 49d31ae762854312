"""The ``celeriac`` command line (Celery's ``celery`` command, same options)."""

from __future__ import annotations

__all__: list[str] = []
