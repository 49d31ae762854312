"""Configuration: every setting celeriac knows, its defaults, and the ``Settings`` mapping.

Celery 4 renamed its settings from ``UPPER_CASE`` (``CELERY_TASK_SERIALIZER``) to
``lower_case`` (``task_serializer``) and still reads both.  celeriac does the same:

* :data:`SETTINGS` maps every new (lowercase) name to its :class:`Setting`: default, old
  uppercase names, value type and a one-line description.
* :data:`OLD_TO_NEW` maps every old uppercase name to the new name.
* :class:`Settings` is the mapping an app's ``conf`` is made of.  Any spelling reads and
  writes the same value, keys and attribute access both work, and unknown names are kept
  (users keep their own values there) with a warning when they look like a typo.
* :func:`read_object` and :func:`load_source` implement what ``config_from_object``
  needs (modules, classes, objects, mappings, ``'pkg.module:attr'`` strings and Django's
  ``namespace='CELERY'`` style); :func:`coerce` turns text from the environment or the
  command line into a setting's type.

Besides the old names, the Django-style spelling ``CELERY_`` + the upper-cased new name
(``CELERY_BROKER_URL``) is understood everywhere, not only with ``namespace='CELERY'``.
Unlike Celery, mixing old and new names in one configuration is allowed; when one source
gives both spellings of a setting, the new spelling wins.
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib
import json
import linecache
import os
import re
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from celeriac._utils.text import closest
from celeriac.exceptions import (
    ImproperlyConfigured,
    SettingNotImplementedWarning,
    UnknownSettingWarning,
)

__all__ = [
    "OLD_TO_NEW",
    "SECTIONS",
    "SETTINGS",
    "STATUSES",
    "Setting",
    "Settings",
    "Status",
    "canonical_name",
    "closest_setting",
    "coerce",
    "load_source",
    "read_object",
]

#: The value types a :class:`Setting` may declare (used by :func:`coerce` and the docs).
TYPES = frozenset({"str", "int", "float", "bool", "list", "dict", "bytes", "any"})


#: What celeriac does with a setting (:attr:`Setting.status`).
Status = Literal["implemented", "compat", "unsupported"]
STATUSES: tuple[Status, ...] = ("implemented", "compat", "unsupported")


@dataclass(frozen=True)
class Setting:
    """One supported setting.

    ``status`` says what celeriac does with it: ``implemented`` (some code reads it),
    ``compat`` (accepted so Celery configurations load; ``note`` says why no value changes
    anything here) or ``unsupported`` (a value other than the default would change what
    Celery does, and celeriac does not do it yet; ``note`` says so, with the way round if
    there is one).  Giving an unsupported setting a value other than its default warns
    (:class:`~celeriac.exceptions.SettingNotImplementedWarning`).
    """

    name: str
    default: Any
    old_names: tuple[str, ...]
    type: str
    doc: str
    status: Status
    note: str = ""

    def fresh_default(self) -> Any:
        """The default value; mutable defaults are copied so no two users share one."""
        if isinstance(self.default, dict | list | set):
            return copy.deepcopy(self.default)
        return self.default

    def ignores(self, value: Any) -> bool:
        """Whether setting ``value`` asks for something celeriac does not do."""
        if self.status != "unsupported":
            return False
        try:
            return bool(value != self.default)
        except Exception:  # a value that cannot be compared is no default
            return True


def _s(
    name: str, default: Any, type_: str, doc: str, *old_names: str, status: Status, note: str = ""
) -> Setting:
    return Setting(
        name=name,
        default=default,
        old_names=old_names,
        type=type_,
        doc=doc,
        status=status,
        note=note,
    )


# Shared notes of settings that have no effect.
_AMQP_ONLY = (
    "AMQP only; celeriac's RabbitMQ transport does not read it (docs/amqp.md lists what it "
    "reads) and the other transports need no such option."
)
_EVENTS_BROADCAST = (
    "Events travel on the broker's broadcast channel `celeriac.events` as JSON; there is no "
    "event exchange or queue to configure."
)


def _backend_option(key: str) -> str:
    return f"Not read yet: put `{key}` in `result_backend_transport_options`."


def _no_backend(kind: str) -> str:
    return f"celeriac has no {kind} result backend yet."


_LOG_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
_TASK_LOG_FORMAT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"
)


def _daemon_options(program: str) -> tuple[Setting, ...]:
    """``<program>_logfile`` ... : defaults for the daemon options of ``celeriac <program>``."""
    if program == "events":
        no_command = "`celeriac events --dump` prints to stdout and writes no pid file."
        file_status: Status = "compat"
        logfile_note = pidfile_note = no_command
    else:
        file_status = "unsupported"
        logfile_note = f"Not read: use `celeriac {program} --logfile`."
        pidfile_note = f"Not read: use `celeriac {program} --pidfile`."
    no_daemon = f"`celeriac {program}` does not daemonize or drop privileges."
    return (
        _s(
            f"{program}_logfile",
            None,
            "str",
            f"Log file of `{program}` (default: stderr).",
            status=file_status,
            note=logfile_note,
        ),
        _s(
            f"{program}_pidfile",
            None,
            "str",
            f"PID file `{program}` writes (default: none).",
            status=file_status,
            note=pidfile_note,
        ),
        _s(
            f"{program}_uid",
            None,
            "str",
            f"User `{program}` drops privileges to.",
            status="unsupported",
            note=no_daemon,
        ),
        _s(
            f"{program}_gid",
            None,
            "str",
            f"Group `{program}` drops privileges to.",
            status="unsupported",
            note=no_daemon,
        ),
        _s(
            f"{program}_umask",
            None,
            "str",
            f"umask `{program}` uses when it creates files.",
            status="unsupported",
            note=no_daemon,
        ),
        _s(
            f"{program}_executable",
            None,
            "str",
            f"Python executable `{program}` uses when it daemonizes.",
            status="unsupported",
            note=no_daemon,
        ),
    )


_TABLE: tuple[tuple[str, tuple[Setting, ...]], ...] = (
    (
        "General",
        (
            _s(
                "accept_content",
                ["json"],
                "list",
                "Serializer names or content types a worker accepts; other messages are rejected.",
                "CELERY_ACCEPT_CONTENT",
                status="implemented",
            ),
            _s(
                "result_accept_content",
                None,
                "list",
                "Content types accepted from the result backend (None: same as `accept_content`).",
                "RESULT_ACCEPT_CONTENT",
                status="implemented",
            ),
            _s(
                "enable_utc",
                True,
                "bool",
                "Dates and times in messages are in UTC.",
                "CELERY_ENABLE_UTC",
                "ENABLE_UTC",
                status="implemented",
            ),
            _s(
                "timezone",
                None,
                "str",
                "Time zone name (zoneinfo) used for schedules and dates (None: UTC).",
                "CELERY_TIMEZONE",
                status="implemented",
            ),
            _s(
                "imports",
                [],
                "list",
                "Modules a worker imports at start-up (task modules, signal handlers).",
                "CELERY_IMPORTS",
                status="implemented",
            ),
            _s(
                "include",
                [],
                "list",
                "Like `imports`; imported after them.",
                "CELERY_INCLUDE",
                status="implemented",
            ),
        ),
    ),
    (
        "Task",
        (
            _s(
                "task_acks_late",
                False,
                "bool",
                "Acknowledge a task message after the task ran, not just before.",
                "CELERY_ACKS_LATE",
                status="implemented",
            ),
            _s(
                "task_acks_on_failure_or_timeout",
                True,
                "bool",
                "With late acks, acknowledge messages of tasks that failed or timed out too.",
                "CELERY_ACKS_ON_FAILURE_OR_TIMEOUT",
                status="implemented",
            ),
            _s(
                "task_acks_on_failure",
                None,
                "bool",
                "With late acks, acknowledge failed tasks (None: follow "
                "`task_acks_on_failure_or_timeout`).",
                "CELERY_ACKS_ON_FAILURE",
                status="unsupported",
                note="Only `task_acks_on_failure_or_timeout` is read.",
            ),
            _s(
                "task_acks_on_timeout",
                None,
                "bool",
                "With late acks, acknowledge timed-out tasks (None: follow "
                "`task_acks_on_failure_or_timeout`).",
                "CELERY_ACKS_ON_TIMEOUT",
                status="unsupported",
                note="Only `task_acks_on_failure_or_timeout` is read.",
            ),
            _s(
                "task_always_eager",
                False,
                "bool",
                "Run tasks locally and synchronously instead of sending them.",
                "CELERY_ALWAYS_EAGER",
                "CELERY_TASK_ALWAYS_EAGER",
                status="implemented",
            ),
            _s(
                "task_eager_propagates",
                False,
                "bool",
                "Eagerly run tasks re-raise their exceptions (like `apply(throw=True)`).",
                "CELERY_EAGER_PROPAGATES_EXCEPTIONS",
                "CELERY_EAGER_PROPAGATES",
                status="implemented",
            ),
            _s(
                "task_store_eager_result",
                False,
                "bool",
                "Store the results of eagerly run tasks in the result backend.",
                "CELERY_STORE_EAGER_RESULT",
                status="implemented",
            ),
            _s(
                "task_annotations",
                None,
                "any",
                "Task attributes to override, by task name (`'*'` for all) or annotation objects.",
                "CELERY_ANNOTATIONS",
                status="unsupported",
                note="Task attributes are not overridden from the configuration yet.",
            ),
            _s(
                "task_compression",
                None,
                "str",
                "Compression for task messages (`zlib`/`gzip`, `bzip2`, `lzma`/`xz`; None: none).",
                "CELERY_MESSAGE_COMPRESSION",
                "CELERY_COMPRESSION",
                status="implemented",
            ),
            _s(
                "task_create_missing_queues",
                True,
                "bool",
                "Queues named in routes but not in `task_queues` are created automatically.",
                "CELERY_CREATE_MISSING_QUEUES",
                status="unsupported",
                note="Queues are created on first use; refusing unknown queues is not implemented.",
            ),
            _s(
                "task_create_missing_queue_type",
                "classic",
                "str",
                "Type of automatically created queues (`classic` or `quorum`; RabbitMQ).",
                "CELERY_CREATE_MISSING_QUEUE_TYPE",
                status="implemented",
            ),
            _s(
                "task_create_missing_queue_exchange_type",
                None,
                "str",
                "Exchange type of automatically created queues (None: the default exchange).",
                "CELERY_CREATE_MISSING_QUEUE_EXCHANGE_TYPE",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "task_default_delivery_mode",
                2,
                "any",
                "Delivery mode of task messages: 2/`persistent` or 1/`transient`.",
                "CELERY_DEFAULT_DELIVERY_MODE",
                status="implemented",
            ),
            _s(
                "task_default_exchange",
                None,
                "str",
                "Default exchange name (None: same as `task_default_queue`).",
                "CELERY_DEFAULT_EXCHANGE",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "task_default_exchange_type",
                "direct",
                "str",
                "Type of the default exchange.",
                "CELERY_DEFAULT_EXCHANGE_TYPE",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "task_default_priority",
                None,
                "int",
                "Priority of task messages that set none.",
                "CELERY_DEFAULT_PRIORITY",
                status="implemented",
            ),
            _s(
                "task_default_queue",
                "celery",
                "str",
                "Queue of task messages no route sends elsewhere.",
                "CELERY_DEFAULT_QUEUE",
                status="implemented",
            ),
            _s(
                "task_default_queue_type",
                "classic",
                "str",
                "Type of the default queue (`classic` or `quorum`; RabbitMQ).",
                "CELERY_DEFAULT_QUEUE_TYPE",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "task_default_rate_limit",
                None,
                "str",
                "Rate limit of tasks that set none (e.g. `'10/s'`; None: no limit).",
                "CELERY_DEFAULT_RATE_LIMIT",
                status="implemented",
            ),
            _s(
                "task_rate_limit_scope",
                "worker",
                "str",
                "Scope of rate limits of tasks that set no `rate_limit_scope` (celeriac's own):"
                " `'worker'` (each worker on its own, as Celery) or `'global'` (one limit shared"
                " by all workers through the coordination store).",
                status="implemented",
            ),
            _s(
                "task_default_routing_key",
                None,
                "str",
                "Default routing key (None: same as `task_default_queue`).",
                "CELERY_DEFAULT_ROUTING_KEY",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "task_default_expires",
                None,
                "float",
                "Expiry (seconds or timedelta) of task messages sent without one. Not a "
                "Celery setting (Celery ignores it); accepted because many configs set it.",
                status="compat",
                note="Celery ignores it too; set `expires` per call or on the task.",
            ),
            _s(
                "task_ignore_result",
                False,
                "bool",
                "Do not store task return values.",
                "CELERY_IGNORE_RESULT",
                status="implemented",
            ),
            _s(
                "task_store_errors_even_if_ignored",
                False,
                "bool",
                "Store task errors even when results are ignored.",
                "CELERY_STORE_ERRORS_EVEN_IF_IGNORED",
                status="unsupported",
                note="Ignored results are never stored, errors included.",
            ),
            _s(
                "task_inherit_parent_priority",
                False,
                "bool",
                "Tasks sent by a task inherit its priority.",
                "CELERY_INHERIT_PARENT_PRIORITY",
                status="unsupported",
                note="Subtasks do not inherit their parent's priority.",
            ),
            _s(
                "task_protocol",
                2,
                "int",
                "Task message protocol version (1 or 2).",
                "CELERY_TASK_PROTOCOL",
                status="unsupported",
                note="Only message protocol 2 is spoken.",
            ),
            _s(
                "task_publish_retry",
                True,
                "bool",
                "Retry sending a task message when the broker connection fails.",
                "CELERY_TASK_PUBLISH_RETRY",
                "CELERY_PUBLISH_RETRY",
                status="implemented",
            ),
            _s(
                "task_publish_retry_policy",
                {
                    "max_retries": None,
                    "interval_start": 0,
                    "interval_step": 0.2,
                    "interval_max": 1,
                    "timeout": 10,
                },
                "dict",
                "How sending retries: `max_retries` (None: no count limit), `interval_start`, "
                "`interval_step`, `interval_max` (seconds) and, celeriac, `timeout`: seconds "
                "after the first failure past which the error is raised.",
                "CELERY_TASK_PUBLISH_RETRY_POLICY",
                "CELERY_PUBLISH_RETRY_POLICY",
                status="implemented",
            ),
            _s(
                "task_queues",
                None,
                "any",
                "Queues workers consume from (None: just `task_default_queue`).",
                "CELERY_QUEUES",
                status="implemented",
            ),
            _s(
                "task_queue_max_priority",
                None,
                "int",
                "Highest priority queues support (`x-max-priority`).",
                "CELERY_QUEUE_MAX_PRIORITY",
                status="implemented",
            ),
            _s(
                "task_reject_on_worker_lost",
                None,
                "bool",
                "With late acks, requeue the message when the process running the task dies.",
                "CELERY_REJECT_ON_WORKER_LOST",
                "CELERY_TASK_REJECT_ON_WORKER_LOST",
                status="implemented",
            ),
            _s(
                "task_retry_on_worker_lost",
                False,
                "bool",
                "Retry a task whose worker process died instead of failing it.",
                "CELERY_RETRY_ON_WORKER_LOST",
                status="unsupported",
                note="A task whose pool process died is not retried automatically.",
            ),
            _s(
                "task_remote_tracebacks",
                False,
                "bool",
                "Re-raised task errors include the worker's traceback.",
                "CELERY_REMOTE_TRACEBACKS",
                status="unsupported",
                note="Remote tracebacks (tblib) are not kept.",
            ),
            _s(
                "task_repr_maxlevels",
                3,
                "int",
                "Nesting depth shown in the argument reprs of task messages.",
                "CELERY_REPR_MAXLEVELS",
                status="unsupported",
                note="Argument reprs are not truncated by depth.",
            ),
            _s(
                "task_routes",
                None,
                "any",
                "Routers: a mapping of task name or glob to queue/options, functions, or a "
                "list of them.",
                "CELERY_ROUTES",
                status="implemented",
            ),
            _s(
                "task_send_sent_event",
                False,
                "bool",
                "Send a `task-sent` event for every task sent.",
                "CELERY_SEND_TASK_SENT_EVENT",
                "CELERY_SEND_SENT_EVENT",
                status="implemented",
            ),
            _s(
                "task_serializer",
                "json",
                "str",
                "Serializer of task messages.",
                "CELERY_TASK_SERIALIZER",
                status="implemented",
            ),
            _s(
                "task_soft_time_limit",
                None,
                "float",
                "Seconds after which `SoftTimeLimitExceeded` is raised in a task.",
                "CELERYD_TASK_SOFT_TIME_LIMIT",
                "CELERYD_SOFT_TIME_LIMIT",
                status="implemented",
            ),
            _s(
                "task_time_limit",
                None,
                "float",
                "Seconds after which the process running a task is killed.",
                "CELERYD_TASK_TIME_LIMIT",
                "CELERYD_TIME_LIMIT",
                status="implemented",
            ),
            _s(
                "task_track_started",
                False,
                "bool",
                "Tasks report a STARTED state when a worker begins running them.",
                "CELERY_TRACK_STARTED",
                "CELERY_TASK_TRACK_STARTED",
                status="implemented",
            ),
            _s(
                "task_allow_error_cb_on_chord_header",
                False,
                "bool",
                "Error callbacks of a chord are linked to its header tasks too.",
                "CELERY_ALLOW_ERROR_CB_ON_CHORD_HEADER",
                status="unsupported",
                note="Errbacks on a chord header are not called.",
            ),
        ),
    ),
    (
        "Result backend",
        (
            _s(
                "result_backend",
                None,
                "str",
                "URL of the result backend (None: results are not stored).",
                "CELERY_RESULT_BACKEND",
                status="implemented",
            ),
            _s(
                "result_backend_always_retry",
                False,
                "bool",
                "Retry backend operations that fail with recoverable errors.",
                "CELERY_RESULT_BACKEND_ALWAYS_RETRY",
                status="unsupported",
                note="Result backend calls are not retried.",
            ),
            _s(
                "result_backend_max_retries",
                float("inf"),
                "float",
                "Most retries of a failing backend operation.",
                "CELERY_RESULT_BACKEND_MAX_RETRIES",
                status="unsupported",
                note="Result backend calls are not retried.",
            ),
            _s(
                "result_backend_base_sleep_between_retries_ms",
                10,
                "int",
                "Base of the exponential back-off between backend retries, in milliseconds.",
                "CELERY_RESULT_BACKEND_BASE_SLEEP_BETWEEN_RETRIES_MS",
                status="unsupported",
                note="Result backend calls are not retried.",
            ),
            _s(
                "result_backend_max_sleep_between_retries_ms",
                10000,
                "int",
                "Longest sleep between backend retries, in milliseconds.",
                "CELERY_RESULT_BACKEND_MAX_SLEEP_BETWEEN_RETRIES_MS",
                status="unsupported",
                note="Result backend calls are not retried.",
            ),
            _s(
                "result_backend_thread_safe",
                False,
                "bool",
                "Share one backend object (and its connection pool) between threads.",
                status="compat",
                note="Every backend is safe to share between threads.",
            ),
            _s(
                "result_backend_transport_options",
                {},
                "dict",
                "Extra options for the result backend's transport.",
                "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS",
                status="implemented",
            ),
            _s(
                "result_cache_max",
                -1,
                "int",
                "Results cached client-side (-1: caching disabled; 0 or None: no limit).",
                "CELERY_MAX_CACHED_RESULTS",
                status="unsupported",
                note="Results are not cached in the client.",
            ),
            _s(
                "result_compression",
                None,
                "str",
                "Compression for stored results (None: none).",
                "CELERY_RESULT_COMPRESSION",
                status="unsupported",
                note="Results are not compressed.",
            ),
            _s(
                "result_exchange",
                "celeryresults",
                "str",
                "Exchange results are sent to (AMQP/RPC backends).",
                "CELERY_RESULT_EXCHANGE",
                status="compat",
                note="rpc:// replies through the default exchange to the caller's queue, as "
                "Celery's does.",
            ),
            _s(
                "result_exchange_type",
                "direct",
                "str",
                "Type of `result_exchange`.",
                "CELERY_RESULT_EXCHANGE_TYPE",
                status="compat",
                note="rpc:// replies through the default exchange to the caller's queue, as "
                "Celery's does.",
            ),
            _s(
                "result_expires",
                86400,
                "float",
                "Seconds (or a timedelta) before stored results are deleted (None or 0: never).",
                "CELERY_TASK_RESULT_EXPIRES",
                "CELERY_RESULT_EXPIRES",
                status="implemented",
            ),
            _s(
                "result_chord_expires",
                None,
                "float",
                "Seconds before chord bookkeeping keys expire (None: `result_expires`).",
                "CELERY_RESULT_CHORD_EXPIRES",
                status="unsupported",
                note="Chord counters expire with `result_expires`.",
            ),
            _s(
                "result_failure_expires",
                None,
                "float",
                "Seconds before stored failures are deleted (None: `result_expires`).",
                "CELERY_RESULT_FAILURE_EXPIRES",
                status="unsupported",
                note="Failures expire with `result_expires`.",
            ),
            _s(
                "result_persistent",
                None,
                "bool",
                "Result messages survive a broker restart (RPC backend).",
                "CELERY_RESULT_PERSISTENT",
                status="implemented",
            ),
            _s(
                "result_serializer",
                "json",
                "str",
                "Serializer of stored results.",
                "CELERY_RESULT_SERIALIZER",
                status="implemented",
            ),
            _s(
                "result_extended",
                False,
                "bool",
                "Store task name, args, kwargs, worker, retries and queue with the result.",
                "CELERY_RESULT_EXTENDED",
                status="implemented",
            ),
            _s(
                "result_chord_join_timeout",
                3.0,
                "float",
                "Seconds to wait when joining a chord header's results.",
                "CELERY_RESULT_CHORD_JOIN_TIMEOUT",
                status="compat",
                note="Chords are counted atomically by the backend; there is no join to time out.",
            ),
            _s(
                "result_chord_retry_interval",
                1.0,
                "float",
                "Seconds between retries of a chord body waiting for its header.",
                "CELERY_RESULT_CHORD_RETRY_INTERVAL",
                status="compat",
                note="Chords are counted atomically by the backend; there is no polling to space.",
            ),
            _s(
                "override_backends",
                None,
                "dict",
                "Result backend aliases to replace: alias -> `'module:Class'` path.",
                status="unsupported",
                note="Backends are chosen by URL scheme only.",
            ),
        ),
    ),
    (
        "Database backend",
        (
            _s(
                "database_url",
                None,
                "str",
                "SQLAlchemy URL of the database backend (normally given as "
                "`result_backend='db+...'`).",
                "CELERY_RESULT_DBURI",
                status="unsupported",
                note="Give the database as `result_backend='db+...'` (docs/result-backends.md).",
            ),
            _s(
                "database_engine_options",
                {"pool_pre_ping": True, "pool_recycle": 3600},
                "dict",
                "Keyword arguments for SQLAlchemy's `create_engine`.",
                "CELERY_RESULT_ENGINE_OPTIONS",
                status="implemented",
            ),
            _s(
                "database_engine_callback",
                None,
                "any",
                "Function called with each new SQLAlchemy engine.",
                "DATABASE_ENGINE_CALLBACK",
                status="implemented",
            ),
            _s(
                "database_short_lived_sessions",
                False,
                "bool",
                "Open a new database session for every operation.",
                "CELERY_RESULT_DB_SHORT_LIVED_SESSIONS",
                status="implemented",
            ),
            _s(
                "database_table_schemas",
                None,
                "dict",
                "Schema of the result tables: `{'task': ..., 'group': ...}`.",
                "DATABASE_TABLE_SCHEMAS",
                status="implemented",
            ),
            _s(
                "database_table_names",
                None,
                "dict",
                "Names of the result tables: `{'task': ..., 'group': ...}`.",
                "CELERY_RESULT_DB_TABLENAMES",
                "CELERY_RESULT_DB_TABLE_NAMES",
                status="implemented",
            ),
            _s(
                "database_create_tables_at_setup",
                True,
                "bool",
                "Create the result tables when the backend starts (False: on first use; "
                "celeriac creates them on first use unless this is set).",
                "DATABASE_CREATE_TABLES_AT_SETUP",
                status="implemented",
            ),
        ),
    ),
    (
        "Cache backend",
        (
            _s(
                "cache_backend",
                None,
                "str",
                "The Django cache (a `CACHES` alias) the `django-cache` result backend uses "
                "(None: `default`).",
                "CELERY_CACHE_BACKEND",
                status="implemented",
            ),
            _s(
                "cache_backend_options",
                {},
                "dict",
                "Options for the cache client (`cache+memcached://`: pymemcache client keywords).",
                "CELERY_CACHE_BACKEND_OPTIONS",
                status="implemented",
            ),
        ),
    ),
    (
        "Redis backend",
        (
            _s(
                "redis_backend_health_check_interval",
                None,
                "int",
                "Seconds between health checks of Redis backend connections.",
                status="unsupported",
                note=_backend_option("health_check_interval"),
            ),
            _s(
                "redis_backend_use_ssl",
                None,
                "dict",
                "SSL options of the Redis backend connection (same keys as `broker_use_ssl`).",
                "CELERY_REDIS_BACKEND_USE_SSL",
                status="implemented",
            ),
            _s(
                "redis_db",
                None,
                "int",
                "Redis database number.",
                "CELERY_REDIS_DB",
                status="unsupported",
                note="Legacy; give it in the `result_backend` URL.",
            ),
            _s(
                "redis_host",
                None,
                "str",
                "Redis host name.",
                "CELERY_REDIS_HOST",
                status="unsupported",
                note="Legacy; give it in the `result_backend` URL.",
            ),
            _s(
                "redis_max_connections",
                None,
                "int",
                "Size of the Redis backend connection pool (None: unlimited).",
                "CELERY_REDIS_MAX_CONNECTIONS",
                status="unsupported",
                note=_backend_option("max_connections"),
            ),
            _s(
                "redis_username",
                None,
                "str",
                "Redis user name.",
                "CELERY_REDIS_USERNAME",
                status="unsupported",
                note="Legacy; give it in the `result_backend` URL.",
            ),
            _s(
                "redis_password",
                None,
                "str",
                "Redis password.",
                "CELERY_REDIS_PASSWORD",
                status="unsupported",
                note="Legacy; give it in the `result_backend` URL.",
            ),
            _s(
                "redis_port",
                None,
                "int",
                "Redis port.",
                "CELERY_REDIS_PORT",
                status="unsupported",
                note="Legacy; give it in the `result_backend` URL.",
            ),
            _s(
                "redis_socket_timeout",
                120.0,
                "float",
                "Seconds a Redis read or write may take.",
                "CELERY_REDIS_SOCKET_TIMEOUT",
                status="unsupported",
                note=_backend_option("socket_timeout"),
            ),
            _s(
                "redis_socket_connect_timeout",
                None,
                "float",
                "Seconds connecting to Redis may take.",
                "CELERY_REDIS_SOCKET_CONNECT_TIMEOUT",
                status="unsupported",
                note=_backend_option("socket_connect_timeout"),
            ),
            _s(
                "redis_retry_on_timeout",
                False,
                "bool",
                "Retry Redis operations that time out.",
                "CELERY_REDIS_RETRY_ON_TIMEOUT",
                status="unsupported",
                note="Not read: Redis timeouts are not retried.",
            ),
            _s(
                "redis_socket_keepalive",
                False,
                "bool",
                "Enable TCP keepalive on Redis backend connections.",
                "CELERY_REDIS_SOCKET_KEEPALIVE",
                status="unsupported",
                note=_backend_option("socket_keepalive"),
            ),
        ),
    ),
    (
        "Other result backends",
        (
            _s(
                "cassandra_servers",
                None,
                "list",
                "Cassandra hosts.",
                "CASSANDRA_SERVERS",
                status="unsupported",
                note=_no_backend("Cassandra"),
            ),
            _s(
                "cassandra_secure_bundle_path",
                None,
                "str",
                "Astra DB secure-connect bundle (instead of `cassandra_servers`).",
                status="unsupported",
                note=_no_backend("Cassandra"),
            ),
            _s(
                "cassandra_bundle_path",
                None,
                "str",
                "Older name of the Astra DB secure-connect bundle path.",
                "CASSANDRA_BUNDLE_PATH",
                status="unsupported",
                note=_no_backend("Cassandra"),
            ),
            _s(
                "cassandra_port",
                None,
                "int",
                "Cassandra port.",
                "CASSANDRA_PORT",
                status="unsupported",
                note=_no_backend("Cassandra"),
            ),
            _s(
                "cassandra_keyspace",
                None,
                "str",
                "Cassandra keyspace.",
                "CASSANDRA_KEYSPACE",
                status="unsupported",
                note=_no_backend("Cassandra"),
            ),
            _s(
                "cassandra_table",
                None,
                "str",
                "Cassandra table (column family) for results.",
                "CASSANDRA_TABLE",
                "CASSANDRA_COLUMN_FAMILY",
                status="unsupported",
                note=_no_backend("Cassandra"),
            ),
            _s(
                "cassandra_read_consistency",
                None,
                "str",
                "Cassandra read consistency level.",
                "CASSANDRA_READ_CONSISTENCY",
                status="unsupported",
                note=_no_backend("Cassandra"),
            ),
            _s(
                "cassandra_write_consistency",
                None,
                "str",
                "Cassandra write consistency level.",
                "CASSANDRA_WRITE_CONSISTENCY",
                status="unsupported",
                note=_no_backend("Cassandra"),
            ),
            _s(
                "cassandra_entry_ttl",
                None,
                "float",
                "Seconds before Cassandra result rows expire.",
                "CASSANDRA_ENTRY_TTL",
                status="unsupported",
                note=_no_backend("Cassandra"),
            ),
            _s(
                "cassandra_auth_provider",
                None,
                "str",
                "Name of the `cassandra.auth` provider class.",
                "CASSANDRA_AUTH_PROVIDER",
                status="unsupported",
                note=_no_backend("Cassandra"),
            ),
            _s(
                "cassandra_auth_kwargs",
                None,
                "dict",
                "Keyword arguments of the Cassandra auth provider.",
                "CASSANDRA_AUTH_KWARGS",
                status="unsupported",
                note=_no_backend("Cassandra"),
            ),
            _s(
                "cassandra_options",
                {},
                "dict",
                "Keyword arguments of `cassandra.cluster.Cluster`.",
                "CASSANDRA_OPTIONS",
                status="unsupported",
                note=_no_backend("Cassandra"),
            ),
            _s(
                "s3_access_key_id",
                None,
                "str",
                "S3 access key id.",
                "S3_ACCESS_KEY_ID",
                status="unsupported",
                note=_no_backend("S3"),
            ),
            _s(
                "s3_secret_access_key",
                None,
                "str",
                "S3 secret access key.",
                "S3_SECRET_ACCESS_KEY",
                status="unsupported",
                note=_no_backend("S3"),
            ),
            _s(
                "s3_bucket",
                None,
                "str",
                "S3 bucket.",
                "S3_BUCKET",
                status="unsupported",
                note=_no_backend("S3"),
            ),
            _s(
                "s3_base_path",
                None,
                "str",
                "Key prefix inside the S3 bucket.",
                "S3_BASE_PATH",
                status="unsupported",
                note=_no_backend("S3"),
            ),
            _s(
                "s3_endpoint_url",
                None,
                "str",
                "Custom S3-compatible endpoint URL.",
                "S3_ENDPOINT_URL",
                status="unsupported",
                note=_no_backend("S3"),
            ),
            _s(
                "s3_region",
                None,
                "str",
                "S3 region.",
                "S3_REGION",
                status="unsupported",
                note=_no_backend("S3"),
            ),
            _s(
                "azureblockblob_container_name",
                "celery",
                "str",
                "Azure Block Blob container for results.",
                "AZUREBLOCKBLOB_CONTAINER_NAME",
                status="unsupported",
                note=_no_backend("Azure Block Blob"),
            ),
            _s(
                "azureblockblob_base_path",
                "",
                "str",
                "Key prefix inside the Azure container.",
                "AZUREBLOCKBLOB_BASE_PATH",
                status="unsupported",
                note=_no_backend("Azure Block Blob"),
            ),
            _s(
                "azureblockblob_retry_initial_backoff_sec",
                2,
                "int",
                "First Azure retry back-off, in seconds.",
                "AZUREBLOCKBLOB_RETRY_INITIAL_BACKOFF_SEC",
                status="unsupported",
                note=_no_backend("Azure Block Blob"),
            ),
            _s(
                "azureblockblob_retry_increment_base",
                2,
                "int",
                "Base of the exponential Azure retry back-off.",
                "AZUREBLOCKBLOB_RETRY_INCREMENT_BASE",
                status="unsupported",
                note=_no_backend("Azure Block Blob"),
            ),
            _s(
                "azureblockblob_retry_max_attempts",
                3,
                "int",
                "Most Azure retry attempts.",
                "AZUREBLOCKBLOB_RETRY_MAX_ATTEMPTS",
                status="unsupported",
                note=_no_backend("Azure Block Blob"),
            ),
            _s(
                "azureblockblob_connection_timeout",
                20,
                "int",
                "Seconds connecting to Azure may take.",
                "AZUREBLOCKBLOB_CONNECTION_TIMEOUT",
                status="unsupported",
                note=_no_backend("Azure Block Blob"),
            ),
            _s(
                "azureblockblob_read_timeout",
                120,
                "int",
                "Seconds reading an Azure blob may take.",
                "AZUREBLOCKBLOB_READ_TIMEOUT",
                status="unsupported",
                note=_no_backend("Azure Block Blob"),
            ),
            _s(
                "gcs_bucket",
                None,
                "str",
                "Google Cloud Storage bucket.",
                "GCS_BUCKET",
                status="unsupported",
                note=_no_backend("Google Cloud Storage"),
            ),
            _s(
                "gcs_project",
                None,
                "str",
                "Google Cloud project.",
                "GCS_PROJECT",
                status="unsupported",
                note=_no_backend("Google Cloud Storage"),
            ),
            _s(
                "gcs_base_path",
                "",
                "str",
                "Key prefix inside the GCS bucket.",
                "GCS_BASE_PATH",
                status="unsupported",
                note=_no_backend("Google Cloud Storage"),
            ),
            _s(
                "gcs_ttl",
                0,
                "float",
                "Seconds before GCS result blobs expire (0: never).",
                "GCS_TTL",
                status="unsupported",
                note=_no_backend("Google Cloud Storage"),
            ),
            _s(
                "gcs_threadpool_maxsize",
                10,
                "int",
                "Threads (and connections) for GCS operations.",
                status="unsupported",
                note=_no_backend("Google Cloud Storage"),
            ),
            _s(
                "firestore_project",
                None,
                "str",
                "Firestore project for chord counting (None: `gcs_project`).",
                status="unsupported",
                note=_no_backend("Firestore"),
            ),
            _s(
                "cosmosdbsql_database_name",
                "celerydb",
                "str",
                "CosmosDB database for results.",
                "COSMOSDBSQL_DATABASE_NAME",
                status="unsupported",
                note=_no_backend("Cosmos DB"),
            ),
            _s(
                "cosmosdbsql_collection_name",
                "celerycol",
                "str",
                "CosmosDB collection for results.",
                "COSMOSDBSQL_COLLECTION_NAME",
                status="unsupported",
                note=_no_backend("Cosmos DB"),
            ),
            _s(
                "cosmosdbsql_consistency_level",
                "Session",
                "str",
                "CosmosDB consistency level.",
                "COSMOSDBSQL_CONSISTENCY_LEVEL",
                status="unsupported",
                note=_no_backend("Cosmos DB"),
            ),
            _s(
                "cosmosdbsql_max_retry_attempts",
                9,
                "int",
                "Most CosmosDB retries of a request.",
                "COSMOSDBSQL_MAX_RETRY_ATTEMPTS",
                status="unsupported",
                note=_no_backend("Cosmos DB"),
            ),
            _s(
                "cosmosdbsql_max_retry_wait_time",
                30,
                "int",
                "Seconds CosmosDB retries of a request may take.",
                "COSMOSDBSQL_MAX_RETRY_WAIT_TIME",
                status="unsupported",
                note=_no_backend("Cosmos DB"),
            ),
            _s(
                "elasticsearch_retry_on_timeout",
                None,
                "bool",
                "Retry Elasticsearch requests that time out on another node.",
                "CELERY_ELASTICSEARCH_RETRY_ON_TIMEOUT",
                status="unsupported",
                note=_no_backend("Elasticsearch"),
            ),
            _s(
                "elasticsearch_max_retries",
                None,
                "int",
                "Most Elasticsearch retries before an error is raised.",
                "CELERY_ELASTICSEARCH_MAX_RETRIES",
                status="unsupported",
                note=_no_backend("Elasticsearch"),
            ),
            _s(
                "elasticsearch_timeout",
                None,
                "float",
                "Seconds an Elasticsearch request may take.",
                "CELERY_ELASTICSEARCH_TIMEOUT",
                status="unsupported",
                note=_no_backend("Elasticsearch"),
            ),
            _s(
                "elasticsearch_save_meta_as_text",
                True,
                "bool",
                "Store Elasticsearch result metadata as text instead of native JSON.",
                "CELERY_ELASTICSEARCH_SAVE_META_AS_TEXT",
                status="unsupported",
                note=_no_backend("Elasticsearch"),
            ),
            _s(
                "couchbase_backend_settings",
                None,
                "dict",
                "Couchbase connection settings (host, port, bucket, username, password).",
                "CELERY_COUCHBASE_BACKEND_SETTINGS",
                status="unsupported",
                note=_no_backend("Couchbase"),
            ),
            _s(
                "arangodb_backend_settings",
                None,
                "dict",
                "ArangoDB connection settings (host, port, database, collection, ...).",
                "CELERY_ARANGODB_BACKEND_SETTINGS",
                status="unsupported",
                note=_no_backend("ArangoDB"),
            ),
            _s(
                "mongodb_backend_settings",
                None,
                "dict",
                "MongoDB settings (database, taskmeta_collection, max_pool_size, options).",
                "CELERY_MONGODB_BACKEND_SETTINGS",
                status="unsupported",
                note=_no_backend("MongoDB"),
            ),
        ),
    ),
    (
        "Broker",
        (
            _s(
                "broker_url",
                None,
                "str",
                "Broker URL, or several (`;`-separated or a list) for failover.",
                "BROKER_URL",
                status="implemented",
            ),
            _s(
                "broker_read_url",
                None,
                "str",
                "Broker URL for consuming (None: `broker_url`).",
                "BROKER_READ_URL",
                status="unsupported",
                note="Consumers use `broker_url` too.",
            ),
            _s(
                "broker_write_url",
                None,
                "str",
                "Broker URL for publishing (None: `broker_url`).",
                "BROKER_WRITE_URL",
                status="implemented",
            ),
            _s(
                "broker_transport",
                None,
                "str",
                "Broker transport name, when `broker_url` gives none.",
                "BROKER_TRANSPORT",
                status="unsupported",
                note="The transport is chosen by the scheme of `broker_url`.",
            ),
            _s(
                "broker_transport_options",
                {},
                "dict",
                "Extra options for the broker transport (e.g. `visibility_timeout`).",
                "BROKER_TRANSPORT_OPTIONS",
                status="implemented",
            ),
            _s(
                "coordination_url",
                None,
                "str",
                "celeriac: where revokes, worker presence, beat's dedup keys and the rejected-"
                "message log live (memory://, sqlite://, redis://...). Default: the broker URL "
                "when it has storage, else the result backend URL (docs/decisions/0012).",
                status="implemented",
            ),
            _s(
                "coordination_transport_options",
                {},
                "dict",
                "celeriac: options of the coordination store's connection; they win over the "
                "broker's (or backend's) transport options it otherwise shares.",
                status="implemented",
            ),
            _s(
                "broker_connection_timeout",
                4.0,
                "float",
                "Seconds a worker waits while connecting to the broker.",
                "BROKER_CONNECTION_TIMEOUT",
                status="unsupported",
                note="Use the transport option `socket_connect_timeout`.",
            ),
            _s(
                "broker_connection_retry",
                True,
                "bool",
                "Re-establish a lost broker connection automatically.",
                "BROKER_CONNECTION_RETRY",
                status="unsupported",
                note="The worker always reconnects.",
            ),
            _s(
                "broker_connection_retry_on_startup",
                None,
                "bool",
                "Retry connecting to the broker at start-up (None: follow "
                "`broker_connection_retry`).",
                "BROKER_CONNECTION_RETRY_ON_STARTUP",
                status="unsupported",
                note="The worker always retries its first connection.",
            ),
            _s(
                "broker_connection_max_retries",
                100,
                "int",
                "Most broker reconnection attempts (None: retry forever).",
                "BROKER_CONNECTION_MAX_RETRIES",
                status="unsupported",
                note="The worker reconnects without a limit.",
            ),
            _s(
                "broker_channel_error_retry",
                False,
                "bool",
                "Also reconnect when the broker returns an invalid response.",
                "BROKER_CHANNEL_ERROR_RETRY",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "broker_failover_strategy",
                None,
                "any",
                "How the next of several broker URLs is chosen (name or function; None: "
                "round-robin).",
                "BROKER_FAILOVER_STRATEGY",
                status="unsupported",
                note="Only one broker URL is used; there is no failover.",
            ),
            _s(
                "broker_heartbeat",
                120,
                "float",
                "Seconds between broker heartbeats (AMQP).",
                "BROKER_HEARTBEAT",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "broker_heartbeat_checkrate",
                3.0,
                "float",
                "How often per heartbeat interval the worker checks heartbeats.",
                "BROKER_HEARTBEAT_CHECKRATE",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "broker_login_method",
                None,
                "str",
                "AMQP login method (None: `AMQPLAIN`).",
                "BROKER_LOGIN_METHOD",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "broker_native_delayed_delivery_queue_type",
                "quorum",
                "str",
                "Type of RabbitMQ native delayed-delivery queues.",
                "BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "broker_pool_limit",
                10,
                "int",
                "Most connections in the broker connection pool (None or 0: no pool).",
                "BROKER_POOL_LIMIT",
                status="unsupported",
                note="Use the transport option `max_connections`.",
            ),
            _s(
                "broker_pool_acquire_timeout",
                None,
                "float",
                "Seconds to wait for a free pooled broker connection (None: forever).",
                "BROKER_POOL_ACQUIRE_TIMEOUT",
                status="unsupported",
                note="Connections are not pooled with a timeout.",
            ),
            _s(
                "broker_use_ssl",
                False,
                "any",
                "Use TLS for broker connections: True, or a dict of SSL options (AMQP: "
                "`ca_certs`, `certfile`, `keyfile`, `cert_reqs`; Redis: the `ssl_*` keys).",
                "BROKER_USE_SSL",
                status="implemented",
            ),
            _s(
                "broker_host",
                None,
                "str",
                "Legacy: broker host (use `broker_url`).",
                "BROKER_HOST",
                status="unsupported",
                note="Legacy; give the host in `broker_url`.",
            ),
            _s(
                "broker_port",
                None,
                "int",
                "Legacy: broker port (use `broker_url`).",
                "BROKER_PORT",
                status="unsupported",
                note="Legacy; give the port in `broker_url`.",
            ),
            _s(
                "broker_user",
                None,
                "str",
                "Legacy: broker user (use `broker_url`).",
                "BROKER_USER",
                status="unsupported",
                note="Legacy; give the user in `broker_url`.",
            ),
            _s(
                "broker_password",
                None,
                "str",
                "Legacy: broker password (use `broker_url`).",
                "BROKER_PASSWORD",
                status="unsupported",
                note="Legacy; give the password in `broker_url`.",
            ),
            _s(
                "broker_vhost",
                None,
                "str",
                "Legacy: broker virtual host (use `broker_url`).",
                "BROKER_VHOST",
                status="unsupported",
                note="Legacy; give the virtual host in `broker_url`.",
            ),
        ),
    ),
    (
        "Worker",
        (
            _s(
                "worker_concurrency",
                None,
                "int",
                "Processes/threads running tasks (None: the number of CPUs).",
                "CELERYD_CONCURRENCY",
                status="implemented",
            ),
            _s(
                "worker_prefetch_multiplier",
                None,
                "int",
                "Messages a worker holds (running + reserved) per process. None (not set): "
                "adaptive, 1 to 64 by task runtime (1,024 in all at most): about 20 ms of work "
                "waits per process, "
                "given back to the queue when every process runs a task over 0.25 s old "
                "(docs/worker.md, Prefetch). A number N, even Celery's default 4: fixed at "
                "processes x N as in Celery (below 1 counts as 1).",
                "CELERYD_PREFETCH_MULTIPLIER",
                status="implemented",
            ),
            _s(
                "worker_disable_prefetch",
                False,
                "bool",
                "Only fetch a message when a process is free to run it.",
                "CELERYD_DISABLE_PREFETCH",
                status="unsupported",
                note="Use `worker_prefetch_multiplier = 1`.",
            ),
            _s(
                "worker_eta_task_limit",
                None,
                "int",
                "Most ETA/countdown tasks a worker holds in memory (None: no limit).",
                "CELERYD_ETA_TASK_LIMIT",
                status="compat",
                note="Scheduled (ETA/countdown) messages wait in the broker, not in worker memory.",
            ),
            _s(
                "worker_enable_prefetch_count_reduction",
                True,
                "bool",
                "After a broker reconnect, restore the prefetch count gradually.",
                "CELERYD_ENABLE_PREFETCH_COUNT_REDUCTION",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "worker_lease_seconds",
                10.0,
                "float",
                "celeriac: seconds a claimed message stays invisible; if its worker stops "
                "renewing the lease (every third of it), another worker may take the message "
                "back. The transport option `visibility_timeout`, when set, wins.",
                status="implemented",
            ),
            _s(
                "worker_early_ack_batch",
                1,
                "int",
                "celeriac: solo pool with early acks: ack this many reserved messages in one "
                "round trip before running them (1 = Celery's one ack per task start; more is "
                "faster, but a killed worker loses acked tasks that had not started).",
                status="implemented",
            ),
            _s(
                "worker_max_tasks_per_child",
                None,
                "int",
                "Tasks a pool process runs before it is replaced (None: no limit).",
                "CELERYD_MAX_TASKS_PER_CHILD",
                status="implemented",
            ),
            _s(
                "worker_max_memory_per_child",
                None,
                "int",
                "Resident memory (KiB) after which a pool process is replaced, once its task "
                "finished (None: no limit). prefork only: threads and solo warn and ignore it.",
                "CELERYD_MAX_MEMORY_PER_CHILD",
                status="implemented",
            ),
            _s(
                "worker_disable_rate_limits",
                False,
                "bool",
                "Ignore all task rate limits.",
                "CELERY_DISABLE_RATE_LIMITS",
                status="implemented",
            ),
            _s(
                "worker_state_db",
                None,
                "str",
                "File keeping persistent worker state (revoked tasks).",
                "CELERYD_STATE_DB",
                status="compat",
                note="Revokes are kept in the coordination store (the broker's service by "
                "default), which outlives a worker restart.",
            ),
            _s(
                "worker_timer_precision",
                1.0,
                "float",
                "Longest sleep, in seconds, of the ETA scheduler between checks.",
                "CELERYD_TIMER_PRECISION",
                status="compat",
                note="Scheduled messages are released by the broker; the worker has no ETA timer.",
            ),
            _s(
                "worker_enable_remote_control",
                True,
                "bool",
                "Workers answer remote control commands.",
                "CELERY_ENABLE_REMOTE_CONTROL",
                status="unsupported",
                note="Remote control cannot be turned off.",
            ),
            _s(
                "worker_send_task_events",
                False,
                "bool",
                "Send task events for monitors (like `worker -E`).",
                "CELERY_SEND_EVENTS",
                status="implemented",
            ),
            _s(
                "worker_direct",
                False,
                "bool",
                "Every worker gets a dedicated queue (`<hostname>.dq`).",
                "CELERY_WORKER_DIRECT",
                status="unsupported",
                note="Workers have no dedicated queue.",
            ),
            _s(
                "worker_lost_wait",
                10.0,
                "float",
                "Seconds to wait for a missing result before raising `WorkerLostError`.",
                "CELERYD_WORKER_LOST_WAIT",
                status="unsupported",
                note="Not read: a lost pool process is reported when the pool notices it.",
            ),
            _s(
                "worker_proc_alive_timeout",
                4.0,
                "float",
                "Seconds to wait for a new pool process to start.",
                "CELERYD_PROC_ALIVE_TIMEOUT",
                status="unsupported",
                note="Not read: pool processes are not timed at start-up.",
            ),
            _s(
                "worker_cancel_long_running_tasks_on_connection_loss",
                False,
                "bool",
                "Cancel running late-ack tasks when the broker connection is lost.",
                "CELERYD_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS",
                status="unsupported",
                note="Running tasks are not cancelled when the broker connection drops.",
            ),
            _s(
                "worker_deduplicate_successful_tasks",
                False,
                "bool",
                "Skip redelivered late-ack tasks already stored as successful.",
                "CELERYD_DEDUPLICATE_SUCCESSFUL_TASKS",
                status="unsupported",
                note="Redelivered messages of succeeded tasks are not skipped.",
            ),
            _s(
                "worker_soft_shutdown_timeout",
                0.0,
                "float",
                "Seconds running tasks get before a cold shutdown (0: no soft shutdown).",
                "CELERYD_SOFT_SHUTDOWN_TIMEOUT",
                status="unsupported",
                note="There is no soft shutdown phase.",
            ),
            _s(
                "worker_enable_soft_shutdown_on_idle",
                False,
                "bool",
                "Do the soft shutdown wait even when no task is running.",
                "CELERYD_ENABLE_SOFT_SHUTDOWN_ON_IDLE",
                status="unsupported",
                note="There is no soft shutdown phase.",
            ),
            _s(
                "worker_detect_quorum_queues",
                True,
                "bool",
                "Detect quorum queues and disable global QoS for them (RabbitMQ).",
                "CELERYD_DETECT_QUORUM_QUEUES",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "worker_middleware",
                (),
                "any",
                "Middleware added after the built-ins: instances, classes or `module:Class` "
                "paths (celeriac's own; see docs/middleware.md).",
                status="implemented",
            ),
            _s(
                "worker_pool",
                "prefork",
                "str",
                "Execution pool: `prefork`, `threads`, `solo`, ... or a class path.",
                "CELERYD_POOL",
                status="implemented",
            ),
            _s(
                "worker_pool_putlocks",
                True,
                "bool",
                "Block when all pool processes are busy instead of queueing inside the pool.",
                "CELERYD_POOL_PUTLOCKS",
                status="compat",
                note="An internal of Celery's billiard pool; celeriac's pools have no put locks.",
            ),
            _s(
                "worker_pool_restarts",
                False,
                "bool",
                "Allow the `pool_restart` remote control command.",
                "CELERYD_POOL_RESTARTS",
                status="unsupported",
                note="The `pool_restart` control command is not implemented.",
            ),
            _s(
                "worker_pool_start_method",
                "fork",
                "str",
                "multiprocessing start method of the prefork pool.",
                "CELERYD_POOL_START_METHOD",
                status="unsupported",
                note="The prefork pool always forks.",
            ),
            _s(
                "worker_autoscaler",
                "celeriac.worker.autoscale:Autoscaler",
                "str",
                "Class path of the autoscaler (`worker --autoscale=MAX,MIN`; prefork and threads).",
                "CELERYD_AUTOSCALER",
                status="implemented",
            ),
            _s(
                "worker_consumer",
                "celeriac.worker.consumer:Consumer",
                "str",
                "Class path of the worker's message consumer.",
                "CELERYD_CONSUMER",
                status="unsupported",
                note="The worker's consumer cannot be replaced.",
            ),
            _s(
                "worker_timer",
                None,
                "str",
                "Class path of the ETA timer (None: chosen by the pool).",
                "CELERYD_TIMER",
                status="unsupported",
                note="The worker has no replaceable timer.",
            ),
            _s(
                "worker_agent",
                None,
                "str",
                "Class path of an optional worker agent.",
                "CELERYD_AGENT",
                status="unsupported",
                note="The worker has no agent.",
            ),
            _s(
                "worker_hijack_root_logger",
                True,
                "bool",
                "Replace the handlers of the root logger with celeriac's.",
                "CELERYD_HIJACK_ROOT_LOGGER",
                status="implemented",
            ),
            _s(
                "worker_log_color",
                None,
                "bool",
                "Colour log output (None: when logging to a terminal).",
                "CELERYD_LOG_COLOR",
                status="implemented",
            ),
            _s(
                "worker_log_format",
                _LOG_FORMAT,
                "str",
                "Format of worker log records.",
                "CELERYD_LOG_FORMAT",
                "CELERY_WORKER_LOG_FORMAT",
                status="implemented",
            ),
            _s(
                "worker_log_datefmt",
                None,
                "str",
                "Date format of worker log records.",
                "CELERYD_LOG_DATEFMT",
                status="implemented",
            ),
            _s(
                "worker_task_log_format",
                _TASK_LOG_FORMAT,
                "str",
                "Format of log records emitted inside tasks.",
                "CELERYD_TASK_LOG_FORMAT",
                "CELERY_WORKER_TASK_LOG_FORMAT",
                status="implemented",
            ),
            _s(
                "worker_task_log_datefmt",
                None,
                "str",
                "Date format of log records emitted inside tasks.",
                "CELERYD_TASK_LOG_DATEFMT",
                status="implemented",
            ),
            _s(
                "worker_redirect_stdouts",
                True,
                "bool",
                "Redirect stdout and stderr to the logger.",
                "CELERY_REDIRECT_STDOUTS",
                "CELERYD_REDIRECT_STDOUTS",
                status="implemented",
            ),
            _s(
                "worker_redirect_stdouts_level",
                "WARNING",
                "str",
                "Log level of redirected stdout/stderr output.",
                "CELERY_REDIRECT_STDOUTS_LEVEL",
                "CELERYD_REDIRECT_STDOUTS_LEVEL",
                status="implemented",
            ),
            *_daemon_options("worker"),
        ),
    ),
    (
        "Events",
        (
            _s(
                "event_queue_expires",
                60.0,
                "float",
                "Seconds before an unused monitor event queue is deleted.",
                "CELERY_EVENT_QUEUE_EXPIRES",
                status="compat",
                note=_EVENTS_BROADCAST,
            ),
            _s(
                "event_queue_ttl",
                5.0,
                "float",
                "Seconds before an unread event message expires.",
                "CELERY_EVENT_QUEUE_TTL",
                status="compat",
                note=_EVENTS_BROADCAST,
            ),
            _s(
                "event_queue_prefix",
                "celeryev",
                "str",
                "Prefix of event receiver queue names.",
                "CELERY_EVENT_QUEUE_PREFIX",
                status="compat",
                note=_EVENTS_BROADCAST,
            ),
            _s(
                "event_queue_exclusive",
                True,
                "bool",
                "Event queues are exclusive to their connection.",
                "CELERY_EVENT_QUEUE_EXCLUSIVE",
                status="compat",
                note=_EVENTS_BROADCAST,
            ),
            _s(
                "event_queue_durable",
                False,
                "bool",
                "Event queues survive a broker restart.",
                "CELERY_EVENT_QUEUE_DURABLE",
                status="compat",
                note=_EVENTS_BROADCAST,
            ),
            _s(
                "event_serializer",
                "json",
                "str",
                "Serializer of event messages.",
                "CELERY_EVENT_SERIALIZER",
                status="compat",
                note="Events are always JSON (what every celeriac receiver reads).",
            ),
            _s(
                "event_exchange",
                "celeryev",
                "str",
                "Name of the event exchange.",
                "CELERY_EVENT_EXCHANGE",
                status="compat",
                note=_EVENTS_BROADCAST,
            ),
            *_daemon_options("events"),
        ),
    ),
    (
        "Remote control",
        (
            _s(
                "control_queue_ttl",
                300.0,
                "float",
                "Seconds before an unanswered remote control message expires.",
                "CONTROL_QUEUE_TTL",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "control_queue_expires",
                10.0,
                "float",
                "Seconds before an unused remote control queue is deleted.",
                "CONTROL_QUEUE_EXPIRES",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "control_queue_exclusive",
                True,
                "bool",
                "Remote control queues are exclusive to their connection.",
                "CONTROL_QUEUE_EXCLUSIVE",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "control_queue_durable",
                False,
                "bool",
                "Remote control queues survive a broker restart.",
                "CONTROL_QUEUE_DURABLE",
                status="compat",
                note=_AMQP_ONLY,
            ),
            _s(
                "control_exchange",
                "celery",
                "str",
                "Name of the remote control exchange.",
                "CONTROL_EXCHANGE",
                status="compat",
                note=_AMQP_ONLY,
            ),
        ),
    ),
    (
        "Security",
        (
            _s(
                "security_key",
                None,
                "str",
                "Private key file used to sign messages.",
                "CELERY_SECURITY_KEY",
                status="unsupported",
                note="Message signing (the `auth` serializer) is not implemented.",
            ),
            _s(
                "security_key_password",
                None,
                "bytes",
                "Password of `security_key`.",
                "CELERY_SECURITY_KEY_PASSWORD",
                status="unsupported",
                note="Message signing (the `auth` serializer) is not implemented.",
            ),
            _s(
                "security_certificate",
                None,
                "str",
                "X.509 certificate file used to sign messages.",
                "CELERY_SECURITY_CERTIFICATE",
                status="unsupported",
                note="Message signing (the `auth` serializer) is not implemented.",
            ),
            _s(
                "security_cert_store",
                None,
                "str",
                "Directory or glob of X.509 certificates trusted for signed messages.",
                "CELERY_SECURITY_CERT_STORE",
                status="unsupported",
                note="Message signing (the `auth` serializer) is not implemented.",
            ),
            _s(
                "security_digest",
                "sha256",
                "str",
                "Digest used to sign messages.",
                "CELERY_SECURITY_DIGEST",
                status="unsupported",
                note="Message signing (the `auth` serializer) is not implemented.",
            ),
        ),
    ),
    (
        "Beat",
        (
            _s(
                "beat_schedule",
                {},
                "dict",
                "Periodic tasks: entry name -> `{'task', 'schedule', 'args', ...}`.",
                "CELERYBEAT_SCHEDULE",
                status="implemented",
            ),
            _s(
                "beat_scheduler",
                "celeriac.beat:PersistentScheduler",
                "str",
                "Class path of the beat scheduler.",
                "CELERYBEAT_SCHEDULER",
                status="implemented",
            ),
            _s(
                "beat_schedule_filename",
                "celerybeat-schedule",
                "str",
                "File where the persistent scheduler keeps last run times.",
                "CELERYBEAT_SCHEDULE_FILENAME",
                status="implemented",
            ),
            _s(
                "beat_sync_every",
                0,
                "int",
                "Periodic tasks sent between schedule syncs (0: sync on a timer).",
                "CELERYBEAT_SYNC_EVERY",
                status="compat",
                note="Beat stores each run as it publishes it.",
            ),
            _s(
                "beat_max_loop_interval",
                0,
                "float",
                "Longest sleep, in seconds, between schedule checks (0: scheduler's default).",
                "CELERYBEAT_MAX_LOOP_INTERVAL",
                status="implemented",
            ),
            _s(
                "beat_cron_starting_deadline",
                None,
                "int",
                "Seconds beat may look back for a missed crontab run (None: always run late jobs).",
                "CELERYBEAT_CRON_STARTING_DEADLINE",
                status="implemented",
            ),
            _s(
                "beat_enable_remote_control",
                False,
                "bool",
                "Beat answers `inspect ping` (only) so it can be health-checked; "
                "`celeriac beat --enable-remote-control` overrides it.",
                "CELERYBEAT_ENABLE_REMOTE_CONTROL",
                status="implemented",
            ),
            _s(
                "beat_remote_control_max_tick_age",
                None,
                "float",
                "Seconds since beat's last tick after which it stops answering ping "
                "(None: twice the max interval, at least 60; 0: always answers).",
                "CELERYBEAT_REMOTE_CONTROL_MAX_TICK_AGE",
                status="implemented",
            ),
            *_daemon_options("beat"),
        ),
    ),
)


def _build() -> tuple[dict[str, Setting], dict[str, str], dict[str, tuple[str, ...]]]:
    settings: dict[str, Setting] = {}
    old_to_new: dict[str, str] = {}
    sections: dict[str, tuple[str, ...]] = {}
    for section, members in _TABLE:
        sections[section] = tuple(s.name for s in members)
        for setting in members:
            if setting.name in settings or setting.name != setting.name.lower():
                raise RuntimeError(f"bad or duplicate setting name {setting.name!r}")
            if setting.type not in TYPES:
                raise RuntimeError(f"setting {setting.name!r} has unknown type {setting.type!r}")
            settings[setting.name] = setting
            for old in setting.old_names:
                if old in old_to_new or old != old.upper():
                    raise RuntimeError(f"bad or duplicate old setting name {old!r}")
                old_to_new[old] = setting.name
    return settings, old_to_new, sections


#: Every supported setting, by new (lowercase) name.
SETTINGS: dict[str, Setting]
#: Every old uppercase name -> its new name.
OLD_TO_NEW: dict[str, str]
#: Section title -> the names of the settings documented in it (in order).
SECTIONS: dict[str, tuple[str, ...]]
SETTINGS, OLD_TO_NEW, SECTIONS = _build()

# The Django style: ``CELERY_`` + the upper-cased new name (``CELERY_BROKER_URL``).  Old
# names win where the two coincide (they always agree today).
_NAMESPACED: dict[str, str] = {
    f"CELERY_{name.upper()}": name
    for name in SETTINGS
    if f"CELERY_{name.upper()}" not in OLD_TO_NEW
}


def canonical_name(name: str) -> str | None:
    """The new name of a setting given by its new or old name; None if unknown.

    Case matters, as in Celery: new names are lowercase, old names uppercase.  The Django
    spelling ``CELERY_<NEW_NAME>`` (``CELERY_BROKER_URL``) is understood too.
    """
    if name in SETTINGS:
        return name
    new = OLD_TO_NEW.get(name)
    if new is not None:
        return new
    return _NAMESPACED.get(name)


_LOWER_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*\Z")
_UPPER_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*\Z")
# CELERY covers CELERYD, CELERYBEAT and CELERY_.
_OLD_PREFIXES = ("CELERY", "BROKER")
# How alike (difflib ratio) an unknown name and a setting name must be for the unknown one
# to count as a typo.  Typos score >= 0.9 ("task_serialiser"/"task_serializer" 0.93,
# "BROKER_ULR"/"BROKER_URL" 0.9); unrelated user names that merely share words stay below
# ("secret_key"/"security_key" 0.82, "broker_pool"/"worker_pool" 0.82).
_TYPO_SIMILARITY = 0.85


def closest_setting(name: str) -> str | None:
    """The setting name an unknown ``name`` is probably a misspelling of, else None.

    Only ``lower_case`` names (compared with the new names) and ``UPPER_CASE`` names
    starting with ``CELERY``/``BROKER`` (compared with the old and ``CELERY_`` names) are
    considered; the suggestion is spelt in the same style as ``name``.
    """
    if not isinstance(name, str) or canonical_name(name) is not None:
        return None
    pool: Iterable[str]
    if _LOWER_NAME.match(name):
        pool = SETTINGS
    elif _UPPER_NAME.match(name) and name.startswith(_OLD_PREFIXES):
        pool = [*OLD_TO_NEW, *_NAMESPACED]
    else:
        return None
    candidate = closest(name, pool)
    if candidate is None:
        return None
    if difflib.SequenceMatcher(None, name, candidate).ratio() < _TYPO_SIMILARITY:
        return None
    return candidate


# -- warnings that point at the user's configuration ----------------------------------------

#: Where a warning about a setting points: (file name, line number).
Where = tuple[str, int]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Settings already reported by SettingNotImplementedWarning in this process.
_WARNED: set[str] = set()


def _caller() -> Where:
    """The innermost frame outside celeriac: the line that set the setting."""
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown>", 0
    return frame.f_code.co_filename, frame.f_lineno


def _source_file(obj: Any) -> str | None:
    """The file that defines the configuration ``obj`` (a module, a class of one, or
    Django's settings), unless that is one of celeriac's own files."""
    module: Any = None
    try:
        if isinstance(obj, types.ModuleType):
            module = obj
        elif isinstance(obj, type):
            module = sys.modules.get(obj.__module__)
        elif isinstance(getattr(obj, "SETTINGS_MODULE", None), str):
            module = sys.modules.get(obj.SETTINGS_MODULE)  # Django's settings object
    except Exception:  # Django raises while its settings are not configured
        return None
    filename = getattr(module, "__file__", None)
    if not isinstance(filename, str) or filename.startswith(_PACKAGE_DIR):
        return None
    return filename


def _assignment(filename: str, spelt: str) -> Where | None:
    """The line of ``filename`` that assigns ``spelt``, if there is one."""
    pattern = re.compile(rf"\s*{re.escape(spelt)}\s*(?::[^=]*)?=(?!=)")
    for lineno, line in enumerate(linecache.getlines(filename), start=1):
        if pattern.match(line):
            return filename, lineno
    return None


def _fixed(where: Where) -> Callable[[], Where]:
    return lambda: where


def _warn_at(message: str, category: type[Warning], where: Where) -> None:
    filename, lineno = where
    warnings.warn_explicit(message, category, filename, lineno)


def _warn_if_typo(name: str, spelt: str, where: Callable[[], Where]) -> None:
    suggestion = closest_setting(name)
    if suggestion is None:
        return
    if spelt != name and spelt.lower().endswith(name):
        # Namespaced (``CELERY_BROKER_ULR`` read as ``broker_ulr``): suggest in that style.
        suggestion = spelt[: len(spelt) - len(name)] + suggestion.upper()
    _warn_at(
        f"Unknown setting {spelt!r}; did you mean {suggestion!r}?",
        UnknownSettingWarning,
        where(),
    )


def _warn_if_ignored(setting: Setting, spelt: str, value: Any, where: Callable[[], Where]) -> None:
    if setting.name in _WARNED or not setting.ignores(value):
        return
    _WARNED.add(setting.name)
    _warn_at(
        f"Setting {spelt!r} has no effect in celeriac (unsupported): {setting.note} "
        "(see docs/configuration.md)",
        SettingNotImplementedWarning,
        where(),
    )


def _copy_value(value: Any) -> Any:
    return copy.copy(value) if isinstance(value, dict | list | set) else value


def _pairs(other: Any) -> list[tuple[str, Any]]:
    if other is None:
        return []
    if isinstance(other, Mapping):
        return list(other.items())
    if hasattr(other, "keys"):
        return [(key, other[key]) for key in other.keys()]  # noqa: SIM118
    return [(key, value) for key, value in other]


class Settings(MutableMapping[str, Any]):
    """The configuration of an app: every setting, with defaults, under any spelling.

    Keys are the new names (``task_serializer``); old names (``CELERY_TASK_SERIALIZER``)
    and the ``CELERY_``-prefixed names read and write the same value, by key or by
    attribute (``settings.broker_url``).  Names of no known setting are stored as given;
    setting one that looks like a misspelt setting warns (:class:`UnknownSettingWarning`).

    ``del settings[name]`` puts a known setting back to its default (it stays a key);
    ``clear()`` puts every setting back and drops unknown names.
    """

    _values: dict[str, Any]
    _changed: dict[str, None]  # ordered set of names the user set
    #: bumped by every change made through this mapping (lets callers cache derived values)
    _version: int = 0

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self._values = {name: s.fresh_default() for name, s in SETTINGS.items()}
        self._changed = {}
        if initial is not None:
            self._update(_pairs(initial))

    # -- storage -------------------------------------------------------------------------

    def _store(
        self,
        key: str,
        value: Any,
        spelt: str | None = None,
        where: Callable[[], Where] = _caller,
    ) -> None:
        """Set ``key``; warnings name it as ``spelt`` (default: ``key``) and point at
        ``where()`` (default: the first caller outside celeriac)."""
        if not isinstance(key, str):
            raise TypeError(f"setting names are strings, not {type(key).__name__}")
        name = canonical_name(key)
        if name is None:
            name = key
            if key not in self._values:
                _warn_if_typo(key, spelt or key, where)
        else:
            _warn_if_ignored(SETTINGS[name], spelt or key, value, where)
        self._values[name] = value
        self._version += 1
        self._changed.pop(name, None)  # keep the most recent change last (popitem)
        self._changed[name] = None

    def _update(self, pairs: list[tuple[str, Any]]) -> None:
        # When one call spells a setting both ways, the new spelling wins.
        spelt_new = {key for key, _ in pairs if key in SETTINGS}
        for key, value in pairs:
            if key not in SETTINGS and canonical_name(key) in spelt_new:
                continue
            self._store(key, value)

    @staticmethod
    def _name(key: object) -> str:
        if not isinstance(key, str):
            raise KeyError(key)
        return canonical_name(key) or key

    # -- mapping protocol ------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[self._name(key)]
        except KeyError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        self._store(key, value)

    def __delitem__(self, key: str) -> None:
        name = self._name(key)
        setting = SETTINGS.get(name)
        if setting is not None:
            self._values[name] = setting.fresh_default()
        elif name in self._values:
            del self._values[name]
        else:
            raise KeyError(key)
        self._version += 1
        self._changed.pop(name, None)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (canonical_name(key) or key) in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def update(self, other: Any = None, /, **kwargs: Any) -> None:
        """Set many settings from a mapping, pairs and/or keywords, by new or old names.

        When both spellings of one setting are given, the new spelling wins.
        """
        self._update([*_pairs(other), *kwargs.items()])

    def update_from_object(self, obj: Any, namespace: str | None = None) -> None:
        """Set the settings :func:`read_object` finds in ``obj``.

        Warnings name each setting as ``obj`` spells it and point at the line of the
        configuration's file that assigns it (else at the caller outside celeriac).
        """
        filename = _source_file(obj)
        for name, (spelt, value) in _read(obj, namespace).items():
            found = _assignment(filename, spelt) if filename else None
            where = _caller if found is None else _fixed(found)
            self._store(name, value, spelt, where)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Set ``key`` to ``default`` unless the user already set it; return its value.

        Unlike a plain dict, a known setting still at its built-in default counts as unset.
        """
        name = self._name(key)
        if name in self._changed:
            return self._values[name]
        self._store(key, default)
        return default

    def clear(self) -> None:
        """Put every setting back to its default and forget unknown names."""
        self._values = {name: s.fresh_default() for name, s in SETTINGS.items()}
        self._changed = {}
        self._version += 1

    def popitem(self) -> tuple[str, Any]:
        """Undo the most recent change: return ``(name, value)`` and restore the default."""
        if not self._changed:
            raise KeyError("popitem(): no setting was changed")
        name = next(reversed(self._changed))
        value = self._values[name]
        del self[name]
        return name, value

    # -- extras ----------------------------------------------------------------------------

    def changes(self) -> dict[str, Any]:
        """The settings the user set (by new name; unknown names as given), in order set."""
        return {name: self._values[name] for name in self._changed}

    def is_set(self, key: str) -> bool:
        """Whether the user set ``key`` (under any spelling), even to its default value."""
        return isinstance(key, str) and (canonical_name(key) or key) in self._changed

    def copy(self) -> Settings:
        """An independent copy (containers are copied one level deep)."""
        new = type(self).__new__(type(self))
        new._values = {name: _copy_value(value) for name, value in self._values.items()}
        new._changed = dict(self._changed)
        return new

    __copy__ = copy

    # -- attribute access ------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: settings, or a real AttributeError.
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]  # the common case: a new lowercase name
        except KeyError:
            pass
        try:
            return self[name]
        except KeyError:
            suggestion = closest_setting(name)
            hint = f"; did you mean {suggestion!r}?" if suggestion else ""
            raise AttributeError(f"no setting {name!r}{hint}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self._store(name, value)

    def __delattr__(self, name: str) -> None:
        if name.startswith("_"):
            object.__delattr__(self, name)
            return
        try:
            del self[name]
        except KeyError:
            raise AttributeError(f"no setting {name!r}") from None

    def __dir__(self) -> Iterable[str]:
        return sorted({*super().__dir__(), *(k for k in self._values if k.isidentifier())})

    def __repr__(self) -> str:
        # Values may hold passwords (broker_url): show names only.
        return f"<{type(self).__name__}: {len(self._changed)} changed: {list(self._changed)}>"


# -- reading configuration objects ------------------------------------------------------


def _home_module(obj: Any) -> str | None:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    if isinstance(obj, type):
        return obj.__module__
    return type(obj).__module__


def _is_import(key: str, value: Any, home: str | None) -> bool:
    """Whether ``value`` is a class/function imported under its own name (``from datetime
    import timezone``) rather than a value the configuration assigned."""
    if not isinstance(value, type | types.FunctionType | types.BuiltinFunctionType):
        return False
    return getattr(value, "__name__", None) == key and getattr(value, "__module__", None) != home


def _members(obj: Any) -> Iterator[tuple[str, Callable[[], Any]]]:
    if isinstance(obj, Mapping):
        for key in list(obj):
            if isinstance(key, str):
                yield key, functools.partial(obj.__getitem__, key)
        return
    for key in dir(obj):
        if not key.startswith("_"):
            yield key, functools.partial(getattr, obj, key)


# Precedence when one source spells a setting several ways (highest wins).
_RANK_OLD, _RANK_PREFIXED, _RANK_NEW, _RANK_NAMESPACE = 1, 2, 3, 4


def read_object(obj: Any, namespace: str | None = None) -> dict[str, Any]:
    """The settings in a module, class, object or mapping: ``{new name: value}``.

    Known settings are read under any spelling.  Without ``namespace``, other public names
    that are all lowercase or all uppercase are returned too, as given (a mapping's string
    keys all are), so that typos can be reported; modules, callables and names imported
    into a module are skipped.  With ``namespace='CELERY'`` (Django style) only
    ``CELERY_``-prefixed names (prefix removed, rest lowercased: ``CELERY_BROKER_URL`` ->
    ``broker_url``) and names of known settings are read.  When a setting is spelt several
    ways the namespaced, then the new, then the ``CELERY_``-prefixed, then the old spelling
    wins.
    """
    return {name: value for name, (_spelt, value) in _read(obj, namespace).items()}


def _read(obj: Any, namespace: str | None) -> dict[str, tuple[str, Any]]:
    """:func:`read_object`, keeping how ``obj`` spells each name: ``{name: (spelt, value)}``."""
    is_mapping = isinstance(obj, Mapping)
    home = None if is_mapping else _home_module(obj)
    prefix = f"{namespace.upper().rstrip('_')}_" if namespace else None

    found: dict[str, tuple[int, str, Any]] = {}
    unknown: dict[str, tuple[str, Any]] = {}
    for key, get in _members(obj):
        rank = 0
        name: str | None = None
        if prefix is not None and key.upper().startswith(prefix) and len(key) > len(prefix):
            rest = key[len(prefix) :].lower()
            if rest in SETTINGS:
                name, rank = rest, _RANK_NAMESPACE
            elif (canon := canonical_name(key)) is not None:
                name, rank = canon, (_RANK_OLD if key in OLD_TO_NEW else _RANK_PREFIXED)
            else:
                name = rest
        else:
            canon = canonical_name(key)
            if canon is not None:
                name = canon
                if key == canon:
                    rank = _RANK_NEW
                else:
                    rank = _RANK_OLD if key in OLD_TO_NEW else _RANK_PREFIXED
            elif prefix is None and (is_mapping or key.islower() or key.isupper()):
                name = key
        if name is None:
            continue
        try:
            value = get()
        except AttributeError:
            continue
        except Exception:
            # A property of something that is no setting failed (Django raises for an
            # empty SECRET_KEY): that is not ours to report.
            if rank:
                raise
            continue
        if not is_mapping and (isinstance(value, types.ModuleType) or _is_import(key, value, home)):
            continue
        if rank:
            if name not in found or found[name][0] <= rank:
                found[name] = (rank, key, value)
        elif is_mapping or not callable(value):
            unknown[name] = (key, value)

    result = {name: item for name, item in unknown.items() if name not in found}
    result.update((name, (spelt, value)) for name, (_rank, spelt, value) in found.items())
    return result


def _import_module(module_name: str, source: str) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        error: ImportError = exc
        cwd = os.getcwd()
        # Like Celery, find a config module in the current directory even when that is not
        # on sys.path (console scripts).
        if exc.name == module_name.partition(".")[0] and cwd not in sys.path:
            sys.path.insert(0, cwd)
            try:
                return importlib.import_module(module_name)
            except ModuleNotFoundError as retry_exc:
                if retry_exc.name != exc.name:
                    error = retry_exc
            except ImportError as retry_exc:
                error = retry_exc
            finally:
                try:
                    sys.path.remove(cwd)
                except ValueError:
                    pass
        raise ImproperlyConfigured(f"Cannot load configuration {source!r}: {error}") from error
    except ImportError as exc:
        raise ImproperlyConfigured(f"Cannot load configuration {source!r}: {exc}") from exc


def _attribute(obj: Any, path: str, source: str) -> Any:
    for part in path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ImproperlyConfigured(f"Cannot load configuration {source!r}: {exc}") from exc
    return obj


def load_source(source: Any) -> Any:
    """Resolve what ``config_from_object`` was given.

    An object is returned as it is.  A string names a module (``'proj.celeryconfig'``) or
    an attribute of one (``'proj.config:Config'``, ``'proj.config.Config'``,
    ``'django.conf:settings'``).  Import failures raise :class:`ImproperlyConfigured`.
    """
    if not isinstance(source, str):
        return source
    path = source.strip()
    if not path or path.startswith((".", ":")):
        raise ImproperlyConfigured(f"Cannot load configuration {source!r}: not a module path")
    if ":" in path:
        module_name, _, attr = path.partition(":")
        module = _import_module(module_name, source)
        return _attribute(module, attr, source) if attr else module
    try:
        return _import_module(path, source)
    except ImproperlyConfigured as exc:
        missing = getattr(exc.__cause__, "name", None)
        module_name, _, attr = path.rpartition(".")
        # Only "this very path is not a module" means "try it as module.attribute".
        if missing != path or not module_name:
            raise
    module = _import_module(module_name, source)
    return _attribute(module, attr, source)


# -- text to values -----------------------------------------------------------------------

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})
_NONE = frozenset({"none", "null"})


