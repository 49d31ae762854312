"""``celeriac worker``: start a worker (options as Celery's ``celery worker``)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from typing import Any

import click

from celeriac import signals
from celeriac.beat import run_embedded
from celeriac.cli.banner import render_banner
from celeriac.cli.context import (
    COMMA_SEPARATED_LIST,
    EX_FAILURE,
    CLIContext,
    flatten,
    global_options,
    pass_cli,
)
from celeriac.cli.detach import detach as run_detached
from celeriac.cli.detach import reruns_app
from celeriac.cli.mistakes import Mistake, require_tasks, warn_foreign_tasks
from celeriac.cli.options import (
    SectionedCommand,
    executable_note,
    executable_option,
    not_applicable,
)
from celeriac.cli.paths import make_parent_dir, node_format
from celeriac.cli.pidfile import hold_pidfile
from celeriac.cli.privileges import drop_privileges, owner_options
from celeriac.exceptions import ImproperlyConfigured
from celeriac.utils.log import level_number, redirected_stdouts, setup_logging
from celeriac.worker import Worker
from celeriac.worker.autoscale import parse_autoscale
from celeriac.worker.pools import POOLS
from celeriac.worker.worker import default_hostname

__all__ = ["worker"]

logger = logging.getLogger("celeriac.worker")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL")
#: used when the configured default pool is not installed in this build
FALLBACK_POOL = "threads"


class LogLevel(click.Choice[str]):
    """``-l info`` or ``-l INFO`` (or a number)."""

    def __init__(self) -> None:
        super().__init__(LOG_LEVELS, case_sensitive=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return int(value)
        return super().convert(value, param, ctx)


class Autoscale(click.ParamType):  # type: ignore[type-arg]  # generic in recent click only
    """``--autoscale=MAX,MIN`` (or ``MAX``, min 0), as Celery reads it: the larger number is
    the maximum."""

    name = "MAX,MIN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            return parse_autoscale(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _pool_available(name: str) -> bool:
    path = POOLS.get(name, name)
    module = path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def choose_pool(cli: CLIContext, requested: str | None, configured: str | None) -> str:
    """The pool to run: ``-P``, else ``worker_pool``; a missing default pool falls back to
    threads (with a warning), a missing requested one is an error."""
    name = requested or configured or "prefork"
    if _pool_available(name):
        return name
    if requested is None:
        cli.echo(
            f"warning: the {name!r} pool is not available in this build; using "
            f"{FALLBACK_POOL!r} (choose one with -P solo|threads)",
            err=True,
        )
        return FALLBACK_POOL
    raise click.BadParameter(
        f"the {name!r} pool is not available (known pools: {', '.join(sorted(POOLS))})",
        param_hint="'-P' / '--pool'",
    )


#: ``celeriac worker --help`` sections, as ``celery worker --help`` has them
WORKER_SECTIONS = {
    "Worker Options": ("hostname", "detach", "statedb", "loglevel", "optimization",
                       "prefetch_multiplier", "disable_prefetch"),
    "Pool Options": ("concurrency", "pool", "task_events", "time_limit", "soft_time_limit",
                     "max_tasks_per_child", "pool_start_method", "max_memory_per_child"),
    "Queue Options": ("purge", "queues", "exclude_queues", "include"),
    "Features": ("without_gossip", "without_mingle", "without_heartbeat", "heartbeat_interval",
                 "autoscale"),
    "Embedded Beat Options": ("beat", "schedule_filename", "scheduler"),
    "Daemonization Options": ("logfile", "pidfile", "uid", "gid", "umask", "executable"),
}


def purge_queues(cli: CLIContext, queues: list[str]) -> int:
    """``worker --purge``: delete the waiting messages of the worker's own queues before it
    consumes (Celery purges at start too); says how many went."""
    count = cli.app.control.purge(queues)
    word = "message" if count == 1 else "messages"
    cli.echo(f"purge: erased {count} {word} from {', '.join(queues)}.", err=True)
    return count


@click.command(cls=SectionedCommand, sections=WORKER_SECTIONS,
               context_settings={"show_default": False})
@click.option("-n", "--hostname", help="Node name, e.g. 'w1@%h' (%h host, %n short name, "
              "%d domain, %i pid). Default: celeriac@%h.")
@click.option("-D", "--detach", is_flag=True,
              help="Run in the background (pid file NODE.pid, log NODE.log unless given).")
@click.option("-S", "--statedb", help="Not needed: revoked ids live in the broker's store.")
@click.option("-l", "--loglevel", type=LogLevel(), default="WARNING", show_default=True,
              help="Logging level.")
@click.option("-O", "--optimization", type=click.Choice(["default", "fair"]),
              help="Accepted for Celery compatibility (scheduling is always fair).")
@click.option("--prefetch-multiplier", type=int,
              help="Messages reserved per pool slot (worker_prefetch_multiplier).")
@click.option("--disable-prefetch", is_flag=True,
              help="Fetch a message only when a pool slot is free to run it (the same as "
              "--prefetch-multiplier=1).")
@click.option("-c", "--concurrency", type=int,
              help="Pool slots (processes/threads). Default: the number of CPUs.")
@click.option("-P", "--pool", help="Pool: prefork, threads or solo.")
@click.option("-E", "--task-events", "--events", "task_events", is_flag=True,
              help="Send task and worker events for monitors (worker_send_task_events).")
@click.option("--time-limit", type=float, help="Hard time limit per task, in seconds.")
@click.option("--soft-time-limit", type=float, help="Soft time limit per task, in seconds.")
@click.option("--max-tasks-per-child", type=int,
              help="Replace a pool process after this many tasks.")
@click.option("--pool-start-method", type=click.Choice(["fork", "spawn"]),
              help="How prefork children start: fork (the only method celeriac has).")
@click.option("--max-memory-per-child", type=click.IntRange(min=1), metavar="KIB",
              help="prefork: replace a pool process whose resident memory is over this many "
              "KiB after a task (the task's result is kept).")
@click.option("--autoscale", type=Autoscale(),
              help="Grow the pool up to MAX processes under load and shrink it back to MIN "
              "when idle, e.g. --autoscale=10,3 (prefork and threads).")
@click.option("--without-gossip", is_flag=True, help="Accepted (no gossip to turn off).")
@click.option("--without-mingle", is_flag=True, help="Accepted (no mingle to turn off).")
@click.option("--without-heartbeat", is_flag=True,
              help="Send no worker-heartbeat events (leases are still renewed).")
@click.option("--heartbeat-interval", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="Seconds between worker-heartbeat events (default 2; with -E).")
@click.option("--purge", "--discard", "purge", is_flag=True,
              help="Delete the waiting messages of the worker's queues before starting.")
@click.option("-Q", "--queues", type=COMMA_SEPARATED_LIST, multiple=True,
              help="Queues to consume, comma separated. Default: task_default_queue.")
@click.option("-X", "--exclude-queues", type=COMMA_SEPARATED_LIST, multiple=True,
              help="Queues not to consume, comma separated.")
@click.option("-I", "--include", type=COMMA_SEPARATED_LIST, multiple=True,
              help="Extra modules to import, comma separated.")
@click.option("-B", "--beat", is_flag=True, help="Also run the beat scheduler in this worker.")
@click.option("-s", "--schedule-filename", "--schedule",
              help="Beat schedule file (with -B).")
@click.option("--scheduler", help="Beat scheduler class (with -B).")
@click.option("--pidfile", help="Write the worker's pid here (refuses to start if taken).")
@click.option("-f", "--logfile", help="Log to this file instead of stderr.")
@owner_options()
@executable_option("worker")
@global_options(hidden=True)
@pass_cli
@click.pass_context
def worker(
    ctx: click.Context,
    cli: CLIContext,
    hostname: str | None,
    detach: bool,
    statedb: str | None,
    loglevel: str | int,
    optimization: str | None,
    prefetch_multiplier: int | None,
    disable_prefetch: bool,
    concurrency: int | None,
    pool: str | None,
    task_events: bool,
    time_limit: float | None,
    soft_time_limit: float | None,
    max_tasks_per_child: int | None,
    pool_start_method: str | None,
    max_memory_per_child: int | None,
    autoscale: tuple[int, int] | None,
    without_gossip: bool,
    without_mingle: bool,
    without_heartbeat: bool,
    heartbeat_interval: float | None,
    purge: bool,
    queues: tuple[list[str], ...],
    exclude_queues: tuple[list[str], ...],
    include: tuple[list[str], ...],
    beat: bool,
    schedule_filename: str | None,
    scheduler: str | None,
    pidfile: str | None,
    logfile: str | None,
    uid: str | None,
    gid: str | None,
    umask: str | None,
    executable: str | None,
) -> None:
    """Start a worker: consume tasks from the broker and run them."""
    if pool_start_method == "spawn":
        not_applicable("--pool-start-method spawn", "the prefork pool always forks its children",
                       "use -P threads for code that must not be forked", fatal=True)
    if statedb:
        not_applicable(f"--statedb {statedb}", "revoked task ids are kept in the broker's "
                       "coordination store and survive restarts", "no state file is needed")
    nodename = default_hostname(hostname)
    pidfile, logfile = node_format(pidfile, nodename), node_format(logfile, nodename)
    if detach:
        short = nodename.partition("@")[0]
        run_detached(ctx, "worker", pidfile=pidfile or f"{short}.pid",
                     logfile=logfile or f"{short}.log", given_pidfile=bool(pidfile),
                     given_logfile=bool(logfile), executable=executable,
                     named_app=reruns_app(cli))
    executable_note("worker", executable)
    drop_privileges(uid, gid, umask)
    if disable_prefetch:
        prefetch_multiplier = 1
    app = cli.app
    conf = app.conf
    extra_modules = flatten(include)
    if extra_modules:
        conf.include = list(conf.include or []) + extra_modules
    require_tasks(cli)
    if schedule_filename:
        conf.beat_schedule_filename = schedule_filename
    if scheduler:
        conf.beat_scheduler = scheduler
    pool_name = choose_pool(cli, pool, conf.worker_pool)
    make_parent_dir("--pidfile", pidfile)
    make_parent_dir("--logfile", logfile)
    code = EX_FAILURE
    with hold_pidfile(pidfile):
        try:
            instance = Worker(
                app,
                hostname=hostname,
                queues=flatten(queues) or None,
                exclude_queues=flatten(exclude_queues) or None,
                concurrency=concurrency,
                pool=pool_name,
                prefetch_multiplier=prefetch_multiplier,
                max_tasks_per_child=max_tasks_per_child,
                send_events=True if task_events else None,
                without_heartbeat=without_heartbeat,
                max_memory_per_child=max_memory_per_child,
                autoscale=autoscale,
                time_limit=time_limit,
                soft_time_limit=soft_time_limit,
                beat=run_embedded if beat else None,
            )
        except ImproperlyConfigured as exc:
            raise Mistake(str(exc)) from None
        if heartbeat_interval is not None:
            instance.events.freq_s = heartbeat_interval
        if purge:
            purge_queues(cli, instance.queues)
        signals.celeryd_init.send(sender=instance.hostname, instance=instance, conf=conf,
                                  options=ctx.params)
        if not cli.quiet:
            cli.echo(render_banner(
                app,
                hostname=instance.hostname,
                concurrency=(
                    f"{{min={instance.autoscale_limits[1]}, max={instance.autoscale_limits[0]}}}"
                    if instance.autoscale_limits else instance.concurrency
                ),
                pool=instance.pool_name,
                queues=instance.queues,
                task_events=task_events,
                beat=beat,
                show_builtin_tasks=level_number(loglevel) <= logging.DEBUG,
            ))
        setup_logging(
            loglevel,
            logfile,
            fmt=conf.worker_log_format,
            task_fmt=conf.worker_task_log_format,
            datefmt=conf.worker_log_datefmt,
            task_datefmt=conf.worker_task_log_datefmt,
            colorize=False if cli.no_color else conf.worker_log_color,
            hijack_root=bool(conf.worker_hijack_root_logger),
        )
        warn_foreign_tasks()  # logged, so it reaches --logfile too
        signals.celeryd_after_setup.send(sender=instance.hostname, instance=instance, conf=conf)
        redirect = (
            redirected_stdouts(logging.getLogger("celeriac.redirected"),
                               conf.worker_redirect_stdouts_level or logging.WARNING)
            if conf.worker_redirect_stdouts
            else contextlib.nullcontext()
        )
        with redirect:
            code = instance.start()
    ctx.exit(code)
