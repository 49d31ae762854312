"""Settings in the tutorial's old upper-case style (Celery 3 names, no namespace): still
understood by celeriac, as by Celery."""

from celeriac.schedules import crontab

from ._common import *  # noqa: F403
from ._common import BROKER

BROKER_URL = BROKER
CELERY_RESULT_BACKEND = BROKER
CELERY_TIMEZONE = "Asia/Shanghai"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERYBEAT_SCHEDULE = {
    "add-every-10-seconds": {
        "task": "celery_app.tasks.add",
        "schedule": 10,
        "args": (16, 16),
    },
    "mul-on-monday-evening": {
        "task": "celery_app.tasks.mul",
        "schedule": crontab(hour=20, minute=20, day_of_week=1),
        "args": (4, 5),
    },
}
