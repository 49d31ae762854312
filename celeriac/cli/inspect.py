"""``celeriac inspect``, ``celeriac control`` and ``celeriac status``: talk to running workers.

Each sends one remote-control request (:mod:`celeriac.control`) and prints the replies as
Celery does (``->  host: OK`` and the reply), or as JSON with ``--json``. Positional
arguments after the action are the command's arguments in Celery's order, e.g.
``celeriac control rate_limit proj.add 10/s`` or ``celeriac inspect query_task ID1 ID2``.
No reply within ``--timeout`` is an error (exit status 69, as Celery's EX_UNAVAILABLE).
"""

from __future__ import annotations

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
from celeriac.cli.options import SectionedCommand
from celeriac.control import signal_name

__all__ = ["control", "inspect", "status"]

NO_REPLY = "No nodes replied within time constraint"


def _ids(values: list[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def _number(kind: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise click.UsageError(f"{what} must be a number, not {text!r}") from None
    return convert


#: inspect actions: name -> (help, how positional arguments become keyword arguments)
INSPECT: dict[str, tuple[str, Callable[[list[str]], dict[str, Any]]]] = {
    "active": ("Tasks running now.", lambda a: {}),
    "active_queues": ("Queues each worker consumes.", lambda a: {}),
    "clock": ("Each worker's logical clock.", lambda a: {}),
    "conf": ("Each worker's settings (changed ones; secrets masked).", lambda a: {}),
    "ping": ("Ping the workers.", lambda a: {}),
    "query_task": ("Where tasks are: query_task ID [ID...].", lambda a: {"ids": _ids(a)}),
    "registered": ("Registered tasks: registered [ATTR...] (e.g. rate_limit).",
                   lambda a: {"taskinfoitems": a}),
    "report": ("Software and platform of each worker.", lambda a: {}),
    "reserved": ("Tasks received and waiting for a free slot.", lambda a: {}),
    "revoked": ("Task ids each worker saw revoked.", lambda a: {}),
    "scheduled": ("Tasks with an eta held by the worker (celeriac's brokers hold them).",
                  lambda a: {}),
    "stats": ("Worker statistics.", lambda a: {}),
}


def _positional(names: tuple[str, ...], converters: dict[str, Callable[[str], Any]],
                required: int) -> Callable[[list[str]], dict[str, Any]]:
    def parse(args: list[str]) -> dict[str, Any]:
        if len(args) < required:
            raise click.UsageError(f"needs {' '.join(n.upper() for n in names[:required])}")
        if len(args) > len(names):
            raise click.UsageError(f"takes at most {len(names)} argument(s): "
                                   f"{' '.join(n.upper() for n in names)}")
        return {name: converters.get(name, str)(value) for name, value in zip(names, args,
                                                                              strict=False)}
    return parse


_INT_N = {"n": _number(int, "N")}
CONTROL: dict[str, tuple[str, Callable[[list[str]], dict[str, Any]]]] = {
    "add_consumer": ("Consume from a queue: add_consumer QUEUE [EXCHANGE [TYPE [ROUTING_KEY]]].",
                     _positional(("queue", "exchange", "exchange_type", "routing_key"), {}, 1)),
    "autoscale": ("Set autoscale bounds: autoscale MAX MIN.",
                  _positional(("max", "min"), {"max": _number(int, "MAX"),
                                               "min": _number(int, "MIN")}, 2)),
    "cancel_consumer": ("Stop consuming a queue: cancel_consumer QUEUE.",
                        _positional(("queue",), {}, 1)),
    "disable_events": ("Stop sending task events.", _positional((), {}, 0)),
    "election": ("Celery's gossip election (acknowledged and ignored).",
                 _positional(("id", "topic", "action"), {}, 2)),
    "enable_events": ("Start sending task events.", _positional((), {}, 0)),
    "heartbeat": ("Send a worker heartbeat event now.", _positional((), {}, 0)),
    "pool_grow": ("Add processes: pool_grow [N].", _positional(("n",), _INT_N, 0)),
    "pool_shrink": ("Remove processes: pool_shrink [N].", _positional(("n",), _INT_N, 0)),
    "rate_limit": ("Set a task's rate limit: rate_limit TASK RATE (10/s, 100/m, 1000/h, 0).",
                   _positional(("task_name", "rate_limit"), {}, 2)),
    "revoke": ("Revoke tasks: revoke ID [ID...] [--terminate [--signal SIG]].",
               lambda a: {"task_id": _ids(a)}),
    "shutdown": ("Shut the workers down (warm).", _positional((), {}, 0)),
    "terminate": ("Revoke and stop running tasks: terminate SIGNAL ID [ID...].",
                  lambda a: {"signal": a[0] if a else None, "task_id": _ids(a[1:])}),
    "time_limit": ("Set a task's time limits: time_limit TASK SOFT [HARD] (seconds).",
                   _positional(("task_name", "soft", "hard"),
                               {"soft": _number(float, "SOFT"), "hard": _number(float, "HARD")},
                               2)),
}


def render_reply(value: Any, indent: str = "    ") -> list[str]:
    """Celery-style text for one worker's reply."""
    if isinstance(value, dict) and set(value) == {"ok"}:
        return [f"{indent}    {line}" for line in str(value["ok"]).splitlines()]
    if isinstance(value, dict) and set(value) == {"error"}:
        return [f"{indent}error: {value['error']}"]
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
    """Print ``{host: reply}``; none is an error (exit 69)."""
    if not replies:
        cli.echo(cli.error(f"Error: {NO_REPLY}"), err=True)
        raise click.exceptions.Exit(EX_UNAVAILABLE)
    if as_json:
        cli.echo(to_json(replies))
        return
    for host in sorted(replies):
        reply = replies[host]
        failed = isinstance(reply, dict) and "error" in reply
        cli.echo(f"->  {host}: {cli.error('ERROR') if failed else cli.ok('OK')}")
        if body:
            for line in render_reply(reply):
                cli.echo(line)
    cli.echo()
    cli.echo(nodes_online(len(replies)))


def _ask(cli: CLIContext, command: str, arguments: dict[str, Any], timeout: float,
         destination: tuple[list[str], ...]) -> dict[str, Any]:
    replies = cli.app.control.broadcast(
        command, arguments=arguments, destination=flatten(destination) or None, reply=True,
        timeout=timeout,
    ) or []
    merged: dict[str, Any] = {}
    for item in replies:
        merged.update(item)
    return merged


def _actions_help(table: dict[str, tuple[str, Any]]) -> str:
    width = max(len(name) for name in table)
    return "\n".join(f"  {name.ljust(width)}  {text}" for name, (text, _) in table.items())


#: the options of _common, listed under Celery's "Remote Control Options" in --help
_REMOTE = ("timeout", "destination", "as_json")
#: inspect and control --help: Celery lists --list (and here the action's own options) first
_SECTIONS = {"Options": ("list_actions",), "Remote Control Options": _REMOTE}


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("-t", "--timeout", type=float, default=1.0, show_default=True,
                     help="Seconds to wait for replies."),
        click.option("-d", "--destination", type=COMMA_SEPARATED_LIST, multiple=True,
                     help="Only these workers (comma separated node names)."),
        click.option("-j", "--json", "as_json", is_flag=True, help="Print the replies as JSON."),
    ]):
        fn = option(fn)
    return fn


def _listed(cli: CLIContext, table: dict[str, tuple[str, Any]], kind: str,
            action: str | None, list_actions: bool) -> bool:
    """``--list`` prints the actions (as Celery's); no action and no --list is a usage error."""
    if list_actions:
        cli.echo(_actions_help(table))
        return True
    if action is None:
        raise click.UsageError(f"which {kind} action? one of: {', '.join(sorted(table))} "
                               f"(--list describes them)")
    return False


def _parse(table: dict[str, tuple[str, Callable[[list[str]], dict[str, Any]]]], kind: str,
           action: str, args: tuple[str, ...]) -> dict[str, Any]:
    if action not in table:
        raise click.UsageError(
            f"unknown {kind} action {action!r}; one of: {', '.join(sorted(table))}")
    try:
        return table[action][1](list(args))
    except click.UsageError as exc:
        raise click.UsageError(f"{kind} {action}: {exc.message}") from None


@click.command(cls=SectionedCommand, sections=_SECTIONS,
               short_help="Ask running workers: ping, active, stats, registered...",
               epilog="\b\nActions:\n" + _actions_help(INSPECT))
@click.argument("action", required=False)
@click.argument("args", nargs=-1)
@click.option("--list", "list_actions", is_flag=True, help="List the actions and exit.")
@_common
@click.option("--include-defaults", is_flag=True, help="conf: include settings left at default.")
@global_options(hidden=True)
@pass_cli
def inspect(cli: CLIContext, action: str | None, args: tuple[str, ...], list_actions: bool,
            timeout: float, destination: tuple[list[str], ...], as_json: bool,
            include_defaults: bool) -> None:
    """Ask the running workers about themselves (see the actions below)."""
    if _listed(cli, INSPECT, "inspect", action, list_actions) or action is None:
        return
    arguments = _parse(INSPECT, "inspect", action, args)
    if action == "conf":
        arguments["with_defaults"] = include_defaults
    show(cli, _ask(cli, action, arguments, timeout, destination), as_json)


@click.command(cls=SectionedCommand, sections=_SECTIONS,
               short_help="Change running workers: rate_limit, revoke, pool_grow, shutdown...",
               epilog="\b\nActions:\n" + _actions_help(CONTROL))
@click.argument("action", required=False)
@click.argument("args", nargs=-1)
@click.option("--list", "list_actions", is_flag=True, help="List the actions and exit.")
@_common
@click.option("--terminate", is_flag=True, help="revoke: also stop the task if it runs.")
@click.option("--signal", "signame", default=None, help="revoke --terminate: the signal "
              "(default SIGTERM).")
@global_options(hidden=True)
@pass_cli
def control(cli: CLIContext, action: str | None, args: tuple[str, ...], list_actions: bool,
            timeout: float, destination: tuple[list[str], ...], as_json: bool, terminate: bool,
            signame: str | None) -> None:
    """Change the running workers (see the actions below)."""
    if _listed(cli, CONTROL, "control", action, list_actions) or action is None:
        return
    arguments = _parse(CONTROL, "control", action, args)
    if action in ("revoke", "terminate"):
        if not arguments["task_id"]:
            raise click.UsageError(f"control {action}: needs at least one task id")
        sig = arguments.get("signal") if action == "terminate" else signame
        try:
            name = signal_name(sig) if (terminate or action == "terminate") else None
        except ValueError as exc:
            raise click.UsageError(f"control {action}: {exc}") from None
        # Through app.control.revoke: stored for workers started later, then broadcast.
        replies = cli.app.control.revoke(
            arguments["task_id"], destination=flatten(destination) or None,
            terminate=name is not None, signal=name, reply=True, timeout=timeout) or []
        merged: dict[str, Any] = {}
        for item in replies:
            merged.update(item)
        show(cli, merged, as_json)
        return
    show(cli, _ask(cli, action, arguments, timeout, destination), as_json)


@click.command(cls=SectionedCommand, sections={"Remote Control Options": _REMOTE})
@_common
@global_options(hidden=True)
@pass_cli
def status(cli: CLIContext, timeout: float, destination: tuple[list[str], ...],
           as_json: bool) -> None:
    """List the workers that answer a ping."""
    show(cli, _ask(cli, "ping", {}, timeout, destination), as_json, body=False)
