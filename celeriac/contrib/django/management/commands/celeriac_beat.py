"""``manage.py celeriac_beat [options]``: ``celeriac -A <project> beat [options]``."""

from __future__ import annotations

from celeriac.contrib.django.management.base import CeleriacCommand


class Command(CeleriacCommand):
    help = "Start celeriac beat for this project (the options of `celeriac beat`)."
    command = "beat"