def _bad(name: str, kind: str, value: str, detail: str = "") -> ImproperlyConfigured:
    extra = f" ({detail})" if detail else ""
    return ImproperlyConfigured(f"Setting {name!r} expects {kind}, got {value!r}{extra}")


def coerce(name: str, value: str) -> Any:
    """Turn text (an environment variable, a command-line option) into ``name``'s type.

    bool: ``true/false``, ``1/0``, ``yes/no``, ``on/off`` (any case).  int, float: numbers.
    list: comma-separated text (or a JSON list).  dict: a JSON object.  bytes: UTF-8.
    any: JSON if it parses, else the text.  ``none``/``null`` give None for every type but
    str; text for an unknown name, or a value that is not a string, is returned unchanged.
    Raises :class:`ImproperlyConfigured` for text the type cannot take.
    """
    canon = canonical_name(name)
    if canon is None or not isinstance(value, str):
        return value
    kind = SETTINGS[canon].type
    text = value.strip()
    if kind == "str":
        return value
    if text.lower() in _NONE:
        return None
    if kind == "bool":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _bad(canon, "a boolean (true/false, 1/0, yes/no, on/off)", value)
    if kind == "int":
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise _bad(canon, "an integer", value) from None
    if kind == "float":
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise _bad(canon, "a number", value) from None
    if kind == "list":
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                raise _bad(canon, "a list", value, str(exc)) from None
            if not isinstance(parsed, list):
                raise _bad(canon, "a list", value)
            return parsed
        return [item.strip() for item in text.split(",") if item.strip()]
    if kind == "dict":
        if not text:
            return None
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise _bad(canon, "a JSON object", value, str(exc)) from None
        if not isinstance(parsed, dict):
            raise _bad(canon, "a JSON object", value)
        return parsed
    if kind == "bytes":
        return value.encode()
    # "any"
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return value
