"""The worker's start-up banner: who it is, what it connects to, what it consumes and runs."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import celeriac
from celeriac._utils.sqlite import parse_url
from celeriac._utils.urls import mask_url
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.brokers.sqlite import SQLiteBroker

if TYPE_CHECKING:
    from celeriac.app.base import Celery

__all__ = ["describe_url", "mask_url", "render_banner"]

ART = r"""
      \ | /
    .-'\|/'-.
   /         \
  |  c e l e  |
  |  r i a c  |
   \         /
    '-.___.-'
     /  |  \
    /   |   \
""".strip("\n").splitlines()
ART_WIDTH = 18
#: URL schemes naming a SQLite file (the banner shows its absolute path)
SQLITE_SCHEMES = frozenset(SQLiteBroker.schemes + SQLiteBackend.schemes)


def describe_url(url: str | None) -> str:
    """A URL for display: password masked; a SQLite URL also names its file's absolute path."""
    if not url:
        return "disabled://"
    shown = mask_url(url)
    scheme = url.partition("://")[0].lower()
    if scheme in SQLITE_SCHEMES:
        try:
            shown = f"{shown} (file: {parse_url(url)})"
        except Exception:
            pass  # the broker reports a bad URL itself, with more context
    return shown


def _queue_line(name: str, queues: Sequence[Any]) -> str:
    exchange, exchange_type, key = name, "direct", name
    for queue in queues:
        if getattr(queue, "name", None) == name:
            found = getattr(queue, "exchange", None)
            exchange = str(getattr(found, "name", found) or name)
            exchange_type = str(getattr(found, "type", None) or "direct")
            key = str(getattr(queue, "routing_key", None) or name)
    return f".> {name:<16} exchange={exchange}({exchange_type}) key={key}"


def render_banner(
    app: Celery,
    *,
    hostname: str,
    concurrency: int | str,
    pool: str,
    queues: Sequence[str],
    task_events: bool = False,
    beat: bool = False,
    show_builtin_tasks: bool = False,
) -> str:
    """The banner ``celeriac worker`` prints before it starts consuming."""
    now = datetime.now().replace(microsecond=0)
    events = "ON" if task_events else "OFF (enable -E to monitor tasks in this worker)"
    info = [
        f"{hostname} v{celeriac.__version__} (Python {platform.python_version()})",
        f"{platform.platform(terse=True)} {now.isoformat(sep=' ')}",
        "",
        "[config]",
        f".> app:         {app.main or '__main__'}:{id(app):#x}",
        f".> transport:   {describe_url(app.broker_url)}",
        f".> results:     {describe_url(app.result_backend_url)}",
        f".> concurrency: {concurrency} ({pool})",
        f".> task events: {events}",
    ]
    if beat:
        info.append(".> beat:        embedded (-B)")
    height = max(len(ART), len(info))
    art = ART + [""] * (height - len(ART))
    info = info + [""] * (height - len(info))
    lines = [f"{left:<{ART_WIDTH}}{right}".rstrip() for left, right in zip(art, info, strict=True)]
    lines += ["", "[queues]"]
    configured = list(app.conf.task_queues or ())
    lines += [f"  {_queue_line(name, configured)}" for name in queues]
    lines += ["", "[tasks]"]
    names = sorted(app.tasks) if show_builtin_tasks else sorted(app.tasks.regular())
    lines += [f"  . {name}" for name in names]
    return "\n".join(["", *lines, ""])
