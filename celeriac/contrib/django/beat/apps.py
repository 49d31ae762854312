"""The Django app of the database scheduler (label ``celeriac_beat``)."""

from __future__ import annotations

from django.apps import AppConfig


class BeatConfig(AppConfig):  # type: ignore[misc]
    name = "celeriac.contrib.django.beat"
    label = "celeriac_beat"
    verbose_name = "Periodic tasks (celeriac)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celeriac.contrib.django.beat import models

        models.connect_signals()
