"""``celeriac report``: what to paste into a bug report (as ``celery report``).

Prints the software (celeriac, Python, the installed client libraries), the platform, the
app's broker and result backend, and every setting changed from its default. Secrets never
show: URL passwords are masked and settings whose name says secret (key, password, token...)
print as ``********``, with the same rules as ``inspect conf``.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from typing import Any

import click

import celeriac
from celeriac._utils.urls import mask_url
from celeriac.app.base import Celery
from celeriac.cli.context import CLIContext, global_options, pass_cli

# one censoring rule for `inspect conf` and this report
from celeriac.worker.control import _censor

__all__ = ["render_report", "report"]

#: distributions whose versions matter to a bug report (client libraries of the transports)
CLIENT_LIBRARIES = ("redis", "hiredis", "amqp", "psycopg", "sqlalchemy", "pymysql",
                    "pymemcache", "msgpack", "pyyaml", "django", "starlette", "uvicorn")


def _versions() -> str:
    found = []
    for name in CLIENT_LIBRARIES:
        try:
            found.append(f"{name}:{importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return " ".join(found) or "none"


def _value(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 200 else text[:197] + "..."


def render_report(app: Celery) -> str:
    """The report's text for ``app``."""
    conf = app.conf
    backend = conf.result_backend or app.broker_url
    lines = [
        f"software -> celeriac:{celeriac.__version__} "
        f"python:{platform.python_version()} ({platform.python_implementation()})",
        f"            libraries: {_versions()}",
        f"platform -> system:{platform.system()} arch:{platform.machine()} "
        f"kernel version:{platform.release()}",
        f"executable -> {sys.executable}",
        f"app      -> {app.main or '__main__'}",
        f"settings -> transport:{mask_url(str(app.broker_url))} "
        f"results:{mask_url(str(backend))}",
        "",
    ]
    changes = conf.changes()
    for name in sorted(changes):
        lines.append(f"{name}: {_value(_censor(name, changes[name]))}")
    return "\n".join(lines)


@click.command()
@global_options(hidden=True)
@pass_cli
def report(cli: CLIContext) -> None:
    """Print versions, platform and settings for a bug report (secrets masked).

    \b
    Example:
      celeriac -A proj report
    """
    cli.echo(render_report(cli.app))
