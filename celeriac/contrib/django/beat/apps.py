"""The Django app of the database scheduler (label ``celeriac_beat``)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig

#: the models whose changes a running beat must see
WATCHED = ("PeriodicTask", "IntervalSchedule", "CrontabSchedule", "ClockedSchedule")


class BeatConfig(AppConfig):  # type: ignore[misc]
    name = "celeriac.contrib.django.beat"
    label = "celeriac_beat"
    verbose_name = "Periodic tasks (celeriac)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Every save or delete of a task or a schedule bumps ``ScheduleChange``."""
        from django.db.models.signals import post_delete, post_save

        change = self.get_model("ScheduleChange")

        def changed(sender: Any, using: str = "default", **kwargs: Any) -> None:
            change.bump(using=using)

        for name in WATCHED:
            model = self.get_model(name)
            for signal, kind in ((post_save, "save"), (post_delete, "delete")):
                signal.connect(changed, sender=model, weak=False,
                               dispatch_uid=f"celeriac_beat_{kind}_{name}")
