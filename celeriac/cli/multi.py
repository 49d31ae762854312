"""``celeriac multi start|stop|stopwait|restart|kill|show|names|get``: run several detached
workers on this machine, as ``celery multi`` does (node names and options: see
:mod:`celeriac.cli.multi_nodes`).

Rules:

* ``start`` runs ``python -m celeriac worker -n NODE --pidfile P --logfile L ...`` for each
  node in a new session (no terminal; stdin from /dev/null; its stdout and stderr appended
  to the log file) and returns once each node has written its pid file (OK) or exited
  (FAILED, exit status 1). A node whose pid file names a live process is left alone.
  This fits systemd's ``Type=forking`` with ``PIDFile=``.
* ``stop`` sends SIGTERM (warm shutdown: running tasks finish) and returns; ``stopwait``
  also waits until every node has exited; ``kill`` sends SIGKILL and removes the pid files;
  ``restart`` is ``stopwait`` then ``start``. A node is found by its pid file only, so give
  ``stop`` the same ``--pidfile`` as ``start``. A pid file naming no live process is removed.
* ``show`` prints each node's command line; ``names`` its node name; ``get NODE`` one node's
  command line; ``expand TEMPLATE`` the template with each node's ``%n``/``%h``/``%d``
  (``expand /var/run/%n.pid w1 w2``); ``stop_verify`` is ``stopwait``; ``help`` this text.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

import click

import celeriac
from celeriac.cli.context import get_cli
from celeriac.cli.detach import spawn_detached, wait_for_pidfile
from celeriac.cli.multi_nodes import (
    MultiArgs,
    Node,
    command_line,
    expand_path,
    parse_multi_args,
)
from celeriac.cli.pidfile import alive, read_pid

__all__ = ["multi"]

#: how often ``stopwait`` polls the processes, in seconds
POLL_S = 0.1


class Multi:
    """Runs one multi command over the nodes; ``say`` prints a line."""

    def __init__(self, parsed: MultiArgs, say: Callable[[str], None]) -> None:
        self.parsed = parsed
        self.say = say
        self.nodes = parsed.nodes(socket.gethostname())
        self.executable = parsed.executable or sys.executable

    @staticmethod
    def at(node: Node, path: str) -> str:
        """``path`` (a node's pid or log file) as this process finds it: a node started with
        ``--workdir`` resolves its relative files there."""
        workdir = None
        for i, arg in enumerate(node.argv):
            if arg == "--workdir" and i + 1 < len(node.argv):
                workdir = node.argv[i + 1]
            elif arg.startswith("--workdir="):
                workdir = arg.partition("=")[2]
        return os.path.join(workdir, path) if workdir and not os.path.isabs(path) else path

    def argv(self, node: Node) -> list[str]:
        return [self.executable, "-m", "celeriac", "worker", "-n", node.name,
                "--pidfile", node.pidfile, "--logfile", node.logfile, *node.argv]

    # -- commands ---------------------------------------------------------------------------
    def start(self) -> int:
        self.say("> Starting nodes...")
        launched: list[tuple[Node, subprocess.Popen[bytes]]] = []
        for node in self.nodes:
            pidfile = self.at(node, node.pidfile)
            pid = read_pid(pidfile)
            if pid is not None:
                self.say(f"\t> {node.name}: already running (pid {pid})")
                continue
            if self.parsed.verbose:
                self.say(f"\t> {node.name}: {command_line(self.argv(node))}")
            os.makedirs(os.path.dirname(os.path.abspath(pidfile)), exist_ok=True)
            launched.append((node, spawn_detached(self.argv(node), self.at(node, node.logfile))))
        failed = 0
        for node, process in launched:
            if wait_for_pidfile(process, self.at(node, node.pidfile)):
                self.say(f"\t> {node.name}: OK")
            else:
                failed += 1
                self.say(f"\t> {node.name}: FAILED (exit status {process.returncode}; "
                         f"see {node.logfile})")
        return 1 if failed else 0

    def stop(self, sig: int = signal.SIGTERM, wait: bool = False) -> int:
        self.say("> Stopping nodes...")
        pending: list[tuple[Node, int]] = []
        for node in self.nodes:
            pid = read_pid(self.at(node, node.pidfile))
            if pid is None:
                self.say(f"\t> {node.name}: DOWN")
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            self.say(f"\t> {node.name}: {signal.Signals(sig).name[3:]} -> {pid}")
            pending.append((node, pid))
        if sig == signal.SIGKILL:
            for node, pid in pending:
                _remove_if_names(self.at(node, node.pidfile), pid)
        if wait and pending:
            pids = ", ".join(str(pid) for _, pid in pending)
            self.say(f"> Waiting for {len(pending)} "
                     f"{'node' if len(pending) == 1 else 'nodes'} -> {pids}...")
            for node, pid in pending:
                while alive(pid) and not _reaped(pid):
                    time.sleep(POLL_S)
                _remove_if_names(self.at(node, node.pidfile), pid)
                self.say(f"\t> {node.name}: OK")
        return 0

    def show(self) -> int:
        for node in self.nodes:
            self.say(command_line(self.argv(node)))
        return 0

    def names(self) -> int:
        for node in self.nodes:
            self.say(node.name)
        return 0


def _remove_if_names(path: str, pid: int) -> None:
    """Remove the pid file of a node that was stopped, unless it names another process now
    (a node started meanwhile holds it)."""
    if _names(path, pid):
        with contextlib.suppress(OSError):
            os.unlink(path)


def _names(path: str, pid: int) -> bool:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip() == str(pid)
    except (OSError, UnicodeDecodeError):
        return False


def _reaped(pid: int) -> bool:
    """Collect ``pid`` if it is our own exited child (a zombie still answers kill(pid, 0))."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


COMMANDS = ("start", "stop", "stopwait", "stop_verify", "restart", "kill", "show", "names",
            "get", "expand", "help")


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "help_option_names": ["--help"]})
@click.argument("command", type=click.Choice(COMMANDS))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def multi(ctx: click.Context, command: str, args: Sequence[str]) -> None:
    """Start and stop several detached workers: multi COMMAND NODES [WORKER OPTIONS].

    \b
    Examples:
      celeriac multi start w1 w2 -A proj -l info       # pid files w1.pid, logs w1.log
      celeriac multi start 3 -A proj -c 3 -c:1 10      # celery1..3, the first with -c 10
      celeriac multi stopwait w1 w2                    # SIGTERM, then wait for the exit
      celeriac multi restart w1 w2 -A proj -l info
      celeriac multi show 3 -A proj --pidfile=/run/celeriac/%n.pid
    Multi's own options: --pidfile (default %n.pid), --logfile (default %n%I.log),
    --range-prefix, --hostname, --executable, -q/--quiet, --verbose.
    Global options given before `multi` (celeriac -A proj multi ...) go to every worker.
    """
    cli = get_cli(ctx)
    forwarded: list[str] = []
    for flag, value in (("-A", cli.app_name), ("-b", cli.broker),
                        ("--result-backend", cli.result_backend), ("--config", cli.config)):
        if value:
            forwarded += [flag, value]
    parsed = parse_multi_args([*args, *forwarded])
    parsed.quiet = parsed.quiet or cli.quiet
    if command == "help":
        click.echo(ctx.get_help())
        raise click.exceptions.Exit(0)
    wanted = ""
    if command in ("get", "expand"):
        if not parsed.names:
            what = "node" if command == "get" else "template"
            raise click.UsageError(f"multi {command}: which {what}? "
                                   f"(multi {command} {what.upper()} NODES [OPTIONS])")
        wanted, parsed.names = parsed.names[0], parsed.names[1:] or [parsed.names[0]]
    if not parsed.names:
        raise click.UsageError(f"multi {command}: name the nodes, e.g. `celeriac multi "
                               f"{command} w1 w2 -A proj` or a count: `... {command} 3 ...`")

    def say(line: str) -> None:
        if not parsed.quiet:
            click.echo(line)

    runner = Multi(parsed, say)
    if command in ("start", "restart") and not parsed.nosplash and not parsed.quiet:
        click.echo(f"celeriac multi v{celeriac.__version__}")
    if command == "start":
        code = runner.start()
    elif command == "stop":
        code = runner.stop()
    elif command in ("stopwait", "stop_verify"):
        code = runner.stop(wait=True)
    elif command == "kill":
        code = runner.stop(signal.SIGKILL)
    elif command == "restart":
        runner.stop(wait=True)
        code = runner.start()
    elif command == "show":
        code = runner.show()
    elif command == "names":
        code = runner.names()
    elif command == "expand":
        for node in runner.nodes:
            domain = node.name.partition("@")[2].partition(".")[2]
            click.echo(expand_path(wanted, node.short_name, node.name, domain))
        code = 0
    else:
        matches = [n for n in runner.nodes if wanted in (n.name, n.short_name)]
        if not matches:
            raise click.UsageError(f"multi get: no node {wanted!r}")
        click.echo(command_line(runner.argv(matches[0])))
        code = 0
    raise click.exceptions.Exit(code)
