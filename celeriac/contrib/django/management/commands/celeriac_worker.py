"""``manage.py celeriac_worker [options]``: ``celeriac -A <project> worker [options]``."""

from __future__ import annotations

from celeriac.contrib.django.management.base import CeleriacCommand


class Command(CeleriacCommand):
    help = "Start a celeriac worker for this project (the options of `celeriac worker`)."
    command = "worker"
