"""``django-cache``: which of Django's caches holds the records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches

from celeriac import Celery, states
from celeriac.backends import create_backend
from celeriac.exceptions import ImproperlyConfigured

LOCMEM = "django.core.cache.backends.locmem.LocMemCache"


@pytest.fixture
def two_caches(settings: Any) -> Iterator[None]:
    settings.CACHES = {
        "default": {"BACKEND": LOCMEM, "LOCATION": "results-default"},
        "results": {"BACKEND": LOCMEM, "LOCATION": "results-named"},
    }
    yield
    for alias in ("default", "results"):
        caches[alias].clear()


def _holds(alias: str, task_id: str) -> bool:
    return caches[alias].get(f"celery-task-meta-{task_id}") is not None


@pytest.mark.usefixtures("two_caches")
def test_default_cache_unless_a_setting_names_another(settings: Any) -> None:
    create_backend("django-cache").store("t1", states.SUCCESS, b"r1", 60)
    assert _holds("default", "t1") and not _holds("results", "t1")
    settings.CELERY_CACHE_BACKEND = "results"
    backend = create_backend("django-cache")
    backend.store("t2", states.SUCCESS, b"r2", 60)
    assert _holds("results", "t2") and not _holds("default", "t2")
    assert backend.get("t2") == b"r2"
    assert backend.get("t1") is None  # read from the named cache too


@pytest.mark.usefixtures("two_caches")
def test_url_and_option_name_the_cache() -> None:
    create_backend("django-cache://results").store("t1", states.SUCCESS, b"r1", None)
    create_backend("django-cache", {"cache_backend": "results"}).store(
        "t2", states.SUCCESS, b"r2", None
    )
    assert _holds("results", "t1") and _holds("results", "t2")
    assert not _holds("default", "t1")


def test_unknown_cache_alias_is_a_configuration_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="no cache 'nope'"):
        create_backend("django-cache://nope").get("t1")


@pytest.mark.usefixtures("two_caches")
def test_the_apps_cache_backend_setting_names_the_cache(app: Celery) -> None:
    app.conf.update(result_backend="django-cache", cache_backend="results")
    app.store_result("t1", 7, states.SUCCESS)
    assert _holds("results", "t1") and not _holds("default", "t1")
    assert app.AsyncResult("t1").get(timeout=1) == 7
