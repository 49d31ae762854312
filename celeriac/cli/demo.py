"""``celeriac demo``: a worker and the tutorial's tasks on an embedded SQLite broker.

The demo starts a worker subprocess (``celeriac -A celeriac.cli.demo_app worker``) in a
temporary directory (or ``--workdir``), then runs each :class:`DemoStep` of :data:`STEPS`:
send tasks, show their states as they change, their results and the worker's log lines about
them. It stops the worker with SIGTERM (warm shutdown) and exits 0 when every step ended as
expected. The worker sends events (``-E``) for the dashboard step. New features join the demo
as steps added to :data:`STEPS`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import click

import celeriac
from celeriac import states
from celeriac.cli.context import EX_FAILURE, CLIContext, global_options, pass_cli

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.cli.demo_dashboard import DashboardStep
    from celeriac.result import AsyncResult

__all__ = ["STEPS", "DemoRun", "DemoStep", "demo"]

DEMO_APP = "celeriac.cli.demo_app"
QUICK_RETRY_DELAY_S = 0.2
WORKER_START_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.05
#: slack on top of a step's own expected duration before it counts as stuck
STEP_SLACK_S = 60.0
#: how long the beat step's scheduler runs
BEAT_STEP_S = 3.2


@dataclass
class DemoRun:
    """What the steps share: the app, the worker's log, output helpers."""

    cli: CLIContext
    app: Celery
    tasks: ModuleType
    log_path: Path
    retry_delay_s: float
    #: keep the Django site up until Ctrl-C (the demo's last step)
    serve: bool = False
    #: the worker's node name
    hostname: str = ""
    #: the dashboard the dashboard step started (stopped when the demo ends)
    dashboard: DashboardStep | None = None
    _log_offset: int = field(default=0, repr=False)

    def say(self, text: str = "") -> None:
        self.cli.echo(text)

    def watch(self, result: AsyncResult, timeout_s: float = STEP_SLACK_S) -> str:
        """Print the task's state each time it changes until it is ready; return the last."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            state = result.state
            detail = ""
            if state == states.RETRY:
                detail = f" (attempt {int(result.retries or 0) + 1} failed: {result.result!r})"
            if state + detail != last:
                last = state + detail
                self.say(f"    state: {state}{detail}")
            if state in states.READY_STATES:
                return state
            if time.monotonic() > deadline:
                self.say(self.cli.error(f"    still {state} after {timeout_s:.0f}s; giving up"))
                return state
            time.sleep(POLL_INTERVAL_S)

    def worker_lines(self, *needles: str) -> list[str]:
        """Lines of the worker's log that mention any of ``needles``."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if any(n in line for n in needles)]

    def show_worker_lines(self, *task_ids: str) -> None:
        lines = self.worker_lines(*task_ids)
        if lines:
            self.say("    worker log:")
            for line in lines:
                self.say(f"      | {line}")

    def check(self, ok: bool, what: str) -> bool:
        mark = self.cli.ok("ok") if ok else self.cli.error("UNEXPECTED")
        self.say(f"    {mark}: {what}")
        return ok


@dataclass(frozen=True)
class DemoStep:
    """One part of the demo: ``run`` sends tasks, narrates, and returns True when all went
    as expected."""

    name: str
    title: str
    run: Callable[[DemoRun], bool]


def step_add(run: DemoRun) -> bool:
    result = run.tasks.add.delay(10, 6)
    run.say(f"    add.delay(10, 6) -> {result.id}")
    state = run.watch(result)
    run.say(f"    result: {result.result!r}")
    run.show_worker_lines(result.id)
    return run.check(state == states.SUCCESS and result.result == 16, "SUCCESS with 16")


def step_retry(run: DemoRun) -> bool:
    max_retries = run.tasks.MAX_RETRIES
    result = run.tasks.fetch.delay("https://unreachable.example")
    run.say(f"    fetch.delay('https://unreachable.example') -> {result.id}")
    run.say(f"    (bind=True, max_retries={max_retries}, "
            f"default_retry_delay={run.retry_delay_s:g}s: it always calls self.retry)")
    state = run.watch(result, max_retries * run.retry_delay_s + STEP_SLACK_S)
    run.say(f"    result: {result.result!r} after {result.retries} retries")
    run.show_worker_lines(result.id)
    ok = (state == states.FAILURE and isinstance(result.result, ConnectionError)
          and result.retries == max_retries)
    return run.check(ok, f"FAILURE with ConnectionError after {max_retries} retries")


