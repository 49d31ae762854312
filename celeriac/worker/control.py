"""The worker's side of remote control: the commands it answers and the thread that listens.

Requests arrive on the broker's broadcast channel (wire rules: :mod:`celeriac.mailbox`). A
daemon thread, ``celeriac-control``, reads them, runs the named command and broadcasts the
reply, so the main loop never waits on remote control: a command that must change what the
main loop owns (consumed queues, pool size) only hands the change over (see
:class:`celeriac.worker.worker.Worker`), and Celery's replies for those say so ("pool will
grow").

Rules every command follows:

* it is registered here with :func:`command` under Celery's name (and aliases);
* it receives the worker and the request's ``arguments`` as keyword arguments, and returns
  JSON data: Celery's reply shape for that command;
* it reads the executor's collections by copying them first (they belong to the main loop);
* it raises :class:`CommandError` (or ValueError/KeyError/TypeError) for a request it cannot
  serve: the reply is then ``{"error": "<one line>"}`` and nothing else happens.

An unknown command, bad arguments or a malformed message get an error reply when the request
names a reply channel, a log line otherwise; the worker goes on either way.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import resource
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from celeriac import __version__, mailbox
from celeriac._utils.text import saferepr
from celeriac._utils.urls import mask_url
from celeriac.control import REVOKE_EXPIRES_S, signal_name
from celeriac.coordination import LOCAL_FALLBACK_PREFIX
from celeriac.exceptions import TransportError

if TYPE_CHECKING:
    from celeriac.brokers.base import Subscription
    from celeriac.worker.pools.base import Job
    from celeriac.worker.worker import Worker

logger = logging.getLogger("celeriac.worker.control")

__all__ = ["COMMANDS", "Command", "CommandError", "ControlListener", "command", "handle"]


class CommandError(Exception):
    """A control request that cannot be served; its message becomes the error reply."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    handler: Callable[..., Any]
    #: "inspect" (reads state) or "control" (changes it)
    kind: str
    #: the argument names Celery's clients send, in order (for the CLI's positional form)
    args: tuple[str, ...] = ()
    help: str = ""


#: every command a worker answers, by name and alias
COMMANDS: dict[str, Command] = {}


_F = TypeVar("_F", bound=Callable[..., Any])


def command(
    kind: str, *, aliases: Iterable[str] = (), args: Iterable[str] = (), help: str = ""
) -> Callable[[_F], _F]:
    """Register the decorated function as a control command named after it."""

    def register(fn: _F) -> _F:
        cmd = Command(fn.__name__.rstrip("_"), fn, kind, tuple(args), help or (fn.__doc__ or ""))
        COMMANDS[cmd.name] = cmd
        for alias in aliases:
            COMMANDS[alias] = cmd
        return fn

    return register


def handle(worker: Worker, request: mailbox.Request) -> Any:
    """Run ``request`` on ``worker``; the reply (an ``{"error": ...}`` one on failure)."""
    found = COMMANDS.get(request.method)
    if found is None:
        return {"error": f"No such control command: {request.method}"}
    arguments = {k: v for k, v in request.arguments.items() if isinstance(k, str)}
    try:
        return found.handler(worker, **arguments)
    except CommandError as exc:
        return {"error": str(exc)}
    except TypeError as exc:
        return {"error": f"bad arguments for {request.method}: {exc}"}
    except (ValueError, KeyError) as exc:
        return {"error": str(exc).strip("'\"")}
    except Exception as exc:  # a command must never take the listener down
        logger.exception("control: command %s raised", request.method)
        return {"error": f"{type(exc).__name__}: {exc}"}


# -- the listener ------------------------------------------------------------------------------


