"""From delivered message to stored result: the one place that decides when to ack.

Ack timing (Celery's): by default a message is acked when its task starts; with
``acks_late`` it is acked after the task finished and its result is stored. A message whose
task process died is requeued when ``reject_on_worker_lost`` is set (acks_late only),
otherwise acked and marked FAILURE with WorkerLostError. Results are stored in batches,
always before the acks that depend on them.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import signals, states, workflow
from celeriac._utils.text import saferepr
from celeriac.exceptions import (
    InvalidTaskError,
    NotRegistered,
    SerializationError,
    TaskRevokedError,
    WorkerLostError,
)
from celeriac.message import Delivery, Envelope
from celeriac.protocol import TaskMessage, decode_task_message
from celeriac.result_meta import build_meta
from celeriac.task import Context
from celeriac.trace import Outcome
from celeriac.worker.pools.base import Job, Pool
from celeriac.worker.pools.prefork import failure_outcome

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
        conf = app.conf
        self.accept = app.accept_content
        self.default_acks_late = bool(conf.task_acks_late)
        self.early_ack_batch = max(1, int(conf.get("worker_early_ack_batch") or 1))
        self.default_reject_on_lost = bool(conf.task_reject_on_worker_lost)
        self.default_time_limit = conf.task_time_limit
        self.default_soft_time_limit = conf.task_soft_time_limit
        self.acks_on_failure = bool(conf.task_acks_on_failure_or_timeout)
        self.result_expires_s = app.result_expires_s
        self._ids = itertools.count(1)
        #: jobs decoded and waiting for a free pool slot (their messages are not acked yet)
        self.reserved: deque[Job] = deque()
        #: jobs handed to the pool
        self.active: dict[int, Job] = {}
        self._to_store: list[tuple[str, str, bytes]] = []
        self._to_ack: list[Delivery] = []
        self._to_requeue: list[Delivery] = []
        self._to_reject: list[tuple[Delivery, str]] = []
        self._pending_since = time.monotonic()
        #: a finished acks_late task waits in _to_store/_to_ack (flush at once)
        self._late_pending = False
        self.processed = 0
        #: messages rejected because they are malformed or name no registered task
        self.rejected_messages = 0
        #: set on shutdown: start nothing new (reserved messages go back to the queue)
        self.stopping = False
        self.info_enabled = logger.isEnabledFor(logging.INFO)

    # -- intake ---------------------------------------------------------------------------------
    def receive(self, deliveries: Sequence[Delivery]) -> None:
        """Decode a batch, settle the ones that must not run, reserve the rest. A message that
        cannot be read or validated is dead-lettered on its own; the batch goes on."""
        revoked = self.app.coordination.revoked([d.task_id for d in deliveries]) if deliveries \
            else set()
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
            try:
                task = self.app._tasks.get(message.name)
                if task is None:
                    self._unknown_task(delivery, message)
                elif message.id in revoked:
                    self._revoked(delivery, message, "revoked")
                elif message.expires_s is not None and message.expires_s < now:
                    self._revoked(delivery, message, "expired")
                else:
                    self.reserved.append(self._job(delivery, message, task))
                    if self.info_enabled:
                        logger.info("Task %s[%s] received", message.name, message.id)
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
        request = {
            "id": message.id,
            "task": message.name,
            "args": message.args,
            "kwargs": message.kwargs,
            "retries": message.retries,
            "is_eager": False,
            "called_directly": False,
            "eta": message.eta,
            "expires": message.expires,
            "hostname": self.hostname,
            "delivery_info": {
                "exchange": "",
                "routing_key": delivery.queue,
                "priority": message.priority,
                "redelivered": delivery.redelivered,
            },
            "root_id": message.root_id,
            "parent_id": message.parent_id,
            "group": message.group,
            "group_index": message.group_index,
            "callbacks": message.callbacks,
            "errbacks": message.errbacks,
            "chain": message.chain,
            "chord": message.chord,
            "correlation_id": message.correlation_id,
            "reply_to": message.reply_to,
            "origin": message.origin,
            "timelimit": [time_limit, soft_time_limit],
            "ignore_result": message.ignore_result,
            "headers": dict(message.headers),
            "argsrepr": message.argsrepr,
            "kwargsrepr": message.kwargsrepr,
            "shadow": message.shadow,
        }
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

    def _revoked(self, delivery: Delivery, message: TaskMessage, why: str) -> None:
        logger.info("Discarding %s task: %s[%s]", why, message.name, message.id)
        self._fail_record(message.id, TaskRevokedError(why), states.REVOKED)
        workflow.on_revoked(self.app, message, why)  # chains stop, chord counters still count
        signals.task_revoked.send(
            sender=self, request=None, terminated=False, signum=None, expired=why == "expired"
        )
        self._to_ack.append(delivery)

    # -- dispatch ---------------------------------------------------------------------------------
    def dispatch(self) -> int:
        """Hand reserved jobs to the pool while it has free slots; returns how many."""
        started = 0
        pool = self.pool
        reserved = self.reserved
        while reserved and not self.stopping and pool.free_slots() > 0:
            job = reserved.popleft()
            job.started_s = time.monotonic()
            self.active[job.id] = job
            if not job.acks_late and not job.acked and job.delivery is not None:
                # Early ack (Celery's default): the message is settled as its task starts.
                if pool.runs_inline and self.early_ack_batch > 1:
                    self._ack_ahead(job)
                else:
                    self._to_ack.append(job.delivery)
                if pool.runs_inline:
                    # The task runs inside apply(), so settle now (results of the jobs
                    # before it go in the same flush).
                    self.flush()
            try:
                pool.apply(job)
            except Exception as exc:  # a pool must not raise; if it does, the job fails
                logger.exception("worker: pool could not run %s[%s]", job.task_name,
                                 job.request["id"])
                self.complete([(job, self._lost(job, exc))])
            started += 1
        return started

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
        for job, outcome in finished:
            if self.active.pop(job.id, None) is None:
                # Abandoned at cold shutdown: its message was already given back or recorded.
                continue
            self.processed += 1
            self._log_outcome(job, outcome)
            if outcome.state == states.REVOKED and signals.task_revoked._receivers:
                signals.task_revoked.send(
                    sender=self, request=Context(**job.request), terminated=True,
                    signum=job.terminate_signum, expired=False,
                )
            if outcome.ended_outside and outcome.payload is not None and _in_workflow(job):
                self._continue_workflow(job, outcome)
            elif outcome.payload is not None and self.backend is not None:
                self._to_store.append((job.request["id"], outcome.state, outcome.payload))
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

    def _continue_workflow(self, job: Job, outcome: Outcome) -> None:
        """A job of a chain, chord or linked call that ended outside the tracer (its process
        was lost or killed, a hard time limit, a terminate): store its record now and go on
        with the workflow as the tracer would have, so a chain fails its remaining steps and a
        chord counts the member instead of waiting forever."""
        request = Context(**job.request)
        task_id = job.request["id"]
        payload = outcome.payload
        assert payload is not None
        exc = outcome.retval if isinstance(outcome.retval, BaseException) else (
            TaskRevokedError("terminated") if outcome.state == states.REVOKED
            else WorkerLostError(outcome.summary)
        )

        def store() -> None:
            if self.backend is not None:
                self.backend.store(task_id, outcome.state, payload, self.result_expires_s)

        try:
            workflow.continue_after(self.app, request, outcome.state, exc, outcome.traceback,
                                    store=store)
        except Exception:
            logger.exception("Task %s[%s]: cannot settle its workflow", job.task_name, task_id)
            if self.backend is not None:
                self._to_store.append((task_id, outcome.state, payload))

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
        if self._to_requeue or self._to_reject or self._late_pending:
            return True
        pending = len(self._to_store) + len(self._to_ack)
        if not pending:
            return False
        if pending >= self.FLUSH_AT_COUNT:
            return True
        return time.monotonic() - self._pending_since >= self.FLUSH_AFTER_S

    def flush(self) -> None:
        """Store pending results, then settle pending messages (in that order). Whatever a
        failing call did not take stays pending for the next flush (after a reconnect)."""
        self._pending_since = time.monotonic()
        self._late_pending = False
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

    # -- bookkeeping ------------------------------------------------------------------------------
    def held_deliveries(self) -> list[Delivery]:
        """Messages this worker claimed and has not settled (their leases need renewing)."""
        # list() copies in one C call, so the heartbeat thread never sees a half-changed deque
        held = [
            job.delivery
            for job in list(self.reserved)
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

    def active_info(self) -> list[dict[str, Any]]:
        return [
            {
                "id": job.request["id"],
                "name": job.task_name,
                "args": saferepr(job.args, 256),
                "kwargs": saferepr(job.kwargs, 256),
                "hostname": self.hostname,
                "time_start": job.started_s,
                "acknowledged": not job.acks_late,
                "delivery_info": job.request["delivery_info"],
            }
            for job in list(self.active.values())
        ]


def _in_workflow(job: Job) -> bool:
    request = job.request
    return bool(request.get("chain") or request.get("chord") or request.get("callbacks")
                or request.get("errbacks"))
