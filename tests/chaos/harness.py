"""The chaos harness: real worker processes (the ``celeriac`` CLI) attacked while they work, and
a count of what happened to every task.

Each scenario enqueues ``tasks`` acks_late tasks. A task appends its number to a run log (one
O_APPEND write, atomic) when it starts, so a task that ran twice shows up twice, even if it
was killed before finishing. At the end, with a fresh worker draining, every task's result is
read and the scenario reports:

* **lost**: no SUCCESS result and no message left anywhere (never to run again);
* **stuck**: no SUCCESS result by the deadline although its message still exists;
* **duplicated**: tasks that started more than once;
* **allowed**: the most duplicates allowed: the tasks caught running by the attacks (started
  since the previous attack, with no SUCCESS stored, read right after each SIGKILL;
  concurrency x restarts for a broker restart; none for a warm shutdown or poison input).
  Where a result and its message's ack are not one transaction (``Target.atomic_settle``
  false: RabbitMQ, results in Redis) a SIGKILL may also land between storing a result and
  acking its message, and that task runs again (at least once, as documented): those are
  counted right after each SIGKILL, before the next worker starts, as tasks with SUCCESS
  stored minus messages acked (sent, minus those back in the queue), and allowed too. The
  report shows them apart ("n stored, unacked").

Pass = 0 lost, 0 stuck, duplicated <= bound. The brokers (tests/chaos/targets.py) are SQLite,
Redis, RabbitMQ and PostgreSQL, each in storage of its own. ``python -m tests.chaos`` runs the
long version and prints the table that docs/reliability.md quotes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.chaos.targets import Target

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    import os, time
    from celeriac import Celery

    app = Celery("chaosapp", broker=os.environ["CHAOS_BROKER"],
                 **({"backend": os.environ["CHAOS_BACKEND"]} if os.environ.get("CHAOS_BACKEND")
                    else {}))
    RUNLOG = os.environ["CHAOS_RUNLOG"]

    @app.task(acks_late=True)
    def work(i, sleep_s):
        fd = os.open(RUNLOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"%d\\n" % i)
        finally:
            os.close(fd)
        time.sleep(sleep_s)
        return i
    """
)


