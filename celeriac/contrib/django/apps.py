"""The Django app ``celeriac.contrib.django`` (label ``celeriac``)."""

from __future__ import annotations

from django.apps import AppConfig


class CeleriacConfig(AppConfig):
    name = "celeriac.contrib.django"
    label = "celeriac"
    verbose_name = "Celeriac"