def step_hooks(run: DemoRun) -> bool:
    good = run.tasks.divide.delay(10, 4)
    bad = run.tasks.divide.delay(1, 0)
    run.say("    divide has base=HookedTask, whose on_success/on_failure/after_return log")
    run.say(f"    divide.delay(10, 4) -> {good.id}")
    good_state = run.watch(good)
    run.say(f"    result: {good.result!r}")
    run.say(f"    divide.delay(1, 0) -> {bad.id}")
    bad_state = run.watch(bad)
    run.say(f"    result: {bad.result!r}")
    run.show_worker_lines(good.id, bad.id)
    hooks = " ".join(run.worker_lines(good.id, bad.id))
    ran = all(hook in hooks for hook in ("on_success", "on_failure", "after_return"))
    ok = (good_state == states.SUCCESS and good.result == 2.5
          and bad_state == states.FAILURE and isinstance(bad.result, ZeroDivisionError))
    return run.check(ok and ran, "SUCCESS and FAILURE, and the hooks ran in the worker")


def step_beat(run: DemoRun) -> bool:
    from celeriac.beat import Scheduler

    entry = {"task": run.tasks.add.name, "schedule": 1.0, "args": (10, 5)}
    scheduler = Scheduler(run.app, {"add-every-second": entry})
    run.say("    beat_schedule = {'add-every-second': "
            "{'task': 'celeriac.cli.demo_app.add', 'schedule': 1.0, 'args': (10, 5)}}")
    run.say(f"    (a scheduler runs here for {BEAT_STEP_S:g}s; the worker runs what it sends)")
    deadline = time.monotonic() + BEAT_STEP_S
    while (left_s := deadline - time.monotonic()) > 0:
        time.sleep(min(scheduler.tick(), left_s))
    scheduler.close()
    sent = [item for item in scheduler.history if item.published]
    outcomes = []
    for item in sent:
        result = run.app.AsyncResult(item.task_id)
        state = _wait_quietly(result)
        outcomes.append(state == states.SUCCESS and result.result == 15)
        run.say(f"    run due {item.scheduled_at:%H:%M:%S} -> {item.task_id}: {state}")
    return run.check(len(sent) >= 2 and all(outcomes), "at least 2 runs, each SUCCESS with 15")


def _wait_quietly(result: AsyncResult) -> str:
    deadline = time.monotonic() + STEP_SLACK_S
    while result.state not in states.READY_STATES and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
    return result.state


def step_dashboard(run: DemoRun) -> bool:
    # The dashboard and Django steps load their modules only when they run: those pull in
    # urllib, http and ssl (~6.5 MB of RSS), which every worker would otherwise carry, since
    # the CLI imports this command.
    from celeriac.cli.demo_dashboard import DashboardStep

    if not DashboardStep.available():
        run.say("    skipped: needs the dashboard extra (pip install 'celeriac[dashboard]')")
        return True
    step = DashboardStep(run.log_path.parent, run.app.conf.broker_url, DEMO_APP,
                         _stop_with_parent)
    run.dashboard = step
    return step.run(run.tasks, run.hostname, run.say, run.check, _package_root())


def step_django(run: DemoRun) -> bool:
    from celeriac.cli import demo_django  # loaded when the step runs (see step_dashboard)

    if demo_django.find_project() is None:
        run.say("    skipped: needs Django (pip install 'celeriac[django]') and the source tree's "
                "examples/django_demo")
        return True
    return demo_django.run_django_site(
        run.log_path.parent, run.say, run.check, _stop_with_parent, stop_worker, run.serve
    )


#: The demo, in order. Later features add their steps here.
STEPS: list[DemoStep] = [
    DemoStep("add", "a plain task, add.delay(10, 6)", step_add),
    DemoStep("retry", "a bound task that retries 4 times, then fails", step_retry),
    DemoStep("hooks", "a custom Task base class with hooks", step_hooks),
    DemoStep("beat", "a periodic task every second (beat_schedule)", step_beat),
    DemoStep("dashboard", "the dashboard and its Flower API (celeriac dashboard)",
             step_dashboard),
    DemoStep("django", "the tutorial's Django site (examples/django_demo)", step_django),
]


def _package_root() -> str:
    return str(Path(celeriac.__file__).resolve().parent.parent)


