"""``django-db``'s decoded columns: filled from JSON records, left empty (the record intact) for
other serializers, and safe for PostgreSQL's text columns."""

from __future__ import annotations

import json

import pytest

from celeriac import states
from celeriac.backends import create_backend
from celeriac.contrib.django.results.models import TaskResult
from celeriac.exceptions import ImproperlyConfigured

pytestmark = pytest.mark.django_db(databases=["default", "postgres"])

DATABASES = [("django-db", "default"), ("django-db://postgres", "postgres")]


@pytest.mark.parametrize(("url", "db"), DATABASES)
def test_nul_characters_reach_the_columns_replaced_and_the_record_intact(
    url: str, db: str
) -> None:
    record = json.dumps({
        "status": states.FAILURE, "task_id": "t1", "traceback": "line\x00two",
        "result": {"exc_type": "ValueError", "exc_message": ["a\x00b"]}, "name": "n\x00m",
    }).encode()
    backend = create_backend(url)
    backend.store("t1", states.FAILURE, record, None)
    assert backend.get("t1") == record
    row = TaskResult.objects.using(db).get(task_id="t1")
    assert row.traceback == "line\ufffdtwo"
    assert row.task_name == "n\ufffdm"
    assert row.result is not None and "ValueError" in row.result


def test_a_record_in_another_serializer_is_kept_with_empty_columns() -> None:
    backend = create_backend("django-db")
    backend.store("t1", states.SUCCESS, b"\x80\x04\x95 not json", None)
    assert backend.get("t1") == b"\x80\x04\x95 not json"
    row = TaskResult.objects.get(task_id="t1")
    assert (row.status, row.result, row.task_name) == (states.SUCCESS, None, None)
    assert row.date_done is not None


@pytest.mark.parametrize(("url", "db"), DATABASES)
def test_a_batch_with_one_id_twice_keeps_the_last_and_the_first_creation_date(
    url: str, db: str
) -> None:
    backend = create_backend(url)
    backend.store("t1", states.STARTED, b"started", None)
    created = TaskResult.objects.using(db).get(task_id="t1").date_created
    backend.store_many([("t1", states.RETRY, b"retry"), ("t1", states.SUCCESS, b"done")], None)
    row = TaskResult.objects.using(db).get(task_id="t1")
    assert (row.status, bytes(row.payload)) == (states.SUCCESS, b"done")
    assert row.date_created == created
    assert row.date_done is not None and row.date_done >= created


def test_unknown_database_alias_is_a_configuration_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="no database 'nope'"):
        create_backend("django-db://nope").get("t1")
