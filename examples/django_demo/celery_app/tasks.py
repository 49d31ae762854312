"""The tutorial's tasks, found by ``app.autodiscover_tasks()``."""

from django.contrib.auth.models import User

from celeriac import Task, group, shared_task
from celeriac.result import allow_join_result


@shared_task
def add(x, y):
    return x + y


@shared_task
def mul(x, y):
    return x * y


@shared_task
def xsum(numbers):
    return sum(numbers)


@shared_task(bind=True)
def retry_div(self, x, y):
    """Retried every 4 seconds, 4 times at most, while ``y`` is 0."""
    try:
        return x / y
    except ZeroDivisionError as e:
        raise self.retry(exc=e, countdown=4, max_retries=4)


class HookTask(Task):
    """A base task with the tutorial's hooks: they print where the task ran."""

    def on_success(self, retval, task_id, args, kwargs):
        print(f"task {task_id} succeeded: {retval}")

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        print(f"task {task_id} failed: {exc!r}")

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        print(f"task {task_id} returned with status {status}")


@shared_task(base=HookTask)
def hook_add(x, y):
    return x + y


@shared_task
def first_group(n=10):
    """Runs a group and waits for it inside the task: needs a pool with spare workers
    (``--pool threads``) and allow_join_result, as Celery says."""
    with allow_join_result():
        return group(add.s(i, i) for i in range(n))().get(timeout=30)


@shared_task
def user_count():
    """Reads the database: models load at import (tasks.py imports User) and in the worker."""
    return User.objects.count()
