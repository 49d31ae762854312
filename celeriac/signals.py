"""Signals with Celery's names: ``task_prerun``, ``task_success``, ``worker_ready``...

``signal.connect(receiver)`` (also usable as a decorator, with optional ``sender=``) and
``signal.send(sender, **kwargs)``. A receiver that raises is logged, never propagated, so a
broken handler cannot fail a task.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("celeriac.signals")

Receiver = Callable[..., Any]

#: bumped whenever any signal gains or loses a receiver: the middleware stack is rebuilt then,
#: so the signals middleware runs only for signals someone listens to
generation = 0


def _changed() -> None:
    global generation
    generation += 1


class Signal:
    def __init__(self, name: str, providing_args: set[str] | None = None) -> None:
        self.name = name
        self._receivers: list[tuple[Any, Any]] = []  # (ref-or-callable, sender)
        self._lock = threading.Lock()

    def connect(
        self,
        receiver: Receiver | None = None,
        *,
        sender: Any = None,
        weak: bool = False,
        dispatch_uid: Any = None,
    ) -> Any:
        def _connect(fun: Receiver) -> Receiver:
            ref: Any = weakref.WeakMethod(fun) if weak and hasattr(fun, "__self__") else fun
            with self._lock:
                if not any(r is ref or r == ref for r, _ in self._receivers):
                    self._receivers.append((ref, sender))
                    _changed()
            return fun

        if receiver is None:
            return _connect
        return _connect(receiver)

    def disconnect(self, receiver: Receiver, sender: Any = None) -> bool:
        with self._lock:
            before = len(self._receivers)
            self._receivers = [
                (r, s)
                for r, s in self._receivers
                if (r() if isinstance(r, weakref.WeakMethod) else r) != receiver
            ]
            if len(self._receivers) == before:
                return False
            _changed()
            return True

    @property
    def receivers(self) -> list[tuple[Any, Any]]:
        return list(self._receivers)

    def send(self, sender: Any = None, **named: Any) -> list[tuple[Receiver, Any]]:
        if not self._receivers:
            return []
        responses: list[tuple[Receiver, Any]] = []
        for ref, wanted in list(self._receivers):
            fun = ref() if isinstance(ref, weakref.WeakMethod) else ref
            if fun is None:
                continue
            if wanted is not None and wanted != sender and getattr(sender, "name", None) != wanted:
                continue
            try:
                responses.append((fun, fun(signal=self, sender=sender, **named)))
            except Exception as exc:
                logger.exception("Signal handler %r for %s raised: %r", fun, self.name, exc)
                responses.append((fun, exc))
        return responses

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


before_task_publish = Signal("before_task_publish")
after_task_publish = Signal("after_task_publish")
task_received = Signal("task_received")
task_prerun = Signal("task_prerun")
task_postrun = Signal("task_postrun")
task_success = Signal("task_success")
task_retry = Signal("task_retry")
task_failure = Signal("task_failure")
task_revoked = Signal("task_revoked")
task_rejected = Signal("task_rejected")
task_unknown = Signal("task_unknown")
task_internal_error = Signal("task_internal_error")
celeryd_init = Signal("celeryd_init")
celeryd_after_setup = Signal("celeryd_after_setup")
import_modules = Signal("import_modules")
worker_init = Signal("worker_init")
worker_process_init = Signal("worker_process_init")
worker_process_shutdown = Signal("worker_process_shutdown")
worker_ready = Signal("worker_ready")
worker_shutdown = Signal("worker_shutdown")
worker_shutting_down = Signal("worker_shutting_down")
heartbeat_sent = Signal("heartbeat_sent")
beat_init = Signal("beat_init")
beat_embedded_init = Signal("beat_embedded_init")
setup_logging = Signal("setup_logging")
after_setup_logger = Signal("after_setup_logger")
after_setup_task_logger = Signal("after_setup_task_logger")
user_preload_options = Signal("user_preload_options")
