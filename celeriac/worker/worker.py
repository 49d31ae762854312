"""The worker: claims messages, runs them in a pool, stores results, settles messages.

One loop in the main thread; a heartbeat thread renews the leases of held messages and
announces the worker. SIGTERM/SIGINT = warm shutdown (running tasks finish, reserved
messages go back to the queue); a second one, or SIGQUIT, = cold shutdown.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from queue import Empty, SimpleQueue
from types import FrameType
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac._utils.imports import symbol_by_name
from celeriac._utils.signal_relay import SignalRelay
from celeriac._utils.urls import mask_url
from celeriac.control import termination_requests
from celeriac.exceptions import ColdShutdown, ImproperlyConfigured, TransportError
from celeriac.worker.autoscale import autoscale_bounds
from celeriac.worker.control import ControlListener, RevokedSeen
from celeriac.worker.events import WorkerEvents
from celeriac.worker.executor import Executor
from celeriac.worker.pools import create_pool, pool_class
from celeriac.worker.prefetch import LONG_TASK_S, Prefetch

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.worker.autoscale import Autoscaler
    from celeriac.worker.pools.base import Pool

logger = logging.getLogger("celeriac.worker")

WARM, COLD = "warm", "cold"
#: exit status of a worker that stopped because it could not go on (sysexits' EX_SOFTWARE)
EXIT_SOFTWARE = 70
#: longest wait between two attempts to reach the broker or backend before the worker is ready
MAX_CONNECT_DELAY_S = 30.0
#: the task id the readiness check asks the result backend about (never stored)
READINESS_PROBE_ID = "celeriac.readiness-probe"


def _one_line(exc: BaseException) -> str:
    """An exception as one line of text: its message's lines joined, its type when empty."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def default_hostname(name: str | None) -> str:
    """Celery's ``-n`` expansion: %h host, %n name, %d domain, %i pid."""
    host = socket.gethostname()
    short, _, domain = host.partition(".")
    name = name or "celeriac@%h"
    return (
        name.replace("%h", host)
        .replace("%n", short)
        .replace("%d", domain)
        .replace("%i", str(os.getpid()))
        .replace("%I", str(os.getpid()))
    )