@dataclass
class Report:
    broker: str
    scenario: str
    tasks: int
    attacks: int
    lost: int
    stuck: int
    duplicated: int
    bound: int
    seconds: float
    #: of ``bound``: tasks whose result was stored but whose message was not acked yet at a
    #: kill (only where result and ack are not one transaction)
    stored_unacked: int = 0

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.stuck == 0 and self.duplicated <= self.bound

    def row(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        bound = f"{self.bound} ({self.stored_unacked} stored, unacked)" if self.stored_unacked \
            else str(self.bound)
        return (f"| {self.broker} | {self.scenario} | {self.tasks} | {self.attacks} | "
                f"{self.lost} | {self.stuck} | {self.duplicated} | {bound} | "
                f"{self.seconds:.1f} | {verdict} |")


HEADER = ("| broker | scenario | tasks | attacks | lost | stuck | duplicated | allowed | s | |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---|")


class Bench:
    """One scenario's working directory, app module and worker processes."""

    def __init__(self, workdir: Path, broker_url: str, concurrency: int = 2,
                 pool: str = "prefork", backend_url: str | None = None) -> None:
        self.workdir = workdir
        self.broker_url = broker_url
        self.backend_url = backend_url or ""
        self.concurrency = concurrency
        self.pool = pool
        self.runlog = workdir / "runs.log"
        (workdir / "chaosapp.py").write_text(APP)
        self.env = {k: v for k, v in os.environ.items() if k not in ("CELERIAC_APP", "CELERY_APP")}
        self.env.update(
            CHAOS_BROKER=broker_url,
            CHAOS_BACKEND=self.backend_url,
            CHAOS_RUNLOG=str(self.runlog),
            PYTHONPATH=os.pathsep.join([str(workdir), str(ROOT), self.env.get("PYTHONPATH", "")]),
            PYTHONUNBUFFERED="1",
        )
        self.workers: list[subprocess.Popen[bytes]] = []
        self._module: Any = None

    @property
    def module(self) -> Any:
        """The app module imported in this process (to send tasks and read results)."""
        if self._module is None:
            sys.path.insert(0, str(self.workdir))
            os.environ["CHAOS_BROKER"] = self.broker_url
            os.environ["CHAOS_BACKEND"] = self.backend_url
            os.environ["CHAOS_RUNLOG"] = str(self.runlog)
            sys.modules.pop("chaosapp", None)
            import chaosapp  # type: ignore[import-not-found]

            self._module = chaosapp
            sys.path.remove(str(self.workdir))
            sys.modules.pop("chaosapp", None)
        return self._module

    def start_worker(self, name: str = "chaos@%h", extra: tuple[str, ...] = ()
                     ) -> subprocess.Popen[bytes]:
        log = open(self.workdir / "worker.log", "ab")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "chaosapp", "worker", "-P", self.pool,
             "-c", str(self.concurrency), "-n", name, "-l", "warning", *extra],
            cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.workers.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes], signum: int = signal.SIGKILL) -> None:
        """Signal the worker's whole process group (pool children too, as a container stop
        or an OOM kill of the group would)."""
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass
        proc.wait(60)

    def runs(self) -> Counter[int]:
        try:
            text = self.runlog.read_text()
        except FileNotFoundError:
            return Counter()
        return Counter(int(line) for line in text.split() if line)

    def wait_runs(self, at_least: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.runs()) < at_least and time.monotonic() < deadline:
            time.sleep(0.02)

    def send(self, count: int, sleep_s: float) -> list[Any]:
        work = self.module.work
        return [work.delay(i, sleep_s) for i in range(count)]

    def queue_size_settled(self, timeout_s: float = 3.0) -> int:
        """The default queue's size once it stops changing (read every 0.1 s): after a kill,
        once the broker has taken back what the dead worker held unacked."""
        size = self.module.app.broker.queue_size("celery")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(0.1)
            size, before = self.module.app.broker.queue_size("celery"), size
            if size == before:
                break
        return int(size)

    def settle(self, results: list[Any], timeout_s: float) -> tuple[int, int]:
        """(lost, stuck) once every result is SUCCESS or the deadline passed."""
        deadline = time.monotonic() + timeout_s
        pending = list(results)
        while pending and time.monotonic() < deadline:
            pending = [r for r in pending if r.state != "SUCCESS"]
            if pending:
                time.sleep(0.1)
        if not pending:
            return 0, 0
        waiting = self.module.app.broker.queue_size("celery")
        # Messages still in the queue are stuck (they may yet run); beyond those, lost.
        stuck = min(len(pending), waiting)
        return len(pending) - stuck, stuck

    def close(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                self.kill(proc)
        if self._module is not None:
            self._module.app.close()


@contextmanager
def bench(workdir: Path, broker_url: str, **options: Any) -> Iterator[Bench]:
    b = Bench(workdir, broker_url, **options)
    try:
        yield b
    finally:
        b.close()


def _duplicates(runs: Counter[int]) -> int:
    return sum(count - 1 for count in runs.values() if count > 1)


def _running(b: Bench, results: list[Any], before: Counter[int]) -> tuple[int, Counter[int]]:
    """Tasks that started since the previous attack (``before``: the run counts then) and have
    no stored SUCCESS, read right after this attack: what it caught running. Only these may
    run again. Returns that count and the run counts now."""
    now = b.runs()
    caught = sum(1 for i, count in now.items()
                 if count > before[i] and i < len(results) and results[i].state != "SUCCESS")
    return caught, now


def _stored_unacked(b: Bench, results: list[Any], runs: Counter[int]) -> int:
    """Where a result is stored first and its message acked after (``Target.atomic_settle``
    false: RabbitMQ, whose unacked messages are back in their queue as soon as the killed
    worker's connection closes): the tasks the kill caught between the two, read right after
    it and before the next worker consumes: tasks with SUCCESS stored, minus messages acked
    (sent, minus those in the queue again). Each of them may run again."""
    waiting = b.queue_size_settled()
    succeeded = sum(1 for i in runs if i < len(results) and results[i].state == "SUCCESS")
    return max(0, succeeded - (len(results) - waiting))


def sigkill(workdir: Path, target: Target, *, tasks: int, kills: int,
            sleep_s: float = 0.002, concurrency: int = 2, timeout_s: float = 120) -> Report:
    """SIGKILL the worker's process group ``kills`` times while it drains ``tasks`` acks_late
    tasks; a new worker with the same node name starts at once after each kill."""
    started = time.monotonic()
    with bench(workdir, target.broker_url, concurrency=concurrency,
               backend_url=target.backend_url) as b:
        results = b.send(tasks, sleep_s)
        proc = b.start_worker()
        caught = unacked = 0
        runs: Counter[int] = Counter()
        for k in range(1, kills + 1):
            b.wait_runs(tasks * k // (kills + 1), timeout_s)
            b.kill(proc)
            newly, runs = _running(b, results, runs)
            caught += newly
            if not target.atomic_settle:
                unacked += _stored_unacked(b, results, runs)
            proc = b.start_worker()
        lost, stuck = b.settle(results, timeout_s)
        return Report(target.label, f"SIGKILL x{kills}", tasks, kills, lost, stuck,
                      _duplicates(b.runs()), caught + unacked, time.monotonic() - started,
                      stored_unacked=unacked)


def sigterm(workdir: Path, target: Target, *, tasks: int, stops: int,
            sleep_s: float = 0.002, concurrency: int = 2, timeout_s: float = 120) -> Report:
    """Warm shutdown (SIGTERM to the worker) ``stops`` times under load: running tasks finish,
    reserved ones go back; nothing may run twice."""
    started = time.monotonic()
    with bench(workdir, target.broker_url, concurrency=concurrency,
               backend_url=target.backend_url) as b:
        results = b.send(tasks, sleep_s)
        proc = b.start_worker()
        for k in range(1, stops + 1):
            b.wait_runs(tasks * k // (stops + 1), timeout_s)
            proc.send_signal(signal.SIGTERM)
            if proc.wait(60) != 0:
                raise AssertionError("warm shutdown exited non-zero")
            proc = b.start_worker()
        lost, stuck = b.settle(results, timeout_s)
        return Report(target.label, f"SIGTERM x{stops}", tasks, stops, lost, stuck,
                      _duplicates(b.runs()), 0, time.monotonic() - started)


def broker_restart(workdir: Path, server: Any, label: str, *, tasks: int, restarts: int,
                   sleep_s: float = 0.002, concurrency: int = 2, send_over_s: float = 4.0,
                   timeout_s: float = 120, backend_url: str | None = None,
                   scenario: str = "broker restart", prefetch_multiplier: int | None = None,
                   ) -> Report:
    """Restart the broker's private server (a durable Redis, a private PostgreSQL cluster)
    ``restarts`` times while a producer sends and a worker drains. ``server`` has ``url``,
    ``start()`` and ``stop()``; results go to ``backend_url`` (default: the broker's URL).
    Publishing rides through each restart (the producer must not raise); nothing may be
    lost. At most what the worker was running may run again (concurrency per restart); with
    ``prefetch_multiplier`` (a fixed window) at most what it held: running and reserved, as
    on RabbitMQ, where a cut connection gives back every unacked message at once and a task
    the worker started before it noticed the cut runs again from its redelivery."""
    started = time.monotonic()
    with bench(workdir, server.url, concurrency=concurrency, backend_url=backend_url) as b:
        work = b.module.work
        results: list[Any] = []
        errors: list[BaseException] = []

        def produce() -> None:
            try:
                for i in range(tasks):
                    results.append(work.delay(i, sleep_s))
                    time.sleep(send_over_s / tasks)  # still sending during the restarts
            except BaseException as exc:  # reported below
                errors.append(exc)

        extra = ("--prefetch-multiplier", str(prefetch_multiplier)) if prefetch_multiplier \
            else ()
        b.start_worker(extra=extra)
        producer = threading.Thread(target=produce)
        producer.start()
        for k in range(1, restarts + 1):
            b.wait_runs(tasks * k // (restarts + 2), timeout_s)
            server.stop()
            time.sleep(1.0)
            server.start()
        producer.join(timeout_s)
        if errors:
            raise AssertionError(f"publishing raised during a broker restart: {errors[0]!r}")
        lost, stuck = b.settle(results, timeout_s)
        # A restart cuts the worker off mid-settle: at most what it was running may run again.
        return Report(label, f"{scenario} x{restarts}", tasks, restarts, lost, stuck,
                      _duplicates(b.runs()),
                      restarts * concurrency * (1 + (prefetch_multiplier or 0)),
                      time.monotonic() - started)


def poison(workdir: Path, target: Target, *, tasks: int, timeout_s: float = 120) -> Report:
    """Malformed messages (``inject(app)`` writes them and returns how many) between good ones:
    every good task runs once, the worker never dies, and no hostile message is left waiting
    in the queue (each is dead-lettered or, valid after all, run): one left counts as stuck."""
    started = time.monotonic()
    with bench(workdir, target.broker_url, backend_url=target.backend_url) as b:
        half = b.send(tasks // 2, 0.0)
        bad = target.inject(b.module.app)
        rest = [b.module.work.delay(i, 0.0) for i in range(tasks // 2, tasks)]
        proc = b.start_worker()
        lost, stuck = b.settle(half + rest, timeout_s)
        deadline = time.monotonic() + 10.0
        while (left := b.queue_size_settled()) and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = proc.poll() is None
        report = Report(target.label, f"poison x{bad}", tasks, bad, lost, stuck,
                        _duplicates(b.runs()), 0, time.monotonic() - started)
        report.stuck += left
        if not alive:
            report.stuck += 1  # a dead worker is a failure whatever the counts say
        return report
