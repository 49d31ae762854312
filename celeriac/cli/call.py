"""``celeriac call``: send a task by name (and optionally wait for its result)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from celeriac import states
from celeriac.cli.context import EX_FAILURE, CLIContext, global_options, pass_cli, to_json
from celeriac.cli.mistakes import Mistake
from celeriac.cli.options import SectionedCommand, not_applicable
from celeriac.exceptions import EncodeError, TimeoutError

__all__ = ["call", "parse_json_option", "parse_when"]


def parse_json_option(text: str, kind: type, hint: str) -> Any:
    """``--args '[1, 2]'`` -> ``[1, 2]``; the value must be a JSON ``kind`` (list or dict)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=hint) from None
    if not isinstance(value, kind):
        expected = "list" if kind is list else "object"
        raise click.BadParameter(f"must be a JSON {expected}, got {text!r}", param_hint=hint)
    return value


def parse_when(text: str | None, hint: str, *, seconds_ok: bool) -> datetime | float | None:
    """An ISO 8601 date and time, or (when ``seconds_ok``) a number of seconds from now."""
    if text is None:
        return None
    if seconds_ok:
        try:
            return float(text)
        except ValueError:
            pass
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        what = "seconds or an ISO 8601 date and time" if seconds_ok else "an ISO 8601 date and time"
        raise click.BadParameter(f"{text!r} is not {what}", param_hint=hint) from None


@click.command(cls=SectionedCommand, sections={
    "Calling Options": ("args_text", "kwargs_text", "eta", "countdown", "expires", "serializer"),
    "Routing Options": ("queue", "exchange", "routing_key"),
})
@click.argument("name")
@click.option("-a", "--args", "args_text", default="[]", help="Positional arguments, a JSON list.")
@click.option("-k", "--kwargs", "kwargs_text", default="{}",
              help="Keyword arguments, a JSON object.")
@click.option("--eta", help="Run at this ISO 8601 date and time.")
@click.option("--countdown", type=float, help="Run this many seconds from now.")
@click.option("--expires", help="Discard if not started by then: seconds from now or ISO 8601.")
@click.option("--serializer", help="Message serializer (default: task_serializer).")
@click.option("--queue", help="Queue to send to (default: task_routes, then the default queue).")
@click.option("--exchange", help="Not applicable (brokers route by queue name): use --queue.")
@click.option("--routing-key", help="Queue to send to, when --queue is not given.")
@click.option("--priority", type=click.IntRange(0, 9), help="Message priority, 0-9.")
@click.option("--wait", is_flag=True, help="Wait for the result and print it as JSON.")
@click.option("--timeout", type=float, help="With --wait: give up after this many seconds.")
@global_options(hidden=True)
@pass_cli
def call(
    cli: CLIContext,
    name: str,
    args_text: str,
    kwargs_text: str,
    eta: str | None,
    countdown: float | None,
    expires: str | None,
    serializer: str | None,
    queue: str | None,
    exchange: str | None,
    routing_key: str | None,
    priority: int | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Send task NAME and print its id (with --wait, then its result).

    Exits with status 1 when, with --wait, the task failed or the wait timed out.
    """
    if exchange:
        not_applicable(f"--exchange {exchange}", "celeriac's brokers route by queue name, not "
                       "by exchange", "name the queue with --queue (or --routing-key)")
    args = parse_json_option(args_text, list, "'-a' / '--args'")
    kwargs = parse_json_option(kwargs_text, dict, "'-k' / '--kwargs'")
    eta_at = parse_when(eta, "'--eta'", seconds_ok=False)
    expires_at = parse_when(expires, "'--expires'", seconds_ok=True)
    options: dict[str, Any] = {}
    if serializer:
        options["serializer"] = serializer
    if priority is not None:
        options["priority"] = priority
    if wait:
        # A result backend URL that names nothing fails here, before the task is sent.
        cli.app.backend  # noqa: B018
    try:
        result = cli.app.send_task(
            name,
            args=args,
            kwargs=kwargs,
            countdown=countdown,
            eta=eta_at if isinstance(eta_at, datetime) else None,
            expires=expires_at,
            queue=queue or routing_key,
            **options,
        )
    except EncodeError as exc:
        # JSON from the command line always encodes: the serializer's name is what is wrong
        raise Mistake(f"cannot send {name}: {exc} (set by --serializer or task_serializer; "
                      "json, msgpack, yaml and pickle are known)") from None
    cli.echo(result.id)
    if not wait:
        return
    try:
        value = result.get(timeout=timeout, propagate=False)
    except TimeoutError:
        cli.echo(cli.error(f"Timed out after {timeout}s waiting for {result.id} "
                           f"(state: {result.state})"), err=True)
        raise click.exceptions.Exit(EX_FAILURE)
    state = result.state
    if state in states.PROPAGATE_STATES:
        cli.echo(cli.error(f"{state}: {value!r}"), err=True)
        if result.traceback and not cli.quiet:
            cli.echo(result.traceback.rstrip(), err=True)
        raise click.exceptions.Exit(EX_FAILURE)
    cli.echo(to_json(value))
