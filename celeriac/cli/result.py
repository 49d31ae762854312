"""``celeriac result``: show the state and result of a task."""

from __future__ import annotations

from typing import Any

import click

from celeriac.cli.context import CLIContext, global_options, pass_cli, to_json
from celeriac.cli.options import SectionedCommand

__all__ = ["format_value", "result"]


def format_value(value: Any) -> str:
    """JSON for plain values; an exception as its repr (``ValueError('boom')``)."""
    if isinstance(value, BaseException):
        return repr(value)
    return to_json(value)


@click.command(cls=SectionedCommand,
               sections={"Result Options": ("task_name", "show_traceback")})
@click.argument("task_id")
@click.option("-t", "--task", "task_name", help="Name of the task (accepted; not needed).")
@click.option("--traceback", "show_traceback", is_flag=True,
              help="Also print the traceback of a failed task.")
@global_options(hidden=True)
@pass_cli
def result(cli: CLIContext, task_id: str, task_name: str | None, show_traceback: bool) -> None:
    """Print the state and result of task TASK_ID (without waiting)."""
    found = cli.app.AsyncResult(task_id, task_name=task_name)
    state = found.state
    cli.echo(f"state:  {state}")
    cli.echo(f"result: {format_value(found.result)}")
    if show_traceback:
        cli.echo("traceback:")
        cli.echo((found.traceback or "(none)").rstrip())
