"""Every error celeriac raises, in one tree.

::

    CeleriacError
    ├── ImproperlyConfigured            bad or missing configuration
    ├── NotRegistered (KeyError)        a task name no registry knows
    ├── AlreadyRegistered
    ├── TaskError                       errors about one task's run
    │   ├── Retry                       raised by Task.retry() to end the run
    │   ├── Ignore                      end the run, store no state
    │   ├── Reject                      end the run, reject the message
    │   ├── MaxRetriesExceededError     retry budget spent
    │   ├── TaskRevokedError            the task was revoked or expired
    │   │   └── Terminated              revoke(terminate=True) stopped it while it ran
    │   ├── InvalidTaskError            a message that is not a task
    │   ├── WorkerLostError             the process running it died
    │   └── TimeLimitExceeded           hard time limit reached
    ├── SerializationError
    │   ├── ContentDisallowed           content type not in accept_content
    │   ├── EncodeError                 an argument or result cannot be encoded
    │   └── DecodeError                 a payload cannot be decoded
    ├── TransportError                  broker or backend unreachable / failing
    │   └── BrokerConnectionError
    ├── TimeoutError (builtins.TimeoutError)   AsyncResult.get(timeout=) expired
    └── ChordError                      a chord member failed

    CeleriacWarning (UserWarning)
    ├── UnknownSettingWarning           a setting name celeriac does not know (a typo?)
    └── SettingNotImplementedWarning    a setting celeriac accepts but does not act on

    SoftTimeLimitExceeded  derives from Exception only (like Celery), so a
    task's own ``except Exception`` blocks can catch it and clean up.

    ColdShutdown  derives from BaseException only: the worker raises it into a task
    running in its own thread (solo pool) on cold shutdown, and it is the one exception
    the task runner lets through (everything else a task raises becomes its outcome).
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any


class CeleriacError(Exception):
    """Base class of every celeriac error."""


class ImproperlyConfigured(CeleriacError):
    """Configuration is missing or wrong."""


class NotRegistered(CeleriacError, KeyError):
    """A task name no registry knows."""

    def __str__(self) -> str:
        return f"Task of kind {self.args[0]!r} never registered, please make sure it's imported."


class AlreadyRegistered(CeleriacError):
    """A task name registered twice with different functions."""


class TaskError(CeleriacError):
    """Base of errors about one task's run."""


class Retry(TaskError):
    """Raised by :meth:`Task.retry` to end the current run; the task runs again later."""

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | str | None = None,
        when: float | datetime | None = None,
        is_eager: bool = False,
        sig: Any = None,
        **kwargs: Any,
    ) -> None:
        self.message = message
        self.exc = exc
        self.excs = exc if isinstance(exc, str) or exc is None else _repr_or_name(exc)
        self.when = when
        self.is_eager = is_eager
        self.sig = sig
        super().__init__(message, exc, when)

    def humanize(self) -> str:
        if isinstance(self.when, (int, float)):
            return f"in {self.when}s"
        return f"at {self.when}"

    def __str__(self) -> str:
        if self.message:
            return self.message
        if self.excs:
            return f"Retry {self.humanize()}: {self.excs}"
        return f"Retry {self.humanize()}"

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.message, self.excs, self.when)


RetryTaskError = Retry


def _repr_or_name(value: object) -> str:
    """``repr(value)``, or its type name when that repr raises (a task's own objects)."""
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


class Ignore(TaskError):
    """End the run without storing a state."""


class Reject(TaskError):
    """End the run and reject the message (``requeue=True`` puts it back)."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)


class MaxRetriesExceededError(TaskError):
    """The task's retry budget is spent."""

    def __init__(self, *args: Any, task_args: Any = None, task_kwargs: Any = None) -> None:
        self.task_args = task_args
        self.task_kwargs = task_kwargs
        super().__init__(*args)


class TaskRevokedError(TaskError):
    """The task was revoked (or expired) before it ran."""


class Terminated(TaskRevokedError):
    """Raised inside a task's thread by ``revoke(terminate=True)`` (threads and solo pools).

    Like the soft time limit it lands at the task's next Python bytecode, so a task can catch
    it (stopping is cooperative there); if it escapes, the task's outcome is REVOKED. On prefork
    the child process is signalled instead and this is never raised.
    """


class InvalidTaskError(TaskError):
    """A message that cannot be turned into a task call."""


class WorkerLostError(TaskError):
    """The process running the task exited before it finished."""


class TimeLimitExceeded(TaskError):
    """The task's hard time limit was reached and its process was killed."""


class SoftTimeLimitExceeded(Exception):
    """Raised inside a task when its soft time limit is reached."""


class ColdShutdown(BaseException):
    """Raised into a task running in the worker's own thread (solo pool) on cold shutdown.

    Not an Exception, so a task's ``except Exception`` does not stop it, and the task runner
    passes it through untouched (every other exception becomes the task's outcome).
    """


class SerializationError(CeleriacError):
    """Base of encoding and decoding errors."""


class ContentDisallowed(SerializationError):
    """The payload's content type is not in ``accept_content``."""


class EncodeError(SerializationError, TypeError):
    """A value cannot be encoded with the chosen serializer."""


class DecodeError(SerializationError, ValueError):
    """A payload cannot be decoded."""


class TransportError(CeleriacError):
    """A broker or result backend failed or cannot be reached."""


class BrokerConnectionError(TransportError, ConnectionError):
    """The broker cannot be reached."""


class TimeoutError(CeleriacError, builtins.TimeoutError):
    """``AsyncResult.get(timeout=...)`` ran out of time."""


class ChordError(CeleriacError):
    """A chord header member failed, so the chord body cannot run."""


class IncompleteStream(CeleriacError):
    """Kept for Celery compatibility."""


class QueueNotFound(ImproperlyConfigured, KeyError):
    """A task routed to a queue the worker was told not to create."""


class CeleriacWarning(UserWarning):
    """Base of celeriac's warnings."""


class UnknownSettingWarning(CeleriacWarning):
    """A setting name celeriac does not know (probably a typo)."""


class SettingNotImplementedWarning(CeleriacWarning):
    """A setting given a value celeriac does not act on (its status is ``unsupported``).

    Sent once per setting per process, naming the setting as the configuration spells it
    and pointing at the configuration's file.
    """


CeleryError = CeleriacError

__all__ = [
    "AlreadyRegistered",
    "BrokerConnectionError",
    "CeleriacError",
    "CeleriacWarning",
    "CeleryError",
    "ChordError",
    "ColdShutdown",
    "ContentDisallowed",
    "DecodeError",
    "EncodeError",
    "Ignore",
    "ImproperlyConfigured",
    "IncompleteStream",
    "InvalidTaskError",
    "MaxRetriesExceededError",
    "NotRegistered",
    "QueueNotFound",
    "Reject",
    "Retry",
    "RetryTaskError",
    "SerializationError",
    "SettingNotImplementedWarning",
    "SoftTimeLimitExceeded",
    "TaskError",
    "TaskRevokedError",
    "Terminated",
    "TimeLimitExceeded",
    "TimeoutError",
    "TransportError",
    "UnknownSettingWarning",
    "WorkerLostError",
]
