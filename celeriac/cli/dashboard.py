"""``celeriac -A proj dashboard`` (alias ``flower``): serve the dashboard with uvicorn.

Flower's options: ``--port`` (5555), ``--address`` (127.0.0.1), ``--basic-auth=user:pass[,...]``,
``--url-prefix``, ``--broker-api`` (accepted; queues are read through the broker itself),
``--persistent``/``--db`` (history is always kept; ``--db`` is the history store's URL or a
SQLite file path), ``--read-only``, ``--max-tasks``. A non-loopback ``--address`` without
``--basic-auth`` is refused (exit status 2): the dashboard controls workers.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

import click

from celeriac.cli.context import CLIContext, global_options, pass_cli

__all__ = ["EX_USAGE_ERROR", "dashboard", "flower", "history_url_of", "is_loopback"]

#: exit status for a refused configuration (click's usage error status)
EX_USAGE_ERROR = 2


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost`` are loopback; anything else (0.0.0.0, a name) is not."""
    if address.strip().lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def history_url_of(db: str | None) -> str | None:
    """``--db``: a URL (``sqlite:///...``, ``redis://...``, ``memory://``) as given; a plain
    path (Flower's shelve file name) becomes a SQLite file there."""
    if not db:
        return None
    if "://" in db:
        return db
    return f"sqlite:///{db}"


def _options(fun: Any) -> Any:
    decorators: list[Any] = [
        click.option("--port", type=click.IntRange(0, 65535), default=5555, show_default=True,
                     help="Port to listen on."),
        click.option("--address", default="127.0.0.1", show_default=True,
                     help="Address to listen on (a non-loopback one needs --basic-auth)."),
        click.option("--basic-auth", "basic_auth", multiple=True,
                     help="user:password[,user2:password2]: HTTP basic auth for pages and API."),
        click.option("--url-prefix", default="", help="Serve under this path (behind a proxy)."),
        click.option("--broker-api", default=None,
                     help="Accepted for Flower compatibility; queues are read through the broker."),
        click.option("--persistent", is_flag=False, flag_value="True", default=None,
                     help="Accepted for Flower compatibility: history is always kept."),
        click.option("--db", default=None,
                     help="History store: sqlite:///file, redis://..., memory://, or a file path "
                          "(default: the result backend's SQLite/Redis, else "
                          "celeriac-dashboard.db)."),
        click.option("--read-only", is_flag=True,
                     help="Refuse every state-changing request (403)."),
        click.option("--max-tasks", type=click.IntRange(1, None), default=100_000,
                     show_default=True, help="Tasks kept in history (oldest dropped first)."),
        click.option("--max-age", "max_age_s", type=click.FloatRange(1, None),
                     default=7 * 86400.0, show_default=True,
                     help="Seconds a task stays in history."),
        click.option("--inspect-timeout", "inspect_timeout_ms", type=click.FloatRange(1, None),
                     default=1000.0, show_default=True,
                     help="Milliseconds to wait for workers' replies (Flower's unit)."),
        click.option("-l", "--loglevel", "--log-level", "loglevel", default="warning",
                     type=click.Choice(["critical", "error", "warning", "info", "debug"],
                                       case_sensitive=False),
                     help="uvicorn's log level."),
        global_options(hidden=True),
        pass_cli,
    ]
    for decorate in reversed(decorators):
        fun = decorate(fun)
    return fun


def _run(
    cli: CLIContext, port: int, address: str, basic_auth: tuple[str, ...], url_prefix: str,
    broker_api: str | None, persistent: str | None, db: str | None, read_only: bool,
    max_tasks: int, max_age_s: float, inspect_timeout_ms: float, loglevel: str,
) -> None:
    try:
        from celeriac.dashboard.security import parse_basic_auth

        credentials = parse_basic_auth(list(basic_auth))
    except ImportError:
        cli.echo("celeriac dashboard needs the dashboard extra: pip install 'celeriac[dashboard]'",
                 err=True)
        sys.exit(EX_USAGE_ERROR)
    except ValueError as exc:
        cli.echo(f"celeriac dashboard: {exc}", err=True)
        sys.exit(EX_USAGE_ERROR)
    if not is_loopback(address) and not credentials:
        cli.echo(f"celeriac dashboard: refusing to listen on {address} without --basic-auth "
                 "(the dashboard can revoke tasks and stop workers); add "
                 "--basic-auth=user:password or use --address=127.0.0.1", err=True)
        sys.exit(EX_USAGE_ERROR)
    if broker_api:
        cli.say("--broker-api is not needed: queue lengths are read through the broker itself.",
                err=True)
    import uvicorn

    from celeriac.dashboard.app import DashboardConfig, create_app

    config = DashboardConfig(
        address=address, port=port, basic_auth=credentials, url_prefix=url_prefix,
        read_only=read_only, history_url=history_url_of(db), max_tasks=max_tasks,
        max_age_s=max_age_s, inspect_timeout_s=inspect_timeout_ms / 1000.0,
    )
    app = create_app(cli.app, config)
    host = f"[{address}]" if ":" in address else address
    cli.say(f"celeriac dashboard on http://{host}:{port}{config.url_prefix}/"
            + (" (read-only)" if read_only else ""))
    uvicorn.run(app, host=address, port=port, log_level=loglevel.lower(), lifespan="on",
                server_header=False)


@click.command(name="dashboard")
@_options
def dashboard(cli: CLIContext, **options: Any) -> None:
    """Serve the web dashboard and Flower's HTTP API (Ctrl-C stops it).

    \b
    Examples:
      celeriac -A proj dashboard
      celeriac -A proj flower --port=5566 --basic-auth=admin:s3cret --address=0.0.0.0
      celeriac -A proj dashboard --db=sqlite:///history.db --read-only
    """
    _run(cli, **options)


@click.command(name="flower")
@_options
def flower(cli: CLIContext, **options: Any) -> None:
    """Alias of `dashboard`, with Flower's options."""
    _run(cli, **options)
