"""``celeriac beat``: run the periodic task scheduler (options as Celery's ``celery beat``)."""

from __future__ import annotations

import click

from celeriac.beat import service
from celeriac.cli.banner import describe_url
from celeriac.cli.beat_control import BeatControl, beat_nodename, max_tick_age_s
from celeriac.cli.context import CLIContext, global_options, pass_cli
from celeriac.cli.detach import detach as run_detached
from celeriac.cli.detach import reruns_app
from celeriac.cli.options import (
    SectionedCommand,
    executable_note,
    executable_option,
)
from celeriac.cli.paths import make_parent_dir
from celeriac.cli.pidfile import hold_pidfile
from celeriac.cli.privileges import drop_privileges, owner_options
from celeriac.cli.worker import LogLevel
from celeriac.utils.log import setup_logging

__all__ = ["beat"]


BEAT_SECTIONS = {
    "Beat Options": ("detach", "schedule_filename", "scheduler", "max_interval",
                     "remote_control", "hostname", "loglevel"),
    "Daemonization Options": ("logfile", "pidfile", "uid", "gid", "umask", "executable"),
}


@click.command(cls=SectionedCommand, sections=BEAT_SECTIONS,
               context_settings={"show_default": False})
@click.option("--detach", is_flag=True, help="Run in the background (pid file "
              "celerybeat.pid, log celerybeat.log unless given).")
@click.option("-s", "--schedule", "schedule_filename",
              help="File keeping the last run of each entry (beat_schedule_filename; "
                   "default celerybeat-schedule, stored as celerybeat-schedule.db).")
@click.option("-S", "--scheduler", help="Scheduler class (beat_scheduler), e.g. "
              "celeriac.beat:PersistentScheduler.")
@click.option("--max-interval", type=float,
              help="Longest sleep between schedule checks, in seconds (default 300).")
@click.option("--enable-remote-control/--no-enable-remote-control", "remote_control",
              default=None, help="Answer `celeriac inspect ping`, so that beat can be "
              "health-checked (overrides beat_enable_remote_control).")
@click.option("-n", "--hostname", help="Node name to answer remote control on "
              "(default celerybeat@%h).")
@click.option("-l", "--loglevel", type=LogLevel(), default="WARNING", show_default=True,
              help="Logging level.")
@click.option("-f", "--logfile", help="Log to this file instead of stderr.")
@click.option("--pidfile", help="Write beat's pid here (refuses to start if taken).")
@owner_options()
@executable_option("beat")
@global_options(hidden=True)
@pass_cli
@click.pass_context
def beat(
    ctx: click.Context,
    cli: CLIContext,
    detach: bool,
    schedule_filename: str | None,
    scheduler: str | None,
    max_interval: float | None,
    remote_control: bool | None,
    hostname: str | None,
    loglevel: str | int,
    logfile: str | None,
    pidfile: str | None,
    uid: str | None,
    gid: str | None,
    umask: str | None,
    executable: str | None,
) -> None:
    """Start the beat scheduler: send periodic tasks when they are due."""
    if detach:
        run_detached(ctx, "beat", pidfile=pidfile or "celerybeat.pid",
                     logfile=logfile or "celerybeat.log", given_pidfile=bool(pidfile),
                     given_logfile=bool(logfile), executable=executable,
                     named_app=reruns_app(cli))
    executable_note("beat", executable)
    drop_privileges(uid, gid, umask)
    app = cli.app
    app.timezone  # noqa: B018 - a misspelt timezone stops here, before any file is made
    conf = app.conf
    if schedule_filename:
        conf.beat_schedule_filename = schedule_filename
    if scheduler:
        conf.beat_scheduler = scheduler
    make_parent_dir("--pidfile", pidfile)
    make_parent_dir("--logfile", logfile)
    with hold_pidfile(pidfile):
        # ImproperlyConfigured (a scheduler that does not load) goes up to the group as a
        # mistake (one line, exit 2), TransportError as an unreachable service (exit 69).
        service.prepare_app(app)
        runner = service.Service(app, max_interval=max_interval)
        sched = runner.get_scheduler()
        setup_logging(loglevel, logfile, fmt=conf.worker_log_format,
                      datefmt=conf.worker_log_datefmt,
                      colorize=False if cli.no_color else conf.worker_log_color,
                      hijack_root=bool(conf.worker_hijack_root_logger))
        if remote_control is None:
            remote_control = bool(conf.beat_enable_remote_control)
        control = BeatControl(
            app.broker, beat_nodename(hostname),
            max_tick_age_s=max_tick_age_s(conf.beat_remote_control_max_tick_age,
                                          sched.max_interval_s),
            last_tick=lambda: runner.last_tick_s) if remote_control else None
        if control is not None:
            control.start()  # subscribed before the banner names it: a probe it prompts is heard
        if not cli.quiet:
            cli.echo(f"celeriac beat is starting.\n"
                     f"  broker     -> {describe_url(app.broker_url)}\n"
                     f"  scheduler  -> {type(sched).__module__}.{type(sched).__qualname__}\n"
                     f"  state      -> {sched.info}\n"
                     f"  timezone   -> {app.timezone}\n"
                     f"  entries    -> {len(sched.entries)}\n"
                     f"  maxinterval-> {sched.max_interval_s:g}s"
                     + (f"\n  remote ctl -> {control.hostname}" if control else ""), err=True)
        try:
            code = service.run(app, service=runner)
        finally:
            if control is not None:
                control.stop()
    ctx.exit(code)
