"""The Django app ``celeriac.contrib.django`` (label ``celeriac``): its management commands
(``celeriac_worker``, ``celeriac_beat``) and, in every process that loads it (the web server
too), ``transaction.on_commit`` as the hook of ``Task.delay_on_commit``."""

from __future__ import annotations

from django.apps import AppConfig

from celeriac.contrib.django import fixup


class CeleriacConfig(AppConfig):  # type: ignore[misc]  # django has no stubs
    name = "celeriac.contrib.django"
    label = "celeriac"
    verbose_name = "Celeriac"

    def ready(self) -> None:
        fixup.install_on_commit()
