"""A throwaway project (an app module on a SQLite broker in its own directory) for the CLI
tests of issue 14."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

APP_MODULE = """
    from celeriac import Celery

    app = Celery("{name}", broker="sqlite:///{name}.db")
    app.conf.my_api_key = "s3cr3t-key"


    @app.task
    def add(x, y):
        return x + y
"""


def make_project(root: Path) -> str:
    """Write an app module under ``root``; returns its (unique) module name."""
    name = f"proj_{uuid.uuid4().hex[:8]}"
    (root / f"{name}.py").write_text(textwrap.dedent(APP_MODULE.format(name=name)))
    return name