class ControlListener:
    """The ``celeriac-control`` thread: subscribes before the worker reports ready, answers
    requests until the worker stops, and subscribes again after a broker outage."""

    #: how long one read of the channel waits, in seconds (bounds how late a stop is seen)
    POLL_S = 0.5
    #: longest wait between attempts to subscribe again after an outage
    MAX_BACKOFF_S = 5.0

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.broker = worker.app.broker
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscription: Subscription | None = None
        #: requests read (Celery's ``clock`` answers with it)
        self.clock = 0

    @property
    def available(self) -> bool:
        return self.broker.capabilities.broadcast

    def start(self) -> None:
        if not self.available:
            logger.warning("control: the %s transport has no broadcast: remote control is off",
                           type(self.broker).__name__)
            return
        try:
            self._subscription = self.broker.subscribe(mailbox.CONTROL_CHANNEL)
        except Exception as exc:  # the thread tries again
            logger.warning("control: could not subscribe yet: %s", exc)
        self._thread = threading.Thread(target=self._run, name="celeriac-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and wait for the thread to end (it closes its own subscription: a
        subscription is used by one thread only, and the app may close the broker's
        connections right after). A request addressed to this worker alone wakes the thread
        at once, so shutdown does not wait out a read of the channel."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            self._close()
            return
        if thread is threading.current_thread():
            return
        try:
            wake = mailbox.new_request("ping", destination=[self.worker.hostname])
            self.broker.broadcast(mailbox.CONTROL_CHANNEL, mailbox.encode_request(wake))
        except Exception:  # the broker is gone: the read times out instead
            pass
        thread.join(timeout=self.POLL_S + 1.0)

    def _close(self) -> None:
        sub, self._subscription = self._subscription, None
        if sub is not None:
            try:
                sub.close()
            except Exception:
                pass

    def _run(self) -> None:
        backoff_s = 0.0
        while not self._stop.is_set():
            try:
                if self._subscription is None:
                    self._subscription = self.broker.subscribe(mailbox.CONTROL_CHANNEL)
                    if backoff_s:
                        logger.warning("control: listening again")
                    backoff_s = 0.0
                payloads = self._subscription.get(self.POLL_S)
            except Exception as exc:
                self._close()
                if not backoff_s:
                    logger.warning("control: lost the control channel: %s", exc)
                backoff_s = min(max(backoff_s * 2, 0.25), self.MAX_BACKOFF_S)
                self._stop.wait(backoff_s)
                continue
            for payload in payloads:
                if self._stop.is_set():
                    break
                self.receive(payload)
        self._close()

    def receive(self, payload: bytes) -> None:
        """Answer one request read from the channel (never raises)."""
        try:
            request = mailbox.decode_request(payload)
        except mailbox.BadRequest as exc:
            logger.warning("control: refused a malformed request: %s", exc)
            if exc.reply_to:
                self._reply(exc.reply_to, exc.ticket or "", {"error": str(exc)})
            return
        except Exception as exc:
            logger.warning("control: refused an unreadable request: %r", exc)
            return
        if not request.addressed_to(self.worker.hostname):
            return
        self.clock += 1
        reply = handle(self.worker, request)
        if request.reply_to and reply is not None:
            self._reply(request.reply_to, request.ticket, reply)

    def _reply(self, channel: str, ticket: str, reply: Any) -> None:
        try:
            payload = mailbox.encode_reply(ticket, self.worker.hostname, reply)
            self.broker.broadcast(channel, payload)
        except TransportError as exc:
            logger.warning("control: could not send a reply: %s", exc)
        except Exception:
            logger.exception("control: could not send a reply")


# -- what the commands read ----------------------------------------------------------------------


def _copy(make: Callable[[], list[Job]]) -> list[Job]:
    """A snapshot of a collection the main loop mutates (retried if it changed mid-copy)."""
    for _ in range(5):
        try:
            return make()
        except RuntimeError:
            continue
    return []


