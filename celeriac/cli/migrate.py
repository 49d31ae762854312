"""``celeriac migrate SOURCE DESTINATION``: move waiting tasks from one broker to another.

Through the broker contract, so any two transports (``redis://`` to ``amqp://``...). For each
queue (``-Q``, else the app's known queues) messages are claimed from SOURCE, published to
the same queue on DESTINATION in one batch, then, with ``-a/--ack-messages``, acked on
SOURCE (a move); without it they are put back on SOURCE once the run ends (a copy, as
Celery's command leaves unacked messages). ``-T`` migrates only those task names; the others
are put back. The run ends after ``-n`` messages or when no message arrives for ``-t``
seconds (default 1), or never with ``-F`` (Ctrl-C stops it). Messages whose eta lies ahead
are not deliverable yet and stay where they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import click

from celeriac.brokers import create_broker
from celeriac.brokers.base import Broker
from celeriac.cli.context import (
    COMMA_SEPARATED_LIST,
    CLIContext,
    flatten,
    global_options,
    pass_cli,
)
from celeriac.cli.options import SectionedCommand
from celeriac.message import Delivery

__all__ = ["migrate"]

BATCH = 100


def _run(cli: CLIContext, source: Broker, dest: Broker, queues: list[str], limit: int | None,
         timeout_s: float, ack: bool, names: set[str], forever: bool) -> int:
    held: list[Delivery] = []  # copies and filtered-out messages, put back at the end
    moved = 0
    try:
        while limit is None or moved < limit:
            want = BATCH if limit is None else min(BATCH, limit - moved)
            batch = source.consume(queues, want, timeout_s)
            if not batch:
                if forever:
                    continue
                break
            chosen = [d for d in batch if not names or d.envelope.task_name in names]
            held.extend(d for d in batch if d not in chosen)
            if chosen:
                dest.publish_many([(d.queue, d.envelope) for d in chosen])
                for d in chosen:
                    moved += 1
                    total = "?" if limit is None else str(limit)
                    cli.echo(f"Migrating task {moved}/{total}: "
                             f"{d.envelope.task_name}[{d.envelope.task_id}]")
                (source.ack if ack else held.extend)(chosen)
            if held:
                source.renew(held)
    except KeyboardInterrupt:
        pass
    finally:
        if held:
            source.requeue(held)
    return moved


@click.command(cls=SectionedCommand, sections={"Migration Options": (
    "limit", "timeout_s", "ack_messages", "tasks", "queues", "forever")})
@click.argument("source")
@click.argument("destination")
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Migrate at most this many.")
@click.option("-t", "--timeout", "timeout_s", type=float, default=1.0, show_default=True,
              help="Seconds to wait for more messages before stopping.")
@click.option("-a", "--ack-messages", is_flag=True,
              help="Ack on the source (a move); without it the source keeps its messages.")
@click.option("-T", "--tasks", type=COMMA_SEPARATED_LIST, multiple=True,
              help="Only these task names, comma separated.")
@click.option("-Q", "--queues", type=COMMA_SEPARATED_LIST, multiple=True,
              help="Queues to migrate, comma separated (default: the app's known queues).")
@click.option("-F", "--forever", is_flag=True, help="Keep migrating until Ctrl-C.")
@global_options(hidden=True)
@pass_cli
def migrate(cli: CLIContext, source: str, destination: str, limit: int | None,
            timeout_s: float, ack_messages: bool, tasks: Sequence[list[str]],
            queues: Sequence[list[str]], forever: bool) -> None:
    """Move waiting tasks from broker SOURCE to broker DESTINATION (URLs).

    \b
    Example:
      celeriac -A proj migrate redis://old-host/0 redis://new-host/0 -a
    """
    names = flatten(queues) or cli.app.control.known_queues()
    src = create_broker(source)
    dst = create_broker(destination)
    try:
        moved = _run(cli, src, dst, names, limit, timeout_s, ack_messages, set(flatten(tasks)),
                     forever)
    finally:
        for broker in (src, dst):
            with contextlib.suppress(Exception):
                broker.close()
    verb = "moved" if ack_messages else "copied"
    cli.echo(f"{moved} {'task' if moved == 1 else 'tasks'} {verb} from "
             f"{len(names)} {'queue' if len(names) == 1 else 'queues'}.", err=True)
