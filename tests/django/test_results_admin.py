"""The results in Django's admin (test client, a superuser): the change lists load, filter and
search; records are read-only there; ``django-db`` rows come from the backend itself."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from celeriac import Celery, states
from celeriac.contrib.django.results.models import ChordCounter, GroupResult, TaskResult

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored() -> Celery:
    """Three task records and a group, stored the way a worker stores them."""
    app = Celery("admin-test", broker="memory://", backend="django-db", set_as_current=False)
    app.conf.result_extended = True
    app.store_result("t-ok", 42, states.SUCCESS)
    try:
        raise KeyError("missing-key")
    except KeyError as exc:
        app.store_result("t-failed", exc, states.FAILURE, traceback="Traceback: KeyError")
    app.store_result("t-started", None, states.STARTED)
    app.backend.incr("chord-unlock-g1", 2, 60)
    return app


@pytest.fixture
def admin_client(client: Client, django_user_model: Any) -> Client:
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return client


def _listed(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def test_task_changelist_filters_and_searches(stored: Celery, admin_client: Client) -> None:
    assert TaskResult.objects.count() == 3
    page = _listed(admin_client, "/admin/celeriac_results/taskresult/")
    assert all(task_id in page for task_id in ("t-ok", "t-failed", "t-started"))
    assert "By state" in page  # the list filters are shown
    failed = _listed(admin_client, "/admin/celeriac_results/taskresult/?status__exact=FAILURE")
    assert "t-failed" in failed and "t-ok" not in failed
    found = _listed(admin_client, "/admin/celeriac_results/taskresult/?q=missing-key")
    assert "t-failed" in found and "t-started" not in found


def test_task_detail_is_read_only(stored: Celery, admin_client: Client) -> None:
    row = TaskResult.objects.get(task_id="t-failed")
    page = _listed(admin_client, f"/admin/celeriac_results/taskresult/{row.pk}/change/")
    assert "Traceback: KeyError" in page
    assert 'name="status"' not in page  # shown, not editable
    assert admin_client.get("/admin/celeriac_results/taskresult/add/").status_code == 403


def test_group_and_counter_changelists(stored: Celery, admin_client: Client) -> None:
    group = stored.GroupResult("g-admin", [stored.AsyncResult("t-ok")])
    group.save()
    assert GroupResult.objects.get(group_id="g-admin").result == '["t-ok"]'
    page = _listed(admin_client, "/admin/celeriac_results/groupresult/?q=t-ok")
    assert "g-admin" in page
    assert ChordCounter.objects.get(key="chord-unlock-g1").value == 2
    assert "chord-unlock-g1" in _listed(admin_client, "/admin/celeriac_results/chordcounter/")


def test_group_restores_from_the_orm(stored: Celery) -> None:
    members = [stored.AsyncResult("t-ok"), stored.AsyncResult("t-failed")]
    stored.GroupResult("g-back", members).save()
    restored = stored.restore_group("g-back")
    assert restored is not None
    assert [r.id for r in restored.results] == ["t-ok", "t-failed"]
    assert restored.results[0].get(timeout=1) == 42
    stored.delete_group("g-back")
    assert not GroupResult.objects.filter(group_id="g-back").exists()
