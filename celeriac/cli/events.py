"""``celeriac events --dump``: print every event live, one line each, as Celery's dumper does.

Only the dump mode exists: ``celeriac events`` without ``--dump`` (Celery's curses monitor)
and ``--camera`` (Celery's snapshots) print one line saying so and exit with status 2.
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import click

from celeriac.cli.context import CLIContext, global_options, pass_cli
from celeriac.cli.detach import detach as run_detached
from celeriac.cli.detach import reruns_app
from celeriac.cli.options import (
    SectionedCommand,
    executable_note,
    executable_option,
    not_applicable,
)
from celeriac.cli.paths import make_parent_dir
from celeriac.cli.pidfile import hold_pidfile
from celeriac.cli.privileges import drop_privileges, owner_options
from celeriac.cli.worker import LogLevel

__all__ = ["EventDumper", "events"]

#: exit status of a mode celeriac does not provide (click's usage error status)
EX_NOT_PROVIDED = 2
#: how Celery's dumper names the worker events
_HUMAN_TYPES = {
    "worker-offline": "shutdown",
    "worker-online": "started",
    "worker-heartbeat": "heartbeat",
}
#: task names remembered from task-sent/task-received, for the lines of later events
_MAX_NAMES = 10_000


def humanize_type(type_: str) -> str:
    return _HUMAN_TYPES.get(type_, type_.lower().replace("-", " "))


class EventDumper:
    """Turns events into Celery's dump lines:
    ``<hostname> [<UTC time>] <type>: <task> <field>=<value>, ...``."""

    def __init__(self, write: Any = None) -> None:
        self.write = write or _write_line
        self.task_names: dict[str, str] = {}

    def format(self, event: dict[str, Any]) -> str:
        event = dict(event)
        event.pop("local_received", None)
        timestamp = event.pop("timestamp", 0.0)
        try:
            when = datetime.fromtimestamp(float(timestamp), UTC).replace(tzinfo=None)
        except (TypeError, ValueError, OverflowError, OSError):
            when = None
        type_ = str(event.pop("type", "")).lower()
        hostname = event.pop("hostname", "")
        task = ""
        if type_.startswith("task-"):
            uuid = str(event.pop("uuid", ""))
            if type_ in ("task-received", "task-sent"):
                task = (f"{event.pop('name', None)}({uuid}) args={event.pop('args', None)} "
                        f"kwargs={event.pop('kwargs', None)}")
                if len(self.task_names) >= _MAX_NAMES:
                    self.task_names.pop(next(iter(self.task_names)))
                self.task_names[uuid] = task
            else:
                task = self.task_names.get(uuid, f"({uuid})")
        fields = ", ".join(f"{key}={event[key]}" for key in sorted(event))
        head = f"{hostname} [{when}] {humanize_type(type_)}"
        body = " ".join(part for part in (task, fields) if part)
        return f"{head}: {body}" if body else head

    def on_event(self, event: dict[str, Any]) -> None:
        self.write(self.format(event))


def _write_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@click.command(cls=SectionedCommand, sections={
    "Dumper": ("dump",),
    "Snapshot": ("camera", "detach", "frequency", "maxrate", "loglevel"),
    "Daemonization Options": ("logfile", "pidfile", "uid", "gid", "umask", "executable"),
})
@click.option("-d", "--dump", is_flag=True, help="Print each event as it arrives.")
@click.option("-c", "--camera", help="Not supported (Celery's snapshot camera).")
@click.option("-F", "--frequency", "--freq", "frequency", type=float,
              help="Not supported (the camera's shutter frequency).")
@click.option("-r", "--maxrate", help="Not supported (the camera's rate limit).")
@click.option("--detach", is_flag=True, help="Run the dump in the background (output to "
              "--logfile, default celeryev.log; pid file celeryev.pid unless given).")
@click.option("-l", "--loglevel", type=LogLevel(), default="WARNING",
              help="Accepted: the dump prints events, not log records.")
@click.option("-f", "--logfile", help="With --detach: where the dump goes (else stdout).")
@click.option("--pidfile", help="Write the dumper's pid here (refuses to start if taken).")
@owner_options()
@executable_option("events")
@global_options(hidden=True)
@pass_cli
def events(
    cli: CLIContext,
    dump: bool,
    camera: str | None,
    frequency: float | None,
    maxrate: str | None,
    detach: bool,
    loglevel: str | int,
    logfile: str | None,
    pidfile: str | None,
    uid: str | None,
    gid: str | None,
    umask: str | None,
    executable: str | None,
) -> None:
    """Print the events workers send (started with -E), live: celeriac events --dump.

    \b
    Only --dump is provided: the curses monitor and the snapshot camera of
    `celery events` are not (use the dashboard, or app.events.State() in Python).
    Stop with Ctrl-C.
    """
    if camera or frequency is not None or maxrate:
        cli.echo("celeriac events: --camera, --frequency and --maxrate are not supported "
                 "(no snapshot camera); use --dump.", err=True)
        sys.exit(EX_NOT_PROVIDED)
    if not dump:
        cli.echo("celeriac events: only --dump is provided (no curses monitor); run "
                 "`celeriac -A proj events --dump`, or use the dashboard.", err=True)
        sys.exit(EX_NOT_PROVIDED)
    if detach:
        run_detached(click.get_current_context(), "events", pidfile=pidfile or "celeryev.pid",
                     logfile=logfile or "celeryev.log", given_pidfile=bool(pidfile),
                     given_logfile=bool(logfile), executable=executable,
                     named_app=reruns_app(cli), logs_itself=False)
    if logfile:
        not_applicable(f"--logfile {logfile}", "the dump prints to stdout",
                       f"redirect it (celeriac events --dump > {logfile}) or add --detach",
                       fatal=True)
    executable_note("events", executable)
    drop_privileges(uid, gid, umask)
    make_parent_dir("--pidfile", pidfile)
    with hold_pidfile(pidfile):
        _dump(cli)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (kill, multi, systemd) ends the dump as Ctrl-C does: its pid file is removed
    raise KeyboardInterrupt


def _dump(cli: CLIContext) -> None:
    app = cli.app
    dumper = EventDumper()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    _write_line("-> evdump: starting capture...")
    try:
        with app.connection() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": dumper.on_event})
            receiver.capture(limit=None, timeout=None, wakeup=True)
    except KeyboardInterrupt:
        pass
