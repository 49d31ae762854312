"""The shared test settings load: every installed app is importable, the test databases work."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.apps import apps
from django.contrib.auth.models import User


def test_installed_apps_are_loaded() -> None:
    labels = {config.label for config in apps.get_app_configs()}
    assert {"admin", "auth", "celeriac"} <= labels


@pytest.mark.django_db
def test_orm_works_on_the_test_database() -> None:
    User.objects.create(username="ada")
    assert User.objects.filter(username="ada").count() == 1


def test_subprocess_sees_the_same_settings(django_subprocess_env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings;"
         " print(settings.DATABASES['default']['NAME'])"],
        env=django_subprocess_env, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    from django.conf import settings

    assert out == settings.DATABASES["default"]["NAME"]
