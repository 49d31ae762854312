"""From delivered message to stored result: the one place that decides when to ack.

Ack timing (Celery's): by default a message is acked when its task starts; with
``acks_late`` it is acked after the task finished and its result is stored. A message whose
task process died is requeued when ``reject_on_worker_lost`` is set (acks_late only),
otherwise acked and marked FAILURE with WorkerLostError. Results are stored in batches,
always before the acks that depend on them.

The executor does the I/O the tracer plans: it stores each outcome's record, and performs the
:class:`~celeriac.effects.Effects` the middleware attaches (workflow continuations) in the
same batched flush, in the order :mod:`celeriac.effects` states. It calls the middleware's
worker hooks (``after_receive``, ``after_discard``, ``before_process``, ``after_process``,
``after_settle``); one that raises is logged and changes nothing else.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from celeriac import signals, states, workflow
from celeriac.effects import Effects, Record
from celeriac.exceptions import (
    InvalidTaskError,
    NotRegistered,
    SerializationError,
    TaskRevokedError,
    WorkerLostError,
)
from celeriac.message import Delivery, Envelope
from celeriac.protocol import TaskMessage, decode_task_message, request_fields
from celeriac.result_meta import build_meta
from celeriac.trace import Outcome, failure_outcome
from celeriac.worker.pools.base import Job, Pool
from celeriac.worker.rate_limits import RateLimits

if TYPE_CHECKING:
    from celeriac.app.base import Celery

logger = logging.getLogger("celeriac.worker")

#: characters of a rejection reason written to the log (the rejected record keeps more)
_LOGGED_REASON_MAX_CHARS = 500
#: characters of a task id or name written to the log
_LOGGED_NAME_MAX_CHARS = 200


def _one_line(text: str, limit: int = _LOGGED_NAME_MAX_CHARS) -> str:
    """``text`` cut to ``limit`` characters, on one line (a hostile message must not forge or
    flood log lines)."""
    flat = text.replace("\r", "\\r").replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[:limit] + "..."


class Executor:
    """Turns deliveries into pool jobs and pool outcomes into stored results and acks."""

    def __init__(self, app: Celery, pool: Pool, hostname: str) -> None:
        self.app = app
        self.pool = pool
        self.hostname = hostname
        self.broker = app.broker
        self.backend = app.backend if app.result_backend_url else None
        # Store results and ack in one round trip when broker and backend share a server.
        self._settle = self.broker.settle_with(self.backend) if self.backend else None
        # ... and, before a solo pool's next task, send both without waiting for the reply.
        self._settle_behind = (
            self.broker.settle_behind_with(self.backend) if self.backend else None)
        #: records or acks went write-behind since the last confirmation
        self._behind_sent = False
        #: rpc:// only: tells the backend where each task's records go (its ``reply_to``)
        self._note_reply_to = (
            self.backend.note_reply_to
            if self.backend is not None and self.backend.replies_to_caller else None
        )
        conf = app.conf
        self.accept = app.accept_content
        self.default_acks_late = bool(conf.task_acks_late)
        self.early_ack_batch = max(1, int(conf.get("worker_early_ack_batch") or 1))
        self.default_reject_on_lost = bool(conf.task_reject_on_worker_lost)
        self.default_time_limit = conf.task_time_limit
        self.default_soft_time_limit = conf.task_soft_time_limit
        self.acks_on_failure = bool(conf.task_acks_on_failure_or_timeout)
        #: ``task_track_started`` (the STARTED middleware's default for tasks that do not say)
        self.track_started = bool(conf.task_track_started)
        self.result_expires_s = app.result_expires_s
        self._ids = itertools.count(1)
        #: jobs decoded and waiting for a free pool slot (their messages are not acked yet)
        self.reserved: deque[Job] = deque()
        #: jobs handed to the pool
        self.active: dict[int, Job] = {}
        self.middleware = app.middleware
        self._to_store: list[Record] = []
        #: continuation messages and chord members to count, from outcomes' effects
        self._to_publish: list[tuple[str, Envelope]] = []
        self._chord_parts: list[tuple[str | None, dict[str, Any]]] = []
        #: records that must be stored before the next job starts (STARTED)
        self._start_pending = False
        self._to_ack: list[Delivery] = []
        self._to_requeue: list[Delivery] = []
        self._to_reject: list[tuple[Delivery, str]] = []
        self._pending_since = time.monotonic()
        #: a finished acks_late task waits in _to_store/_to_ack (flush at once)
        self._late_pending = False
        self.processed = 0
        #: tasks finished, by task name (``inspect stats``'s ``total``)
        self.totals: Counter[str] = Counter()
        #: messages rejected because they are malformed or name no registered task
        self.rejected_messages = 0
        #: set on shutdown: start nothing new (reserved messages go back to the queue)
        self.stopping = False
        self.info_enabled = logger.isEnabledFor(logging.INFO)
        #: task rate limits; jobs over their limit wait there (dispatch checks ``active``)
        self.rate_limits = RateLimits(app)

    # -- intake ---------------------------------------------------------------------------------
    def receive(self, deliveries: Sequence[Delivery]) -> None:
        """Decode a batch, settle the ones that must not run, reserve the rest. A message that
        cannot be read or validated is dead-lettered on its own; the batch goes on."""
        revoked = self.app.coordination.revoked([d.task_id for d in deliveries]) if deliveries \
            else set()
        # The stack is looked up once per batch (it changes with the configuration and when a
        # signal gains or loses a receiver); dispatch, complete and flush use this copy.
        self.middleware = middleware = self.app.middleware
        after_receive = middleware.after_receive
        note_reply_to = self._note_reply_to
        now = time.time()
        for delivery in deliveries:
            if delivery.malformed is not None:
                self._bad_message(delivery, InvalidTaskError(delivery.malformed))
                continue
            try:
                message = decode_task_message(delivery.envelope, self.accept)
            except (InvalidTaskError, SerializationError) as exc:
                self._bad_message(delivery, exc)
                continue
            except Exception as exc:  # never let one message kill the worker
                self._bad_message(delivery, InvalidTaskError(f"Cannot decode message: {exc!r}"))
                continue
            if note_reply_to is not None and message.reply_to:
                note_reply_to(message.id, message.reply_to)
            try:
                task = self.app._tasks.get(message.name)
                if task is None:
                    self._unknown_task(delivery, message)
                elif message.id in revoked:
                    self._revoked(delivery, message, "revoked")
                elif message.expires_s is not None and message.expires_s < now:
                    self._revoked(delivery, message, "expired")
                else:
                    job = self._job(delivery, message, task)
                    self.reserved.append(job)
                    if self.info_enabled:
                        logger.info("Task %s[%s] received", message.name, message.id)
                    for hook in after_receive:
                        try:
                            hook(self, job)
                        except Exception:
                            _hook_failed(hook)
            except Exception as exc:  # e.g. a signal receiver that raised
                self._bad_message(delivery, InvalidTaskError(f"Cannot take message: {exc!r}"))

    def _job(self, delivery: Delivery, message: TaskMessage, task: Any) -> Job:
        """The pool job of a validated message; reads the message only through its typed
        fields (protocol.decode_task_message validated them)."""
        acks_late = task.acks_late if task.acks_late is not None else self.default_acks_late
        reject_on_lost = (
            task.reject_on_worker_lost
            if task.reject_on_worker_lost is not None
            else self.default_reject_on_lost
        )
        time_limit, soft_time_limit = message.time_limit_s, message.soft_time_limit_s
        request = request_fields(message, queue=delivery.queue,
                                 redelivered=delivery.redelivered, hostname=self.hostname)
        return Job(
            id=next(self._ids),
            task_name=message.name,
            request=request,
            args=message.args,
            kwargs=message.kwargs,
            time_limit_s=time_limit or task.time_limit or self.default_time_limit,
            soft_time_limit_s=soft_time_limit
            or task.soft_time_limit
            or self.default_soft_time_limit,
            acks_late=acks_late,
            reject_on_worker_lost=reject_on_lost,
            delivery=delivery,
        )

    # -- messages that never run ------------------------------------------------------------------
    def _fail_record(self, task_id: str, exc: BaseException, state: str = states.FAILURE) -> None:
        if self.backend is None or not task_id:
            return
        try:
            meta = build_meta(task_id, state, exc, worker=self.hostname)
            self._to_store.append((task_id, state, self.app.encode_result(meta)))
        except Exception as error:  # the message is settled anyway; only its record is lost
            logger.error("Cannot record %s for task %s: %r", state, _one_line(task_id), error)

    def _bad_message(self, delivery: Delivery, exc: BaseException) -> None:
        """Dead-letter a message that cannot run: stored FAILURE under its id (when it has
        one), rejected with the reason, counted, and logged in one line (no traceback)."""
        self.rejected_messages += 1
        task_id = delivery.task_id
        reason = f"{type(exc).__name__}: {exc}"
        logger.error(
            "Rejected malformed message %s (task %s): %s",
            _one_line(task_id or "<no id>"),
            _one_line(delivery.envelope.task_name or "?"),
            _one_line(reason, _LOGGED_REASON_MAX_CHARS),
        )
        self._fail_record(task_id, exc)
        self._to_reject.append((delivery, reason))

    def _unknown_task(self, delivery: Delivery, message: TaskMessage) -> None:
        logger.error(
            "Received unregistered task of type %r.\nThe message has been ignored and discarded.\n"
            "Did you remember to import the module containing this task?",
            message.name,
        )
        signals.task_unknown.send(
            sender=self, message=message, exc=None, name=message.name, id=message.id
        )
        self.rejected_messages += 1
        self._fail_record(message.id, NotRegistered(message.name))
        self._to_reject.append((delivery, f"NotRegistered: {message.name}"))

    def _revoked(
        self, delivery: Delivery, message: TaskMessage, why: str, acked: bool = False
    ) -> None:
        logger.info("Discarding %s task: %s[%s]", why, message.name, message.id)
        self._fail_record(message.id, TaskRevokedError(why), states.REVOKED)
        if not acked:
            self._to_ack.append(delivery)
        # The continuation middleware stops a chain and counts a chord member here.
        for hook in self.middleware.after_discard:
            self._call_hook(hook, self, message, why)

    # -- dispatch ---------------------------------------------------------------------------------
    def dispatch(self) -> int:
        """Hand reserved jobs to the pool while it has free slots; returns how many. The
        ``before_process`` hooks run first; records they add for before the start (STARTED)
        are stored before the pool gets the jobs."""
        started = 0
        pool = self.pool
        reserved = self.reserved
        taken_back = pool.take_back()
        if taken_back:  # not begun: reserved again, ahead of the rest (acked ones stay acked)
            for job in taken_back:
                self.active.pop(job.id, None)
            reserved.extendleft(reversed(taken_back))
        before_process = self.middleware.before_process
        # Rate limits cost this one check when no task has one.
        gate = self.rate_limits if self.rate_limits.active and not self.stopping else None
        if gate is not None and gate.held_count:
            # Held jobs whose tokens came go first (admit lets them through).
            reserved.extendleft(reversed(gate.release(pool.free_slots())))
        while reserved and not self.stopping:
            free = pool.free_slots()
            if free <= 0:
                break
            batch: list[Job] = []
            flush_first = False
            now, wall_now = time.monotonic(), time.time()
            while reserved and free > 0:
                job = reserved.popleft()
                if job.delivery is not None and not job.acked \
                        and not self.broker.holds(job.delivery):
                    self._given_back(job)
                    continue
                if gate is not None and not gate.admit(job):
                    continue  # over its rate limit: held, its message not acked
                free -= 1
                job.started_s, job.started_at_s = now, wall_now
                self.active[job.id] = job
                if not job.acks_late and not job.acked and job.delivery is not None:
                    # Early ack (Celery's default): the message is settled as its task starts.
                    # Not ahead of jobs a rate limit may hold for long.
                    if pool.runs_inline and self.early_ack_batch > 1 and gate is None:
                        self._ack_ahead(job)
                    else:
                        job.acked = True  # should the pool give it back unstarted
                        self._to_ack.append(job.delivery)
                    # The task runs inside apply(), so settle now (results of the jobs
                    # before it go in the same flush).
                    flush_first = flush_first or pool.runs_inline
                for hook in before_process:
                    try:
                        hook(self, job)
                    except Exception:
                        _hook_failed(hook)
                batch.append(job)
            if self._start_pending:
                self.flush()
            elif flush_first:
                self.flush_before_inline()
            if len(batch) == 1 or pool.runs_inline:
                for job in batch:
                    self._apply(job)
            else:
                try:
                    pool.apply_many(batch)  # a batch per child process: one write each
                except Exception:  # a pool must not raise; if it does, jobs it lost fail
                    logger.exception("worker: pool could not run a batch of %d", len(batch))
                    taken = {job.id for job in pool.running()}
                    for job in batch:
                        if job.id not in taken:
                            self.complete([(job, self._lost(job, RuntimeError("pool failed")))])
            started += len(batch)
        return started

    def _given_back(self, job: Job) -> None:
        """Drop ``job`` unstarted: its claim went with a lost connection and the broker gives
        the message to the next claim (``Broker.holds``), where it runs once."""
        logger.info("Task %s[%s] not started: its message went back with a lost connection",
                    job.task_name, job.request["id"])

    def _apply(self, job: Job) -> None:
        try:
            self.pool.apply(job)
        except Exception as exc:  # a pool must not raise; if it does, the job fails
            logger.exception("worker: pool could not run %s[%s]", job.task_name,
                             job.request["id"])
            self.complete([(job, self._lost(job, exc))])

    def _lost(self, job: Job, exc: BaseException) -> Outcome:
        """A FAILURE outcome for ``job`` whose run ended outside the tracer."""
        return failure_outcome(self.app, job.task_name, job.request, exc, 0.0)

    def _ack_ahead(self, job: Job) -> None:
        """Ack ``job`` and the next early-ack jobs in reserve together (worker_early_ack_batch):
        one round trip for several starts. Should the process die, those acked but not
        started are lost, as an early-acked running task is; warm shutdown re-publishes them."""
        batch = [job]
        for other in self.reserved:
            if len(batch) >= self.early_ack_batch:
                break
            if not other.acks_late and not other.acked and other.delivery is not None:
                batch.append(other)
        for item in batch:
            item.acked = True
            assert item.delivery is not None
            self._to_ack.append(item.delivery)

    # -- outcomes ---------------------------------------------------------------------------------
    def complete(self, finished: Sequence[tuple[Job, Outcome]]) -> None:
        middleware = self.middleware
        after_process, after_lost = middleware.after_process, middleware.after_lost
        for job, outcome in finished:
            if self.active.pop(job.id, None) is None:
                # Abandoned at cold shutdown: its message was already given back or recorded.
                continue
            self.processed += 1
            self.totals[job.task_name] += 1
            self._log_outcome(job, outcome)
            if outcome.payload is not None and self.backend is not None:
                self._to_store.append((job.request["id"], outcome.state, outcome.payload))
            if outcome.effects is not None:  # what middleware planned where the task ran
                self.add_effects(outcome.effects)
            if outcome.ended_outside:
                # No process planned anything for it: the continuation middleware does now.
                for hook in after_lost:
                    try:
                        hook(self, job, outcome)
                    except Exception:
                        _hook_failed(hook)
            for hook in after_process:
                try:
                    hook(self, job, outcome)
                except Exception:
                    _hook_failed(hook)
            delivery = job.delivery
            if delivery is None or not job.acks_late:
                continue
            # A finished acks_late task is settled at the next flush without waiting for a
            # batch: should the worker die now, only the tasks still running run again.
            self._late_pending = True
            if outcome.state == states.REJECTED:
                if outcome.reject_requeue:
                    self._to_requeue.append(delivery)
                else:
                    self._to_reject.append((delivery, "Rejected by task"))
            elif outcome.exc_type == "WorkerLostError":
                if job.reject_on_worker_lost:
                    self._to_requeue.append(delivery)
                else:
                    self._to_ack.append(delivery)
            elif outcome.state == states.FAILURE and not self.acks_on_failure:
                self._to_requeue.append(delivery)
            else:
                self._to_ack.append(delivery)

    # -- what middleware queues ---------------------------------------------------------------
    def add_records(self, records: Sequence[Record], *, before_start: bool = False) -> None:
        """Store ``records`` at the next flush, after the records already queued;
        ``before_start``: before the next job is handed to the pool (STARTED)."""
        if self.backend is None:
            return
        self._to_store.extend(records)
        if before_start:
            self._start_pending = True

    def add_effects(self, effects: Effects) -> None:
        """Perform ``effects`` at the next flush (which comes at once): records stored after
        those already queued, then chord members counted, then messages published, then
        pending acks."""
        if effects.records:
            self.add_records(effects.records)
        self._chord_parts.extend(effects.chord_parts)
        self._to_publish.extend(effects.messages)

    def _call_hook(self, hook: Any, *args: Any) -> None:
        try:
            hook(*args)
        except Exception:
            _hook_failed(hook)

    def _log_outcome(self, job: Job, outcome: Outcome) -> None:
        name, task_id = job.task_name, job.request["id"]
        state = outcome.state
        if state == states.SUCCESS:
            if self.info_enabled:
                logger.info(
                    "Task %s[%s] succeeded in %.4fs: %s",
                    name,
                    task_id,
                    outcome.runtime_s,
                    outcome.summary,
                )
        elif state == states.RETRY:
            logger.info("Task %s[%s] retry: %s", name, task_id, outcome.summary)
        elif state == states.FAILURE:
            logger.error(
                "Task %s[%s] raised unexpected: %s\n%s",
                name,
                task_id,
                outcome.summary,
                outcome.traceback or "",
            )
        elif state == states.REJECTED:
            logger.warning("Task %s[%s] rejected: %s", name, task_id, outcome.summary)
        elif state == states.IGNORED and self.info_enabled:
            logger.info("Task %s[%s] ignored", name, task_id)

    #: flush once this many results/acks are pending, or the oldest waited this long
    FLUSH_AT_COUNT = 128
    FLUSH_AFTER_S = 0.01

    def flush_due(self) -> bool:
        if (self._to_requeue or self._to_reject or self._late_pending or self._to_publish
                or self._chord_parts):
            return True
        pending = len(self._to_store) + len(self._to_ack)
        if not pending:
            return False
        if pending >= self.FLUSH_AT_COUNT:
            return True
        return time.monotonic() - self._pending_since >= self.FLUSH_AFTER_S

    def flush(self) -> None:
        """Store pending results, then settle pending messages (in that order). Whatever a
        failing call did not take stays pending for the next flush (after a reconnect).

        Results of finished tasks with only early acks to go with them (no acks_late
        message, no STARTED record) are sent write-behind when the broker or backend can
        (nothing waits on their confirmation: an early-acked message is not coming back);
        an acks_late message is settled with its result and waited for, as before."""
        self._pending_since = time.monotonic()
        waited_for = self._late_pending or self._start_pending
        self._late_pending = False
        self._start_pending = False
        after_settle = self.middleware.after_settle
        if after_settle:
            stored, acked = len(self._to_store), len(self._to_ack)
        if self._to_publish or self._chord_parts:
            self._perform_effects()
        if not waited_for and (self._to_store or self._to_ack) and self._can_send_behind():
            self._send_behind()
        if self._settle is not None and (self._to_store or self._to_ack):
            self._settle(self._to_store, self.result_expires_s, self._to_ack)
            self._to_store, self._to_ack = [], []
        if self._to_store:
            assert self.backend is not None
            self.backend.store_many(self._to_store, self.result_expires_s)
            self._to_store = []
        if self._to_ack:
            self.broker.ack(self._to_ack)
            self._to_ack = []
        if self._to_requeue:
            self.broker.requeue(self._to_requeue)
            self._to_requeue = []
        if self._to_reject:
            by_reason: dict[str, list[Delivery]] = {}
            for delivery, reason in self._to_reject:
                by_reason.setdefault(reason, []).append(delivery)
            for reason, group in by_reason.items():
                self.broker.reject(group, reason)
            self._to_reject = []
        if after_settle and (stored or acked):
            for hook in after_settle:
                self._call_hook(hook, self, stored, acked)

    def flush_before_inline(self) -> None:
        """Before a task runs in the worker's own process (solo pool), send what a task that
        kills the process must not lose: the results of the tasks before it and its own early
        ack. They need only leave the process, so with a broker or backend that can send
        ahead this waits for no reply; anything else pending takes a full :meth:`flush`."""
        if (self._to_publish or self._chord_parts or self._late_pending or self._to_requeue
                or self._to_reject or self.middleware.after_settle):
            self.flush()
            return
        if not self._to_store and not self._to_ack:
            return
        if not self._can_send_behind():
            self.flush()  # one transaction (SQLite, PostgreSQL) is the cheapest way out
            return
        self._pending_since = time.monotonic()
        self._send_behind()

    def _can_send_behind(self) -> bool:
        """Whether pending records and early acks can go write-behind: a broker that settles
        both in one write-behind packet, or no shared transaction to lose."""
        return self._settle_behind is not None or self._settle is None

    def _send_behind(self) -> None:
        """Send the pending records and (early) acks without waiting for replies."""
        items, acks = self._to_store, self._to_ack
        self._to_store, self._to_ack = [], []
        self._behind_sent = True
        try:
            if self._settle_behind is not None:
                self._settle_behind(items, self.result_expires_s, acks)
            else:
                if items:
                    assert self.backend is not None
                    self.backend.store_many_behind(items, self.result_expires_s)
                    items = []
                self.broker.ack(acks)
        except BaseException:
            # Nothing is dropped: what did not leave stays pending (the sends are idempotent).
            self._to_store[:0], self._to_ack[:0] = items, acks
            raise

    def confirm_behind(self) -> None:
        """Wait until what went write-behind since the last call has been applied (before
        a continuation may read it, and at shutdown)."""
        if self._behind_sent:
            self.broker.confirm_behind()
            if self.backend is not None:
                self.backend.confirm_behind()
            self._behind_sent = False

    def _perform_effects(self) -> None:
        """Store what is queued (the results continuations follow), count chord members
        (each counted once: a part leaves the queue before it is counted), publish. Records
        sent write-behind earlier are confirmed first: a chord body or the next link may read
        any result stored before it."""
        backend = self.backend
        self.confirm_behind()
        if self._to_store:
            assert backend is not None
            backend.store_many(self._to_store, self.result_expires_s)
            self._to_store = []
        while self._chord_parts:
            parts, self._chord_parts = self._chord_parts, []
            if backend is None:
                logger.error("Chord members finished but no result backend is configured: "
                             "%d chord bodies will not run", len(parts))
                break
            released = workflow.count_chord_parts(self.app, parts)
            if released.records:
                backend.store_many(released.records, self.result_expires_s)
            self._to_publish.extend(released.messages)
            self._chord_parts.extend(released.chord_parts)
        if self._to_publish:
            messages = self._to_publish
            middleware = self.middleware
            for queue, envelope in messages:
                for hook in middleware.before_publish:
                    self._call_hook(hook, self.app, queue, envelope)
            self.broker.publish_many(messages)
            self._to_publish = []
            for queue, envelope in messages:
                for hook in middleware.after_publish:
                    self._call_hook(hook, self.app, queue, envelope)

    # -- bookkeeping ------------------------------------------------------------------------------
    def held_deliveries(self) -> list[Delivery]:
        """Messages this worker claimed and has not settled (their leases need renewing)."""
        # list() copies in one C call, so the heartbeat thread never sees a half-changed deque
        held = [
            job.delivery
            for job in list(self.reserved) + self.rate_limits.held_jobs()
            if job.delivery is not None and not job.acked
        ]
        held.extend(
            job.delivery
            for job in list(self.active.values())
            if job.delivery is not None and job.acks_late
        )
        return held

    def requeue_reserved(self) -> int:
        """Give back every message that has not started (warm shutdown)."""
        held: list[Delivery] = []
        acked: list[tuple[str, Envelope]] = []
        self.reserved.extend(self.rate_limits.take_held())
        for job in self.reserved:
            if job.delivery is None:
                continue
            if job.acked:
                # Acked ahead, so gone from the broker: publish it again.
                acked.append((job.delivery.queue, job.delivery.envelope))
            else:
                held.append(job.delivery)
        self.reserved.clear()
        if held:
            self.broker.requeue(held)
        if acked:
            self.broker.publish_many(acked)
        return len(held) + len(acked)

    def abandon_active(self) -> tuple[int, int]:
        """Cold shutdown: stop waiting for the tasks still running. Their acks_late messages go
        back to the queue (they run again elsewhere); early-acked ones, whose messages are gone,
        are recorded FAILURE with WorkerLostError so nobody waits for them forever. Outcomes
        the pool reports later for these jobs are ignored (see :meth:`complete`). Returns
        (requeued, lost)."""
        give_back: list[Delivery] = []
        lost = 0
        for job in list(self.active.values()):
            if job.delivery is not None and job.acks_late:
                give_back.append(job.delivery)
                continue
            lost += 1
            exc = WorkerLostError(
                f"Worker exited prematurely: cold shutdown while {job.task_name}"
                f"[{job.request['id']}] was running."
            )
            # As any outcome: stored, logged, and its workflow (chain, chord) continued.
            self.complete([(job, self._lost(job, exc))])
        self.active.clear()
        self._to_requeue.extend(give_back)
        return len(give_back), lost

    def discard_revoked(self, task_ids: Collection[str]) -> int:
        """Drop the reserved jobs among ``task_ids`` (revoked after they were received):
        settled as at receive, REVOKED stored and the message acked (one acked ahead is
        not acked again). Main loop only. Returns how many."""
        # Jobs a rate limit holds are reserved too.
        self.reserved.extend(self.rate_limits.remove(task_ids))
        keep: deque[Job] = deque()
        dropped = 0
        for job in self.reserved:
            delivery = job.delivery
            if job.request["id"] not in task_ids or delivery is None:
                keep.append(job)
                continue
            dropped += 1
            try:
                message = decode_task_message(delivery.envelope, self.accept)
            except Exception:  # it was read once; keep the job rather than lose it
                keep.append(job)
                continue
            self._revoked(delivery, message, "revoked", acked=job.acked)
        if dropped:
            self.reserved.clear()
            self.reserved.extend(keep)
        return dropped

    def give_back_reserved(self) -> int:
        """Give the messages waiting in reserve back to the broker so any worker can take them
        now (adaptive prefetch: they wait behind tasks that run long); one acked ahead is
        published again. Jobs a rate limit holds stay. The broker calls come first: should one
        fail, the jobs stay reserved and run here later. The caller makes sure nothing else
        touches the reserve meanwhile (the main loop, or the solo pool holding its task).
        Returns how many went back."""
        jobs = [job for job in self.reserved if job.delivery is not None]
        held = [job.delivery for job in jobs if job.delivery is not None and not job.acked]
        acked = [(job.delivery.queue, job.delivery.envelope)
                 for job in jobs if job.delivery is not None and job.acked]
        if held:
            self.broker.requeue(held)
        if acked:
            self.broker.publish_many(acked)
        if jobs:
            keep = [job for job in self.reserved if job.delivery is None]
            self.reserved.clear()
            self.reserved.extend(keep)
        return len(jobs)


def _hook_failed(hook: Any) -> None:
    """Log the middleware hook that just raised (called from its ``except``)."""
    logger.exception("worker: middleware hook %s raised", _hook_name(hook))


def _hook_name(hook: Any) -> str:
    owner = getattr(hook, "__self__", None)
    name = getattr(hook, "__name__", repr(hook))
    return f"{type(owner).__name__}.{name}" if owner is not None else name
