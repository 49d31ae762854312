"""``celeriac purge``: delete every waiting message from the app's queues."""

from __future__ import annotations

import click

from celeriac.cli.context import (
    COMMA_SEPARATED_LIST,
    CLIContext,
    flatten,
    global_options,
    pass_cli,
)
from celeriac.cli.options import SectionedCommand

__all__ = ["purge"]


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@click.command(cls=SectionedCommand,
               sections={"Purging Options": ("force", "queues", "exclude_queues")})
@click.option("-f", "--force", is_flag=True, help="Don't ask for confirmation.")
@click.option("-Q", "--queues", type=COMMA_SEPARATED_LIST, multiple=True,
              help="Queues to purge, comma separated (default: every known queue).")
@click.option("-X", "--exclude-queues", type=COMMA_SEPARATED_LIST, multiple=True,
              help="Queues not to purge, comma separated.")
@global_options(hidden=True)
@pass_cli
def purge(
    cli: CLIContext,
    force: bool,
    queues: tuple[list[str], ...],
    exclude_queues: tuple[list[str], ...],
) -> None:
    """Delete all waiting messages from the known task queues. There is no undo."""
    app = cli.app
    excluded = set(flatten(exclude_queues))
    names = [name for name in flatten(queues) or app.control.known_queues()
             if name not in excluded]
    if not names:
        cli.echo("No queues to purge.")
        return
    queue_word = "queue" if len(names) == 1 else "queues"
    if not force:
        cli.echo(
            f"{cli.error('WARNING')}: This will remove all tasks from {queue_word}: "
            f"{', '.join(names)}.\n         There is no undo for this operation!\n\n"
            "(to skip this prompt use the -f option)"
        )
        click.confirm("Are you sure you want to delete all tasks?", abort=True)
    count = app.control.purge(names)
    if count:
        cli.echo(f"Purged {plural(count, 'message')} from {len(names)} known task {queue_word}.")
    else:
        cli.echo(f"No messages purged from {len(names)} {queue_word}.")
