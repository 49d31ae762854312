"""``celeriac amqp``: Celery's AMQP administration commands, on any celeriac broker.

What applies is done through the broker contract, so it works on every transport:
``queue.declare`` (celeriac queues need no declaring: prints the queue's size),
``queue.purge``, ``queue.delete`` (empties it; an empty queue is gone) and ``basic.get``
(prints one message's headers and body as text, never decoding or running it; acked with
``no_ack`` = yes, else put back). Exchanges, bindings, raw publishes, separate acks and the
interactive shell do not apply to brokers that route by queue name: each prints one line
saying what to use instead and exits with status 2.
"""

from __future__ import annotations

import click

from celeriac.cli.context import CLIContext, global_options, pass_cli, to_json
from celeriac.cli.options import not_applicable

__all__ = ["amqp"]

#: how long basic.get waits for a message, in seconds
GET_TIMEOUT_S = 1.0
_TRUE = ("1", "yes", "true", "on", "y")


def _flag(value: str | None) -> bool:
    return (value or "").lower() in _TRUE


@click.group()
def amqp() -> None:
    """Queue administration on the app's broker (queue.purge, basic.get...)."""


@amqp.command(name="queue.declare")
@click.argument("queue")
@click.argument("passive", required=False)
@click.argument("durable", required=False)
@click.argument("auto_delete", required=False)
@global_options(hidden=True)
@pass_cli
def queue_declare(cli: CLIContext, queue: str, passive: str | None, durable: str | None,
                  auto_delete: str | None) -> None:
    """Show QUEUE's size (celeriac queues exist once used: nothing to declare)."""
    size = cli.app.broker.queue_size(queue)
    cli.echo(f"ok. queue:{queue} messages:{size}")


@amqp.command(name="queue.purge")
@click.argument("queue")
@global_options(hidden=True)
@pass_cli
def queue_purge(cli: CLIContext, queue: str) -> None:
    """Delete every waiting message of QUEUE."""
    cli.echo(f"ok. {cli.app.broker.purge([queue])} messages deleted.")


@amqp.command(name="queue.delete")
@click.argument("queue")
@click.argument("if_unused", required=False)
@click.argument("if_empty", required=False)
@global_options(hidden=True)
@pass_cli
def queue_delete(cli: CLIContext, queue: str, if_unused: str | None,
                 if_empty: str | None) -> None:
    """Delete QUEUE's messages (an empty queue is gone); IF_EMPTY=yes refuses a full one."""
    broker = cli.app.broker
    if _flag(if_empty) and broker.queue_size(queue):
        raise click.ClickException(f"queue {queue} is not empty (if_empty=yes)")
    cli.echo(f"ok. {broker.purge([queue])} messages deleted.")


@amqp.command(name="basic.get")
@click.argument("queue")
@click.argument("no_ack", required=False)
@global_options(hidden=True)
@pass_cli
def basic_get(cli: CLIContext, queue: str, no_ack: str | None) -> None:
    """Print one message of QUEUE; NO_ACK=yes removes it, else it is put back."""
    broker = cli.app.broker
    deliveries = broker.consume([queue], 1, GET_TIMEOUT_S)
    if not deliveries:
        cli.echo("None")
        return
    try:
        for delivery in deliveries:
            envelope = delivery.envelope
            cli.echo(to_json({
                "queue": delivery.queue,
                "headers": dict(envelope.headers),
                "properties": dict(envelope.properties),
                "content_type": envelope.content_type,
                "body": envelope.body.decode("utf-8", errors="replace"),
            }, indent=2))
    finally:
        (broker.ack if _flag(no_ack) else broker.requeue)(deliveries)


def _refuse(command: str, why: str, instead: str) -> None:
    @amqp.command(name=command, context_settings={"ignore_unknown_options": True},
                  help=f"Not applicable: {why}; {instead}.")
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def refused(args: tuple[str, ...]) -> None:
        not_applicable(f"amqp {command}", why, instead, fatal=True)


_NO_EXCHANGES = "celeriac's brokers route by queue name and have no exchanges or bindings"
_refuse("exchange.declare", _NO_EXCHANGES, "send to a queue with `celeriac call NAME --queue Q`")
_refuse("exchange.delete", _NO_EXCHANGES, "`celeriac amqp queue.delete QUEUE` empties a queue")
_refuse("queue.bind", _NO_EXCHANGES, "route tasks with task_routes or `call --queue`")
_refuse("basic.publish", "a raw message is no task celeriac could run",
        "send a task with `celeriac call NAME --args '[...]' --queue Q`")
_refuse("basic.ack", "a delivery does not outlive one command",
        "use `celeriac amqp basic.get QUEUE yes` to take a message off the queue")
_refuse("repl", "there is no interactive AMQP shell",
        "run one command at a time, e.g. `celeriac amqp queue.purge celery`")
