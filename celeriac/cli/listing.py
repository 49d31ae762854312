"""``celeriac list bindings``: which queue each exchange and routing key lead to.

Celery asks the broker (RabbitMQ's management plugin) for its bindings. celeriac's brokers
route by queue name, so the bindings are the app's own: each known queue (the default queue,
``task_queues`` and the queues ``task_routes`` name), with the exchange and routing key a
Celery client would publish it with (the queue's own name unless ``task_queues`` says
otherwise).
"""

from __future__ import annotations

from typing import Any

import click

from celeriac.cli.context import CLIContext, global_options, pass_cli

__all__ = ["list_"]


def bindings_of(queues: list[str], declared: Any) -> list[tuple[str, str, str]]:
    """``(queue, exchange, routing key)`` for each queue name."""
    found = {getattr(q, "name", None): q for q in declared or ()}
    rows = []
    for name in queues:
        queue = found.get(name)
        exchange = getattr(queue, "exchange", None) if queue is not None else None
        rows.append((name, str(getattr(exchange, "name", exchange) or name),
                     str(getattr(queue, "routing_key", None) or name)))
    return rows


@click.group(name="list")
def list_() -> None:
    """Get information from the broker (list bindings)."""


@list_.command()
@global_options(hidden=True)
@pass_cli
def bindings(cli: CLIContext) -> None:
    """Print each queue with the exchange and routing key that lead to it.

    \b
    Example:
      celeriac -A proj list bindings
    """
    app = cli.app

    def row(queue: str, exchange: str, key: str) -> None:
        cli.echo(f"{queue:<28} {exchange:<28} {key}")

    row("Queue", "Exchange", "Routing Key")
    row("-" * 16, "-" * 16, "-" * 16)
    for queue, exchange, key in bindings_of(app.control.known_queues(), app.conf.task_queues):
        row(queue, exchange, key)
