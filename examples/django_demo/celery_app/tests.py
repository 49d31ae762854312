"""The demo's tests of its tasks and views, in eager mode (celeriac's ``celeriac_eager``
fixture): ``python -m pytest celery_app/tests.py`` in examples/django_demo."""

import pytest
from django.contrib.auth.models import User

from .tasks import add, retry_div, user_count


def test_index_view_runs_the_task(client, celeriac_eager):
    response = client.get("/celery_app/", {"x": 2, "y": 3})
    assert response.status_code == 200
    assert response.json()["task_id"]


def test_tasks_run_in_the_tests_process(celeriac_eager):
    assert add.delay(2, 3).get() == 5


@pytest.mark.django_db
def test_eager_tasks_see_the_tests_database(celeriac_eager):
    User.objects.create(username="ada")
    assert user_count.delay().get() == 1


def test_errors_reach_the_caller(celeriac_eager):
    with pytest.raises(ZeroDivisionError):
        retry_div.delay(1, 0)
