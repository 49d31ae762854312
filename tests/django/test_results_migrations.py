"""The ``celeriac_results`` migrations describe its models exactly (a model change without its
migration fails here)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_missing_migration() -> None:
    out = io.StringIO()
    try:
        call_command(
            "makemigrations", "celeriac_results", check=True, dry_run=True, stdout=out, stderr=out
        )
    except SystemExit:
        pytest.fail(f"models and migrations differ:\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()
