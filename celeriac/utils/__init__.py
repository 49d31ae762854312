"""``celeriac.utils``: Celery's public utility import paths (``celeriac.utils.log``)."""

from __future__ import annotations

__all__: list[str] = []