class Worker:
    #: consecutive unexpected main-loop errors after which the worker exits non-zero
    MAX_UNEXPECTED_ERRORS = 5
    #: how often running tasks are checked for revoke(terminate=True), in seconds
    REVOKE_CHECK_S = 0.5
    #: first wait after an unexpected error; doubles with each one in a row (at most 5 s)
    UNEXPECTED_BACKOFF_S = 0.125

    def __init__(
        self,
        app: Celery,
        *,
        hostname: str | None = None,
        queues: Sequence[str] | None = None,
        exclude_queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        pool: str | None = None,
        prefetch_multiplier: int | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        autoscale: tuple[int, int] | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        install_signal_handlers: bool = True,
        burst: bool = False,
        beat: Callable[[Celery, threading.Event], None] | None = None,
        send_events: bool | None = None,
        without_heartbeat: bool = False,
    ) -> None:
        """``beat`` is what ``worker -B`` runs in a thread, ``beat(app, stop_event)``: the CLI
        passes :func:`celeriac.beat.run_embedded` (the worker does not import beat: they are
        sibling runtimes)."""
        if isinstance(beat, bool):  # the flag it used to be
            if beat:
                raise ImproperlyConfigured(
                    "Worker(beat=True): pass the embedded scheduler itself, "
                    "Worker(..., beat=celeriac.beat.run_embedded)"
                )
            beat = None
        self.app = app
        conf = app.conf
        app.ensure_configured()
        # A misspelt timezone fails now, with its name, not at the first eta or crontab.
        app.timezone  # noqa: B018
        self.hostname = default_hostname(hostname)
        app.hostname = self.hostname
        if time_limit is not None:
            conf.task_time_limit = time_limit
        if soft_time_limit is not None:
            conf.task_soft_time_limit = soft_time_limit
        names = list(queues or [])
        if not names:
            names = [conf.task_default_queue]
            for queue in conf.task_queues or ():
                name = getattr(queue, "name", queue)
                if name not in names:
                    names.append(str(name))
        self.queues = [q for q in names if q not in set(exclude_queues or ())]
        self.pool_name = pool or conf.worker_pool or "prefork"
        if self.pool_name == "solo":
            self.concurrency = 1
        else:
            self.concurrency = int(concurrency or conf.worker_concurrency or os.cpu_count() or 1)
        multiplier = prefetch_multiplier
        if multiplier is None:
            multiplier = conf.worker_prefetch_multiplier
        #: the prefetch window: fixed when a multiplier is given, else adaptive
        self.prefetch = Prefetch(multiplier)
        self.max_tasks_per_child = max_tasks_per_child or conf.worker_max_tasks_per_child
        #: KiB; prefork replaces a child over it after its task (other pools warn and ignore)
        self.max_memory_per_child = max_memory_per_child or conf.worker_max_memory_per_child
        #: (max, min) pool size with --autoscale; the pool starts at min (at least 1)
        self.autoscale_limits = self._autoscale_limits(autoscale)
        if self.autoscale_limits is not None:
            self.concurrency = max(1, self.autoscale_limits[1])
        #: made with the pool when autoscale is on; only the main loop calls it
        self.autoscaler: Autoscaler | None = None
        #: pool resize requests from other threads (remote control), run by the main loop
        self._pool_requests: SimpleQueue[tuple[str, int, int]] = SimpleQueue()
        self.install_signal_handlers = install_signal_handlers
        self.burst = burst
        self.embed_beat = beat
        self.heartbeat_interval_s = max(0.05, app.broker.lease_s / 3)
        self._shutdown: str | None = None
        #: what start() returns: 0, or EXIT_SOFTWARE when the worker could not go on
        self.exitcode = 0
        #: task ids already handed to the pool to terminate
        self._terminating: set[str] = set()
        #: (job id, task id, task name, signal) for the main loop to pass to the pool
        self._terminate_requests: SimpleQueue[tuple[int, str, str, int]] = SimpleQueue()
        #: ids revoked by remote control, for the main loop to drop from the reserve
        self._discard_requests: SimpleQueue[list[str]] = SimpleQueue()
        self._stop_event = threading.Event()
        #: runs what a signal asks (logging, waking waiters) outside the handler (start())
        self._relay: SignalRelay | None = None
        self.pool: Pool | None = None
        self.executor: Executor | None = None
        self.started_at = time.time()
        #: the remote-control listener (None until start(), or without broadcast)
        self.control: ControlListener | None = None
        #: the queues of the claim under way in the main loop (None between claims)
        self._consuming: list[str] | None = None
        #: ids revoked by remote-control requests to this worker (``inspect revoked``)
        self.revoked_seen = RevokedSeen()
        #: ``-E`` / ``worker_send_task_events`` (None: the setting decides)
        self.send_events = (
            bool(conf.worker_send_task_events) if send_events is None else bool(send_events)
        )
        #: worker-online/heartbeat/offline and the task events' switch
        self.events = WorkerEvents(self, enabled=self.send_events)
        self.events.periodic_heartbeats = not without_heartbeat

    # -- control --------------------------------------------------------------------------------
    def stop(self, how: str = WARM) -> None:
        if self._shutdown == COLD:
            return
        if self._shutdown == WARM and how == WARM:
            how = COLD
        self._shutdown = how
        if self.executor is not None:
            self.executor.stopping = True
        self._stop_event.set()

    def request_shutdown(self) -> None:
        """Warm shutdown asked from another thread (remote control): the main loop stops
        claiming at its next turn, running tasks finish."""
        self.stop(WARM)

    def add_queue(self, queue: str) -> None:
        """Consume from ``queue`` too, from the main loop's next claim (any thread)."""
        if queue not in self.queues:
            self.queues = [*self.queues, queue]

    def remove_queue(self, queue: str, wait_s: float = 3.0) -> None:
        """Stop claiming from ``queue`` (any thread): returns once no claim that includes it
        is under way (at most ``wait_s``); what was claimed from it still runs."""
        self.queues = [q for q in self.queues if q != queue]
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            consuming = self._consuming
            if consuming is None or queue not in consuming:
                return
            time.sleep(0.01)

    def revoke_local(self, task_ids: Sequence[str], signum: int | None = None) -> None:
        """A revoke that reached this worker by remote control (any thread): remember the
        ids, drop them if they wait in reserve, and with ``signum`` stop the ones running."""
        self.revoked_seen.add(task_ids)
        self._discard_requests.put(list(task_ids))
        executor = self.executor
        if signum is None or executor is None:
            return
        wanted = set(task_ids)
        for job in list(executor.active.values()):
            task_id = job.request["id"]
            if task_id in wanted and task_id not in self._terminating:
                self._terminating.add(task_id)
                job.terminate_signum = signum
                if self.pool is not None and self.pool.runs_inline:
                    self._terminate(job.id, task_id, job.task_name, signum)
                else:
                    self._terminate_requests.put((job.id, task_id, job.task_name, signum))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: warm shutdown; a second one, or SIGQUIT: cold. Runs between two
        bytecodes of the main thread, so it takes no lock (the main thread may hold it, e.g.
        inside ``Event.set``): it sets plain attributes, which the loops read, and hands the
        logging and the wake-up of waiters to the signal relay."""
        how = COLD if signum == getattr(signal, "SIGQUIT", None) else WARM
        if self._shutdown is not None:
            how = COLD
        if self._shutdown != COLD:
            self._shutdown = how
        executor = self.executor
        if executor is not None:
            executor.stopping = True
        relay = self._relay
        if relay is not None:
            relay.call_soon(lambda: self._after_signal(signum, how))
        else:  # not installed by start(): the handler was set by someone else
            self._after_signal(signum, how)
        pool = self.pool
        if how == COLD and pool is not None and pool.runs_inline and executor and executor.active:
            raise ColdShutdown()

    def _after_signal(self, signum: int, how: str) -> None:
        """The part of a signal that takes locks: say what happens, wake the waiters."""
        name = signal.Signals(signum).name
        if how == COLD:
            logger.warning("worker: Cold shutdown (%s)", name)
        else:
            # Say how to stop waiting: a second signal abandons the running tasks.
            again = "press Ctrl-C again" if signum == signal.SIGINT else f"send {name} again"
            logger.warning(
                "worker: Warm shutdown (%s): running tasks finish first; "
                "%s to stop running tasks (cold shutdown)", name, again,
            )
        self._stop_event.set()

    # -- main ------------------------------------------------------------------------------------
    def start(self) -> int:
        app = self.app
        signals.worker_init.send(sender=self)
        self.pool = create_pool(
            self.pool_name, app, self.concurrency, max_tasks_per_child=self.max_tasks_per_child,
            max_memory_per_child=self.max_memory_per_child,
        )
        self.executor = Executor(app, self.pool, self.hostname)
        if self.install_signal_handlers and threading.current_thread() is threading.main_thread():
            self._relay = SignalRelay()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
            if hasattr(signal, "SIGQUIT"):
                signal.signal(signal.SIGQUIT, self._on_signal)
        if not self._wait_for_services():
            if self._relay is not None:
                self._relay.close()
            return self.exitcode
        self._reclaim_predecessor()
        self.pool.start()
        self.control = ControlListener(self)
        self.control.start()
        self.events.start()
        heartbeat = threading.Thread(target=self._heartbeat, name="celeriac-heartbeat", daemon=True)
        heartbeat.start()
        beat_thread = self._start_beat(self.embed_beat) if self.embed_beat else None
        self._run_hooks(app.middleware.worker_boot)  # the signals middleware: worker_ready
        logger.info("%s ready.", self.hostname)
        try:
            self._loop()
        except ColdShutdown:
            pass
        finally:
            self._stop_event.set()
            self._finish()
            if beat_thread is not None:
                beat_thread.join(timeout=2)
            heartbeat.join(timeout=2)
            self.control.stop()
            self.events.stop()
            self._run_hooks(app.middleware.worker_shutdown)  # signals: worker_shutdown
            if self._relay is not None:
                self._relay.close()
        return self.exitcode

    def _run_hooks(self, hooks: Sequence[Callable[[Any], None]]) -> None:
        for hook in hooks:
            try:
                hook(self)
            except Exception:
                logger.exception("worker: middleware hook %r raised", hook)

    def _wait_for_services(self) -> bool:
        """Block until the broker, and the result backend when one is configured, answer one
        round trip each: the worker reports ready only then. Each failed attempt is logged on
        one line with the delay before the next (1 s, doubling up to 30 s). False when a
        shutdown was asked meanwhile (a signal, or :meth:`stop`)."""
        delay_s, attempt = 1.0, 0
        while not self._stop_event.is_set():
            failure = self._unreachable_service()
            if failure is None:
                if attempt:
                    logger.info("worker: connected after %d failed attempt(s)", attempt)
                return True
            attempt += 1
            logger.error("worker: %s; retrying in %.0f s (attempt %d)", failure, delay_s, attempt)
            self._stop_event.wait(delay_s)
            delay_s = min(delay_s * 2, MAX_CONNECT_DELAY_S)
        return False

    def _unreachable_service(self) -> str | None:
        """What does not answer, as one line naming its URL (password masked); None when
        both do."""
        app = self.app
        try:
            app.broker.queue_size(self.queues[0] if self.queues else app.conf.task_default_queue)
        except Exception as exc:
            return f"cannot reach the broker {mask_url(app.broker_url)}: {_one_line(exc)}"
        backend_url = app.result_backend_url
        if backend_url:
            try:
                app.backend.get_state(READINESS_PROBE_ID)
            except Exception as exc:
                return f"cannot reach the result backend {mask_url(backend_url)}: {_one_line(exc)}"
        return None

    def _reclaim_predecessor(self) -> None:
        """Hold messages under this node's name, and take back at once what a dead earlier
        worker of the same name (``-n``) still held, instead of waiting for its leases to run
        out. Before the first announce: a live presence record means the node is alive."""
        broker = self.app.broker
        broker.bind_node(self.hostname)
        try:
            reclaimed = broker.reclaim_node(
                self.hostname, self.queues,
                lambda: self.app.coordination.is_announced(self.hostname),
            )
        except Exception as exc:  # the leases bring them back anyway
            logger.warning("worker: could not reclaim messages of an earlier %s: %s",
                           self.hostname, exc)
            return
        if reclaimed:
            logger.warning("worker: %d message(s) held by an earlier %s that died are back "
                           "in the queue", reclaimed, self.hostname)

    def _start_beat(self, run: Callable[[Celery, threading.Event], None]) -> threading.Thread:
        thread = threading.Thread(
            target=run,
            args=(self.app, self._stop_event),
            name="celeriac-beat",
            daemon=True,
        )
        thread.start()
        return thread

    def _loop(self) -> None:
        executor = self.executor
        pool = self.pool
        assert executor is not None and pool is not None
        broker = self.app.broker
        autoscaler = self.autoscaler = self._make_autoscaler(pool)
        # Claim again once the reserve falls to refill_at, so claims come in batches.
        window, refill_at = self.prefetch_window()
        adaptive = self.prefetch.adaptive
        idle_polls = 0
        backoff_s = 0.0
        unexpected = 0
        idle_wait_s = 0.02 if self.burst else 1.0
        while self._shutdown is None:
            try:
                reserved, active = executor.reserved, executor.active
                if autoscaler is not None or not self._pool_requests.empty():
                    window, refill_at = self._resize_pool(pool, len(reserved) + len(active))
                held = executor.rate_limits.held_count
                # Jobs a rate limit holds take up to one more window, then they count.
                want = window - len(reserved) - len(active) - max(0, held - window)
                idle = not active and not reserved
                # With jobs held, wake when the next one gets its token.
                wait_s = min(idle_wait_s, executor.rate_limits.next_release_in_s() or 0.0) \
                    if held else idle_wait_s
                deliveries = []
                if want > 0 and len(reserved) <= refill_at:
                    self._consuming = queues = self.queues
                    deliveries = broker.consume(queues, want, wait_s if idle else 0.0)
                    self._consuming = None
                    if deliveries:
                        executor.receive(deliveries)
                executor.dispatch()
                if not self._terminate_requests.empty():
                    self._run_terminate_requests()
                if not self._discard_requests.empty():
                    self._run_discard_requests(executor)
                if not active:
                    finished = []
                    if held and idle and not deliveries and want <= 0:
                        self._stop_event.wait(wait_s)  # nothing to claim or run until then
                elif reserved and pool.free_slots() <= 0:
                    finished = pool.poll(0.05)  # wait for a free slot
                    if not finished and adaptive and self._give_back_behind_long(executor):
                        window, refill_at = self.prefetch_window()
                else:
                    finished = pool.poll(0.0 if deliveries else 0.005)
                if finished:
                    if adaptive and self.prefetch.observe(finished[-1][1].runtime_s):
                        window, refill_at = self.prefetch_window()
                    executor.complete(finished)
                    executor.dispatch()
                # While tasks keep finishing and more wait in reserve, let results and acks pile
                # up a little so they are stored and settled in batches; flush as soon as the
                # stream pauses or the reserve runs dry (never sit on a result while idle).
                if not finished or not reserved or executor.flush_due():
                    executor.flush()
                if backoff_s:
                    logger.warning("worker: connection to the broker restored")
                    backoff_s = 0.0
            except TransportError as exc:
                if not backoff_s:
                    logger.error("worker: lost the broker/backend: %s; reconnecting with backoff",
                                 exc)
                else:
                    logger.debug("worker: still unreachable: %s", exc)
                backoff_s = min(max(backoff_s * 2, 0.25), 5.0)
                self._stop_event.wait(backoff_s)
                continue
            except Exception:
                # Per-message and per-task errors are handled below this loop; what lands here
                # is systemic. Back off and retry a few times, then give up with a non-zero
                # exit so a supervisor restarts the worker (never spin, never hang).
                unexpected += 1
                logger.exception("worker: unexpected error in the main loop (%d of %d)",
                                 unexpected, self.MAX_UNEXPECTED_ERRORS)
                if unexpected >= self.MAX_UNEXPECTED_ERRORS:
                    self.exitcode = EXIT_SOFTWARE
                    self.stop(WARM)
                    break
                self._stop_event.wait(min(self.UNEXPECTED_BACKOFF_S * 2**unexpected, 5.0))
                continue
            unexpected = 0
            if self.burst:
                if deliveries or executor.active or executor.reserved or held:
                    idle_polls = 0
                else:
                    idle_polls += 1
                    if idle_polls >= 2:
                        break
        executor.flush()

    def _finish(self) -> None:
        """Settle everything at shutdown. Warm: reserved messages go back, running tasks
        finish. Cold (a second signal, or SIGQUIT): reserved messages go back, finished
        outcomes are settled, running tasks are abandoned (acks_late ones requeued, early-acked
        ones recorded as lost) and the pool is stopped without waiting."""
        executor, pool = self.executor, self.pool
        if executor is None or pool is None:
            return
        try:
            given_back = executor.requeue_reserved()
            if given_back:
                logger.info("worker: gave %d reserved message(s) back to the queue", given_back)
            while executor.active and self._shutdown != COLD:
                executor.complete(pool.poll(0.1))
                executor.flush()
                if pool.runs_inline and executor.active:
                    # An inline pool runs a job only inside apply(): one still active here
                    # will never report (the loop stopped in the middle of it). Never wait
                    # for it: settle it as abandoned.
                    self._abandon(executor, pool)
            if self._shutdown == COLD:
                self._abandon(executor, pool)
            else:
                pool.stop(wait=True)
                executor.complete(pool.poll(0.0))
            executor.flush()
            executor.confirm_behind()
        except Exception as exc:  # shutdown must finish even if the broker is gone
            logger.error("worker: could not settle messages at shutdown: %s", exc)
        finally:
            try:
                self.app.coordination.withdraw(self.hostname)
            except Exception:
                pass

    @staticmethod
    def _abandon(executor: Executor, pool: Pool) -> None:
        executor.complete(pool.poll(0.0))  # what finished is settled, not run again
        requeued, lost = executor.abandon_active()
        executor.flush()
        if requeued or lost:
            logger.warning(
                "worker: cold shutdown: %d running acks_late task(s) requeued, %d early-acked "
                "running task(s) recorded as lost", requeued, lost)
        pool.stop(wait=False)
        pool.poll(0.0)  # outcomes of the abandoned jobs: ignored

    def _heartbeat(self) -> None:
        """Renew leases and announce the worker every ``heartbeat_interval_s``; in between,
        every ``REVOKE_CHECK_S`` while tasks run, look for terminate requests."""
        executor = self.executor
        assert executor is not None
        broker = self.app.broker
        ttl = self.heartbeat_interval_s * 3
        failing = False
        next_beat = 0.0
        while True:
            now = time.monotonic()
            try:
                if now >= next_beat:
                    next_beat = now + self.heartbeat_interval_s
                    held = executor.held_deliveries()
                    if held:
                        broker.renew(held)
                    self.app.coordination.announce(self.hostname, self.info(), ttl)
                if executor.active:
                    self._check_terminations(executor)
                    if self.prefetch.adaptive and executor.reserved:
                        self._give_back_behind_inline(executor)
                failing = False
            except Exception as exc:
                if not failing:  # one line per outage, not one per beat
                    logger.warning("worker: heartbeat failed: %s", exc)
                failing = True
            wait_s = max(0.0, min(self.REVOKE_CHECK_S, next_beat - time.monotonic()))
            if self._stop_event.wait(wait_s):
                return

    def _check_terminations(self, executor: Executor) -> None:
        """Running tasks revoked with ``terminate=True`` are handed to the pool to stop. The
        solo pool runs tasks in the main thread, so it is asked from here; other pools are
        asked by the main loop (their bookkeeping belongs to it)."""
        running = {job.request["id"]: job for job in list(executor.active.values())}
        self._terminating.intersection_update(running)  # forget tasks that ended
        running = {tid: job for tid, job in running.items() if tid not in self._terminating}
        if not running:
            return
        for task_id, signum in termination_requests(self.app, list(running)).items():
            self._terminating.add(task_id)
            job = running[task_id]
            job.terminate_signum = signum
            if self.pool is not None and self.pool.runs_inline:
                self._terminate(job.id, task_id, job.task_name, signum)
            else:
                self._terminate_requests.put((job.id, task_id, job.task_name, signum))

    def _terminate(self, job_id: int, task_id: str, name: str, signum: int) -> None:
        pool = self.pool
        assert pool is not None
        signame = signal.Signals(signum).name
        if pool.terminate(job_id, signum):
            logger.warning("Terminating %s[%s] (%s)", name, task_id, signame)
        else:
            logger.warning("Could not terminate %s[%s] (%s): not running in the %s pool",
                           name, task_id, signame, pool.name)

    def _run_discard_requests(self, executor: Executor) -> None:
        ids: set[str] = set()
        while True:
            try:
                ids.update(self._discard_requests.get_nowait())
            except Empty:
                break
        if executor.discard_revoked(ids):
            executor.flush()

    def _run_terminate_requests(self) -> None:
        while True:
            try:
                request = self._terminate_requests.get_nowait()
            except Empty:
                return
            self._terminate(*request)

    # -- pool size --------------------------------------------------------------------------------
    def pool_grow(self, n: int) -> str:
        """Remote control ``pool_grow`` (any thread): the main loop adds ``n`` processes
        (threads) at its next turn; with autoscale on, through the autoscaler, raising its
        maximum if need be. ValueError with a one-line reason when it cannot."""
        self._check_resize("grow", n)
        self._pool_requests.put(("grow", n, 0))
        return "pool will grow"

    def pool_shrink(self, n: int) -> str:
        """Remote control ``pool_shrink`` (any thread): the main loop removes ``n`` processes
        (never the last one), idle ones first, busy ones after their task."""
        self._check_resize("shrink", n)
        self._pool_requests.put(("shrink", n, 0))
        return "pool will shrink"

    def autoscale(self, max: int, min: int) -> str:
        """Remote control ``autoscale`` (any thread): new autoscaler bounds, applied by the
        main loop at its next turn. Needs a worker started with autoscale."""
        if self.autoscale_limits is None:
            raise ValueError("autoscale is not enabled on this worker (start it with "
                             "--autoscale=MAX,MIN)")
        high, low = autoscale_bounds(max, min)
        if (high, low) != (max, min):
            raise ValueError(f"the autoscale maximum ({max!r}) is below the minimum ({min!r})")
        self._pool_requests.put(("autoscale", high, low))
        return f"autoscale now max={high!r} min={low!r}"

    def _check_resize(self, verb: str, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"the pool can {verb} by a whole number of at least 1, got {n!r}")
        cls = type(self.pool) if self.pool is not None else pool_class(self.pool_name)
        if cls.fixed_size is not None:
            raise ValueError(cls.resize_error(verb))

    def _autoscale_limits(self, autoscale: tuple[int, int] | None) -> tuple[int, int] | None:
        if autoscale is None:
            return None
        try:
            bounds = autoscale_bounds(*autoscale)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"autoscale={autoscale!r}: {exc}") from None
        cls = pool_class(self.pool_name)
        if cls.fixed_size is not None:
            raise ImproperlyConfigured(f"autoscale needs the prefork or threads pool: "
                                       f"{cls.resize_error('grow')}")
        return bounds

    def _make_autoscaler(self, pool: Pool) -> Autoscaler | None:
        if self.autoscale_limits is None:
            return None
        cls = symbol_by_name(self.app.conf.worker_autoscaler or
                             "celeriac.worker.autoscale:Autoscaler")
        high, low = self.autoscale_limits
        scaler: Autoscaler = cls(pool, high, low, worker=self)
        return scaler

    def prefetch_window(self) -> tuple[int, int]:
        """``(window, refill_at)``: the most messages held (reserved + running) and the reserve
        size at which to claim more. Sized from the pool, or from the autoscaler's maximum
        (Celery's prefetch count with autoscale), so tasks wait for the pool to grow into;
        the multiplier is :attr:`prefetch`'s (fixed, or adaptive: :mod:`.prefetch`)."""
        autoscaler = self.autoscaler
        slots = autoscaler.max_concurrency if autoscaler is not None else self.concurrency
        window = self.prefetch.window(slots)
        return window, max(self.concurrency, window // 2)

    def _give_back_behind_long(self, executor: Executor) -> bool:
        """Main loop, a pool whose tasks run outside it, every slot busy and messages in
        reserve: give the reserve back when every running task is long (prefetch rule 2).
        True when it did (the window is then one per slot)."""
        active = executor.active
        if self._shutdown is not None or not active or not executor.reserved:
            return False
        youngest_s = max(job.started_s for job in active.values())
        if not self.prefetch.hold_back(time.monotonic(), youngest_s):
            return False
        self._log_given_back(executor.give_back_reserved())
        return True

    def _give_back_behind_inline(self, executor: Executor) -> None:
        """Heartbeat thread, while a task runs: the same rule for the solo pool, whose task
        holds the main thread. The pool keeps that task from ending meanwhile, so the main
        thread cannot touch the reserve while it is given back."""
        while_running = getattr(self.pool, "while_running", None)
        if while_running is None or self._shutdown is not None:
            return

        def give_back(job: Any) -> None:
            if executor.reserved and self.prefetch.hold_back(time.monotonic(), job.started_s):
                self._log_given_back(executor.give_back_reserved())

        while_running(give_back)

    def _log_given_back(self, count: int) -> None:
        if count:
            logger.info("worker: gave %d reserved message(s) back to the queue: every pool "
                        "slot runs a task that started over %.2f s ago", count,
                        LONG_TASK_S)

    def _resize_pool(self, pool: Pool, held: int) -> tuple[int, int]:
        """The main loop's turn at the pool's size: queued remote-control requests, then the
        autoscaler. Keeps :attr:`concurrency` equal to the pool's size."""
        autoscaler = self.autoscaler
        while True:
            try:
                what, a, b = self._pool_requests.get_nowait()
            except Empty:
                break
            try:
                if what == "autoscale" and autoscaler is not None:
                    autoscaler.update(a, b)
                elif what == "grow":
                    autoscaler.force_scale_up(a) if autoscaler else pool.grow(a)
                elif what == "shrink":
                    autoscaler.force_scale_down(a) if autoscaler else pool.shrink(a)
            except NotImplementedError as exc:
                logger.warning("worker: %s", exc)
        if autoscaler is not None:
            autoscaler.maybe_scale(held)
        pool.maintain()
        self.concurrency = pool.limit
        return self.prefetch_window()

    def info(self) -> dict[str, Any]:
        """The presence record announced to the coordination store (crash recovery asks
        whether a node is announced; ``inspect`` asks the worker itself, see
        :mod:`celeriac.worker.control`)."""
        return {
            "hostname": self.hostname,
            "pid": os.getpid(),
            "queues": self.queues,
            "started": self.started_at,
        }
