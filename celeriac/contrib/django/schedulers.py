"""``--scheduler celeriac.contrib.django.schedulers:DatabaseScheduler``: beat reads its periodic
tasks from the database (``celeriac.contrib.django.beat``). Beat also accepts Celery's path,
``django_celery_beat.schedulers:DatabaseScheduler``, for this class."""

from __future__ import annotations

from celeriac.contrib.django.beat.scheduler import DatabaseScheduler

__all__ = ["DatabaseScheduler"]
