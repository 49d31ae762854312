"""``celeriac inspect`` and ``celeriac status``: ask running workers about themselves."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from celeriac.cli.context import (
    COMMA_SEPARATED_LIST,
    EX_UNAVAILABLE,
    CLIContext,
    flatten,
    global_options,
    pass_cli,
    to_json,
)

__all__ = ["inspect", "status"]

#: the inspect methods this command offers (names as in ``app.control.inspect()``)
ACTIONS = ("active", "active_queues", "ping", "registered", "report", "stats")
NO_REPLY = "No nodes replied within time constraint"
POLL_INTERVAL_S = 0.1


def collect(ask: Callable[[], dict[str, Any] | None], timeout_s: float) -> dict[str, Any]:
    """Ask until some worker answers or ``timeout_s`` passes (a worker that just started may
    not have announced itself yet)."""
    deadline = time.monotonic() + timeout_s
    while True:
        replies = ask() or {}
        if replies or time.monotonic() >= deadline:
            return replies
        time.sleep(POLL_INTERVAL_S)


def render_reply(value: Any, indent: str = "    ") -> list[str]:
    """Celery-style text for one worker's reply."""
    if isinstance(value, dict) and set(value) == {"ok"}:
        return [f"{indent}    {value['ok']}"]
    if isinstance(value, list):
        if not value:
            return [f"{indent}- empty -"]
        return [f"{indent}* {item if isinstance(item, str) else to_json(item)}" for item in value]
    if isinstance(value, dict):
        return [f"{indent}{line}" for line in to_json(value, indent=4).splitlines()]
    return [f"{indent}{value}"]


def nodes_online(count: int) -> str:
    return f"{count} node{'' if count == 1 else 's'} online."


def show(cli: CLIContext, replies: dict[str, Any], as_json: bool, body: bool = True) -> None:
    if not replies:
        cli.echo(cli.error(f"Error: {NO_REPLY}"), err=True)
        raise click.exceptions.Exit(EX_UNAVAILABLE)
    if as_json:
        cli.echo(to_json(replies))
        return
    for host in sorted(replies):
        cli.echo(f"->  {host}: {cli.ok('OK')}")
        if body:
            for line in render_reply(replies[host]):
                cli.echo(line)
    cli.echo()
    cli.echo(nodes_online(len(replies)))


@click.command(short_help="Ask running workers: ping, registered, active, stats...")
@click.argument("action", type=click.Choice(ACTIONS))
@click.option("-t", "--timeout", type=float, default=1.0, show_default=True,
              help="Seconds to wait for replies.")
@click.option("-d", "--destination", type=COMMA_SEPARATED_LIST, multiple=True,
              help="Only these workers (comma separated node names).")
@click.option("-j", "--json", "as_json", is_flag=True, help="Print the replies as JSON.")
@global_options(hidden=True)
@pass_cli
def inspect(
    cli: CLIContext,
    action: str,
    timeout: float,
    destination: tuple[list[str], ...],
    as_json: bool,
) -> None:
    """Ask the running workers: ACTION is one of active, active_queues, ping, registered,
    report, stats."""
    inspector = cli.app.control.inspect(flatten(destination) or None, timeout=timeout)
    method = getattr(inspector, action)
    show(cli, collect(method, timeout), as_json)


@click.command()
@click.option("-t", "--timeout", type=float, default=1.0, show_default=True,
              help="Seconds to wait for replies.")
@click.option("-d", "--destination", type=COMMA_SEPARATED_LIST, multiple=True,
              help="Only these workers (comma separated node names).")
@click.option("-j", "--json", "as_json", is_flag=True, help="Print the replies as JSON.")
@global_options(hidden=True)
@pass_cli
def status(cli: CLIContext, timeout: float, destination: tuple[list[str], ...],
           as_json: bool) -> None:
    """List the workers that are online."""
    control = cli.app.control
    targets = flatten(destination) or None

    def ask() -> dict[str, Any]:
        replies: dict[str, Any] = {}
        for reply in control.ping(targets, timeout=timeout):
            replies.update(reply)
        return replies

    show(cli, collect(ask, timeout), as_json, body=False)