def start_worker(workdir: Path, broker_url: str, hostname: str, pool: str, concurrency: int,
                 retry_delay_s: float, log_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["CELERIAC_DEMO_RETRY_DELAY"] = repr(retry_delay_s)
    env["PYTHONUNBUFFERED"] = "1"
    # The worker must import this very celeriac, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (_package_root(), env.get("PYTHONPATH", "")) if p
    )
    command = [
        sys.executable, "-m", "celeriac", "-A", DEMO_APP, "-b", broker_url, "--no-color",
        "worker", "-l", "info", "-P", pool, "-c", str(concurrency), "-n", hostname, "-E",
    ]
    with open(log_path, "wb") as log:
        # A session of its own: Ctrl-C in the terminal reaches the demo, which then stops the
        # worker itself, warmly.
        return subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True,
                                preexec_fn=_stop_with_parent)


def _stop_with_parent() -> None:
    """Linux: the demo's worker gets SIGTERM if the demo dies (Ctrl-C, a closed pipe), so no
    worker is left behind."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def wait_for_worker(app: Celery, process: subprocess.Popen[bytes], hostname: str) -> bool:
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if app.control.ping([hostname]):
            return True
        time.sleep(POLL_INTERVAL_S)
    return False


def stop_worker(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return EX_FAILURE


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@click.command()
@click.option("--quick", is_flag=True,
              help=f"Retry every {QUICK_RETRY_DELAY_S}s instead of 4s (for tests).")
@click.option("-P", "--pool", default="threads", show_default=True, help="The worker's pool.")
@click.option("-c", "--concurrency", type=int, default=4, show_default=True,
              help="The worker's pool size.")
@click.option("--keep", is_flag=True, help="Keep the temporary directory (broker, worker log).")
@click.option("--serve/--no-serve", default=None,
              help="Keep the Django site running until Ctrl-C (default: on a terminal).")
@global_options(hidden=True)
@pass_cli
def demo(cli: CLIContext, quick: bool, pool: str, concurrency: int, keep: bool,
         serve: bool | None) -> None:
    """Run a worker and the tutorial's tasks on an embedded SQLite broker.

    Uses a temporary directory, or the current one with --workdir.
    """
    if cli.workdir:
        workdir, remove = Path.cwd(), False
    else:
        workdir, remove = Path(tempfile.mkdtemp(prefix="celeriac-demo-")), not keep
    try:
        ok = run_demo(cli, workdir, quick, pool, concurrency,
                      sys.stdin.isatty() if serve is None else serve)
    finally:
        if remove:
            shutil.rmtree(workdir, ignore_errors=True)
    if not ok:
        raise click.exceptions.Exit(EX_FAILURE)


def run_demo(cli: CLIContext, workdir: Path, quick: bool, pool: str, concurrency: int,
             serve: bool = False) -> bool:
    from celeriac.cli import demo_app

    retry_delay_s = QUICK_RETRY_DELAY_S if quick else demo_app.RETRY_DELAY_S
    broker_url = f"sqlite:///{workdir / 'demo.db'}"
    log_path = workdir / "worker.log"
    hostname = f"demo-{os.getpid()}@{socket.gethostname()}"
    app = demo_app.app
    app.conf.broker_url = broker_url
    app.close()
    cli.echo(f"celeriac {celeriac.__version__} demo in {workdir}")
    cli.echo(f"  broker and results: {broker_url}")
    cli.echo(f"  worker log:         {log_path}")
    app.control.purge()
    process = start_worker(workdir, broker_url, hostname, pool, concurrency, retry_delay_s,
                           log_path)
    outcomes: list[bool] = []
    run: DemoRun | None = None
    try:
        cli.echo(f"  worker:             {hostname} (pid {process.pid}, -P {pool}), starting...")
        if not wait_for_worker(app, process, hostname):
            cli.echo(cli.error("The worker did not start. Its log ends with:"), err=True)
            cli.echo(_tail(log_path), err=True)
            return False
        run = DemoRun(cli, app, demo_app, log_path, retry_delay_s, serve, hostname)
        for number, step in enumerate(STEPS, 1):
            cli.echo()
            cli.echo(f"[{number}/{len(STEPS)}] {step.name}: {step.title}")
            outcomes.append(step.run(run))
    finally:
        cli.echo()
        if run is not None and run.dashboard is not None:
            run.dashboard.stop()  # uvicorn shuts down, then exits by the SIGTERM it caught
            cli.echo("Stopped the dashboard (SIGTERM).")
        cli.echo("Stopping the worker (SIGTERM: warm shutdown)...")
        code = stop_worker(process)
        cli.echo(f"  worker exited with status {code}")
        app.close()
    ok = all(outcomes) and code == 0
    cli.echo(cli.ok("Demo finished: all steps behaved as expected.") if ok
             else cli.error("Demo finished with unexpected results (see above)."))
    return ok