def _request_info(worker: Worker, job: Job, started: bool) -> dict[str, Any]:
    """Celery's ``Request.info(safe=True)`` for a job."""
    request = job.request
    return {
        "id": request["id"],
        "name": job.task_name,
        "args": saferepr(job.args, 256),
        "kwargs": saferepr(job.kwargs, 256),
        "type": job.task_name,
        "hostname": worker.hostname,
        "time_start": job.started_at_s if started else None,
        "acknowledged": bool(job.acked or not job.acks_late) if started else False,
        "delivery_info": request.get("delivery_info") or {},
        "worker_pid": None,
    }


def _active(worker: Worker) -> list[Job]:
    executor = worker.executor
    return _copy(lambda: list(executor.active.values())) if executor else []


def _reserved(worker: Worker) -> list[Job]:
    """Jobs waiting for a slot, then those a rate limit holds."""
    executor = worker.executor
    if executor is None:
        return []
    waiting = _copy(lambda: list(executor.reserved))
    limits = getattr(executor, "rate_limits", None)
    return waiting + (limits.held_jobs() if limits is not None else [])


_ATTRIBUTE = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
_CENSORED = re.compile(r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|DATABASE", re.IGNORECASE)
def _censor(key: str, value: Any) -> Any:
    if isinstance(value, str):
        value = mask_url(value)
    if _CENSORED.search(key) and value and not key.endswith("_url") and key != "broker_url":
        return "********"
    return value


def _plain(value: Any) -> Any:
    """``value`` as JSON data (what JSON cannot hold becomes its repr)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return saferepr(value, 200)


def _task(worker: Worker, task_name: Any) -> Any:
    if not isinstance(task_name, str):
        raise CommandError("task_name must be a string")
    task = worker.app._tasks.get(task_name)
    if task is None:
        raise CommandError(f"unknown task {task_name!r}")
    return task


def _count(n: Any) -> int:
    try:
        value = int(n)
    except (TypeError, ValueError):
        raise CommandError(f"not a number: {n!r}") from None
    if value < 1:
        raise CommandError(f"must be at least 1: {n!r}")
    return value


# -- inspect commands ----------------------------------------------------------------------------


@command("inspect")
def ping(worker: Worker) -> dict[str, str]:
    """Answer pong."""
    return {"ok": "pong"}


@command("inspect", aliases=("dump_active",), args=("safe",))
def active(worker: Worker, safe: Any = None) -> list[dict[str, Any]]:
    """The tasks running now."""
    return [_request_info(worker, job, True) for job in _active(worker)]


@command("inspect", aliases=("dump_reserved",), args=("safe",))
def reserved(worker: Worker, safe: Any = None) -> list[dict[str, Any]]:
    """The tasks received and waiting for a free slot."""
    return [_request_info(worker, job, False) for job in _reserved(worker)]


@command("inspect", aliases=("dump_schedule",), args=("safe",))
def scheduled(worker: Worker, safe: Any = None) -> list[dict[str, Any]]:
    """Tasks with an eta the worker holds. celeriac's brokers keep a message with a future
    eta until it is due, so a worker holds none: always an empty list."""
    return []


@command("inspect", aliases=("dump_tasks",), args=("taskinfoitems",))
def registered(worker: Worker, taskinfoitems: Any = None, **kwargs: Any) -> list[str]:
    """The names of the registered tasks, with the attributes named in ``taskinfoitems``."""
    items = [taskinfoitems] if isinstance(taskinfoitems, str) else list(taskinfoitems or ())
    out = []
    for name in sorted(worker.app._tasks.regular()):
        task = worker.app._tasks[name]
        fields = []
        for item in items:
            # public attributes with plain values only (never a method, object or secret)
            if not isinstance(item, str) or not _ATTRIBUTE.match(item):
                continue
            value = getattr(task, item, None)
            if isinstance(value, (str, int, float, bool)):
                fields.append(f"{item}={value}")
        out.append(f"{name} [{' '.join(fields)}]" if fields else name)
    return out


@command("inspect", aliases=("dump_revoked",))
def revoked(worker: Worker) -> list[str]:
    """The task ids this worker saw revoked (by a request to it, or in a message it
    discarded); every revoke is also kept by the coordination store for all workers."""
    return list(worker.revoked_seen)


@command("inspect")
def stats(worker: Worker) -> dict[str, Any]:
    """Celery's worker statistics."""
    executor = worker.executor
    usage = resource.getrusage(resource.RUSAGE_SELF)
    broker_url = worker.app.broker_url
    pool_info = _plain(worker.pool.info()) if worker.pool else {}
    if isinstance(pool_info, dict):
        pool_info.setdefault("max-concurrency", worker.concurrency)
        pool_info.setdefault("processes", [os.getpid()])
        pool_info.setdefault("timeouts", [worker.app.conf.task_soft_time_limit or 0,
                                          worker.app.conf.task_time_limit or 0])
    stats_info: dict[str, Any] = {
        "broker": {
            "transport": broker_url.split("://", 1)[0],
            "hostname": mask_url(broker_url),
        },
        "clock": str(worker.control.clock if worker.control else 0),
        "pid": os.getpid(),
        "pool": pool_info,
        "prefetch_count": worker.prefetch_window()[0],
        "rusage": {
            "utime": usage.ru_utime, "stime": usage.ru_stime, "maxrss": usage.ru_maxrss,
            "minflt": usage.ru_minflt, "majflt": usage.ru_majflt, "nvcsw": usage.ru_nvcsw,
            "nivcsw": usage.ru_nivcsw, "inblock": usage.ru_inblock, "oublock": usage.ru_oublock,
        },
        "total": dict(executor.totals) if executor else {},
        "uptime": int(time.time() - worker.started_at),
    }
    autoscaler = getattr(worker, "autoscaler", None)
    if autoscaler is not None:
        stats_info["autoscaler"] = _plain(autoscaler.info())
    return stats_info


@command("inspect")
def active_queues(worker: Worker) -> list[dict[str, Any]]:
    """The queues this worker consumes, in Celery's shape."""
    return [
        {
            "name": name, "exchange": {"name": name, "type": "direct", "durable": True,
                                       "auto_delete": False, "arguments": None},
            "routing_key": name, "queue_arguments": None, "binding_arguments": None,
            "consumer_arguments": None, "durable": True, "exclusive": False,
            "auto_delete": False, "no_ack": False, "alias": None, "bindings": [],
            "no_declare": None, "expires": None, "message_ttl": None, "max_length": None,
            "max_length_bytes": None, "max_priority": None,
        }
        for name in list(worker.queues)
    ]


@command("inspect", args=("with_defaults",))
def conf(worker: Worker, with_defaults: Any = False, **kwargs: Any) -> dict[str, Any]:
    """The worker's settings (only those changed from the defaults unless
    ``with_defaults``); secrets and URL passwords are masked."""
    settings = worker.app.conf
    values = dict(settings) if with_defaults else settings.changes()
    return {name: _plain(_censor(name, values[name])) for name in sorted(values)}


@command("inspect", args=("ids",))
def query_task(worker: Worker, ids: Any = (), *more: Any) -> dict[str, Any]:
    """Where the tasks ``ids`` are on this worker: ``{id: [state, info]}`` with state
    ``"active"`` or ``"reserved"``."""
    wanted = {ids} if isinstance(ids, str) else {str(i) for i in ids or ()}
    found: dict[str, Any] = {}
    for state, jobs, started in (("active", _active(worker), True),
                                 ("reserved", _reserved(worker), False)):
        for job in jobs:
            if job.request["id"] in wanted:
                found[job.request["id"]] = [state, _request_info(worker, job, started)]
    return found


@command("inspect")
def clock(worker: Worker) -> dict[str, int]:
    """The worker's logical clock (requests read)."""
    return {"clock": worker.control.clock if worker.control else 0}


@command("inspect")
def report(worker: Worker) -> dict[str, str]:
    """A short text about the worker's software and platform."""
    lines = [
        f"software -> celeriac:{__version__} python:{platform.python_version()}",
        f"platform -> system:{platform.system()} arch:{platform.machine()} "
        f"imp:{platform.python_implementation()}",
        f"loader -> {type(worker.app).__module__}",
        f"pool -> {worker.pool_name} x{worker.concurrency}",
        f"broker -> {mask_url(worker.app.broker_url)}",
        f"pid -> {os.getpid()} executable -> {sys.executable}",
    ]
    return {"ok": "\n".join(lines)}


# -- control commands ----------------------------------------------------------------------------


@command("control", args=("task_id", "terminate", "signal"))
def revoke(worker: Worker, task_id: Any, terminate: Any = False, signal: Any = None,
           **kwargs: Any) -> dict[str, str]:
    """Revoke tasks: never run them here; ``terminate`` stops the running ones with
    ``signal`` (SIGTERM by default)."""
    ids = [task_id] if isinstance(task_id, str) else [str(t) for t in task_id or ()]
    if not ids:
        raise CommandError("revoke needs a task id")
    signum = _signum(signal) if terminate else None
    store = worker.app.coordination
    if store.url.startswith(LOCAL_FALLBACK_PREFIX):
        # No shared store (e.g. amqp + rpc): this request is the only way the revoke reaches
        # this worker, so it is kept where intake looks, or a task still queued would run.
        store.revoke(ids, REVOKE_EXPIRES_S)
    worker.revoke_local(ids, signum)
    return {"ok": f"tasks {', '.join(ids)} flagged as revoked"}


def _signum(value: Any) -> int:
    name = signal_name(value)  # ValueError for a signal terminate does not send
    return int(getattr(signal, name))


@command("control", args=("signal", "task_id"))
def terminate(worker: Worker, signal: Any = None, task_id: Any = None) -> dict[str, str]:
    """Revoke and stop running tasks with ``signal``."""
    return revoke(worker, task_id, terminate=True, signal=signal)


@command("control", args=("task_name", "rate_limit"))
def rate_limit(worker: Worker, task_name: Any, rate_limit: Any = None, **kwargs: Any
               ) -> dict[str, str]:
    """Change a task type's rate limit on this worker ("10/s", "100/m", "1000/h", None)."""
    task = _task(worker, task_name)
    limits = getattr(worker.executor, "rate_limits", None)
    if limits is None:
        raise CommandError("this worker does not enforce rate limits")
    limits.set(task.name, rate_limit)
    if not rate_limit or rate_limit in ("0", 0):
        return {"ok": "rate limit disabled successfully"}
    return {"ok": "new rate limit set successfully"}


@command("control", args=("task_name", "soft", "hard"))
def time_limit(worker: Worker, task_name: Any, soft: Any = None, hard: Any = None,
               **kwargs: Any) -> dict[str, str]:
    """Change a task type's soft and hard time limits (seconds) for tasks started from now."""
    task = _task(worker, task_name)
    try:
        soft_s = None if soft is None else float(soft)
        hard_s = None if hard is None else float(hard)
    except (TypeError, ValueError):
        raise CommandError(f"time limits must be numbers: {soft!r}, {hard!r}") from None
    task.soft_time_limit = soft_s
    task.time_limit = hard_s
    return {"ok": "time limits set successfully"}


@command("control", args=("queue", "exchange", "exchange_type", "routing_key"))
def add_consumer(worker: Worker, queue: Any, exchange: Any = None, exchange_type: Any = None,
                 routing_key: Any = None, **options: Any) -> dict[str, str]:
    """Start consuming from ``queue``."""
    if not isinstance(queue, str) or not queue:
        raise CommandError("queue must be a non-empty string")
    if queue in worker.queues:
        return {"ok": f"already consuming from {queue!r}"}
    worker.add_queue(queue)
    return {"ok": f"add consumer {queue}"}


@command("control", args=("queue",))
def cancel_consumer(worker: Worker, queue: Any, **kwargs: Any) -> dict[str, str]:
    """Stop consuming from ``queue``."""
    if not isinstance(queue, str) or queue not in worker.queues:
        raise CommandError(f"not consuming from {queue!r}")
    if len(worker.queues) == 1:
        raise CommandError(f"{queue!r} is the only queue this worker consumes")
    worker.remove_queue(queue)
    return {"ok": f"no longer consuming from {queue}"}


def _resize(worker: Worker, method: str, *args: Any) -> dict[str, str]:
    fn = getattr(worker, method, None)
    if fn is None:
        raise CommandError(f"{method} is not supported by this worker")
    return {"ok": str(fn(*args))}


@command("control", args=("n",))
def pool_grow(worker: Worker, n: Any = 1, **kwargs: Any) -> dict[str, str]:
    """Add ``n`` processes (threads) to the pool."""
    return _resize(worker, "pool_grow", _count(n))


@command("control", args=("n",))
def pool_shrink(worker: Worker, n: Any = 1, **kwargs: Any) -> dict[str, str]:
    """Remove ``n`` processes (threads) from the pool."""
    return _resize(worker, "pool_shrink", _count(n))


@command("control", args=("max", "min"))
def autoscale(worker: Worker, max: Any = None, min: Any = None, **kwargs: Any
              ) -> dict[str, str]:
    """Change the autoscaler's bounds."""
    return _resize(worker, "autoscale", _count(max), 0 if min in (None, 0, "0") else _count(min))


@command("control")
def shutdown(worker: Worker, msg: Any = None, **kwargs: Any) -> dict[str, str]:
    """Warm shutdown: running tasks finish, reserved ones go back to the queue."""
    logger.warning("worker: shutdown requested by remote control")
    worker.request_shutdown()
    return {"ok": "shutdown"}


def _events(worker: Worker) -> Any:
    events = getattr(worker, "events", None)
    if events is None:
        raise CommandError("this worker cannot send events")
    return events


@command("control")
def enable_events(worker: Worker) -> dict[str, str]:
    """Start sending task events."""
    events = _events(worker)
    if events.enabled:
        return {"ok": "task events already enabled"}
    events.enable()
    return {"ok": "task events enabled"}


@command("control")
def disable_events(worker: Worker) -> dict[str, str]:
    """Stop sending task events."""
    events = _events(worker)
    if not events.enabled:
        return {"ok": "task events already disabled"}
    events.disable()
    return {"ok": "task events disabled"}


@command("control")
def heartbeat(worker: Worker) -> dict[str, str]:
    """Send a worker-heartbeat event now (when events are on)."""
    _events(worker).heartbeat()
    return {"ok": "heartbeat sent"}


@command("control", args=("id", "topic", "action"))
def election(worker: Worker, id: Any = None, topic: Any = None, action: Any = None,
             **kwargs: Any) -> dict[str, str]:
    """Celery's gossip election. celeriac workers run no gossip (beat's exactly-once and
    revokes go through the coordination store), so the request is acknowledged and ignored."""
    return {"ok": "election ignored: celeriac workers run no gossip"}


@command("inspect", args=("from_node", "revoked"))
def hello(worker: Worker, from_node: Any = None, revoked: Any = None, **kwargs: Any
          ) -> dict[str, Any]:
    """Celery's mingle greeting: answers with the revokes this worker saw and its clock."""
    return {"revoked": list(worker.revoked_seen), "clock": worker.control.clock
            if worker.control else 0}


class RevokedSeen:
    """The ids a worker saw revoked, newest kept (bounded, thread-safe enough: appends and
    copies only)."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, ids: Iterable[str]) -> None:
        with self._lock:
            for task_id in ids:
                self._ids[task_id] = None
                self._ids.move_to_end(task_id)
            while len(self._ids) > self.limit:
                self._ids.popitem(last=False)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._ids

    def __iter__(self) -> Any:
        with self._lock:
            return iter(list(self._ids))

    def __len__(self) -> int:
        return len(self._ids)
