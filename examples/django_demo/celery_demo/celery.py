"""The project's celeriac app, exactly the pattern of Celery's Django docs: no
``django.setup()`` here; ``celeriac -A celery_demo worker`` does it at the right moment."""

import os

from celeriac import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "celery_demo.settings")

app = Celery("celery_demo")
# Settings come from Django's: CELERY_-prefixed names (settings.py) or the tutorial's old
# uppercase names (settings_old.py: BROKER_URL, CELERYBEAT_SCHEDULE...); both are understood.
app.config_from_object("django.conf:settings", namespace="CELERY")
# tasks.py of every installed app, loaded when the worker starts (not now: apps aren't ready).
app.autodiscover_tasks()


@app.task(bind=True, ignore_result=True)
def debug_task(self):
    print(f"Request: {self.request!r}")
