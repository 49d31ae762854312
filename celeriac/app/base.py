"""The application: configuration, the task registry, sending tasks, reading results."""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Concatenate, Literal, overload

from celeriac import _state, canvas, config, signals, states, workflow
from celeriac._types import TaskParams, TaskReturn
from celeriac._utils.ids import new_id
from celeriac._utils.imports import symbol_by_name
from celeriac._utils.pid import PROCESS
from celeriac._utils.text import closest
from celeriac._utils.timeutils import maybe_delta
from celeriac._utils.zones import zone
from celeriac.app import sending
from celeriac.app.sending import PublishSettings, as_list
from celeriac.backends import BACKENDS, ResultBackend, backend_class
from celeriac.brokers import Broker, broker_class, scheme_of
from celeriac.control import Control
from celeriac.coordination import CoordinationStore, open_store
from celeriac.events import Connection, Events
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured
from celeriac.message import Envelope
from celeriac.middleware import MiddlewareStack, load_middleware
from celeriac.registry import TaskRegistry
from celeriac.result import AsyncResult
from celeriac.result import GroupResult as _GroupResult
from celeriac.result_meta import build_meta, decode_meta, encode_meta
from celeriac.send_options import DEFAULT_SEND, SendOptions
from celeriac.serialization import accepted_types
from celeriac.task import Context, Task, autoretry_wrapper
from celeriac.trace import apply_eagerly

DEFAULT_SQLITE_URL = "sqlite:///celeriac.db"

_TASK_OPTION_ATTRS = frozenset(
    name for name in vars(Task) if not name.startswith("_") and not callable(vars(Task)[name])
)


def gen_task_name(app: Celery, name: str, module_name: str) -> str:
    """``module.function``, with ``__main__`` replaced by the app's main module name."""
    if module_name == "__main__" and app.main:
        module_name = app.main
    return f"{module_name}.{name}"


@dataclass(frozen=True, slots=True)
class TraceSettings:
    """The settings running and decoding tasks read, looked up once per configuration change."""

    track_started: bool
    result_extended: bool
    result_serializer: str
    accept: frozenset[str]
    result_accept: frozenset[str]


class _AppSignal(signals.Signal):
    """An app-level signal (``app.on_after_configure.connect``)."""


def _check_keywords(kwargs: Mapping[str, Any]) -> None:
    """``Celery(name, **settings)``: a keyword that is neither a parameter nor a setting name
    (in any spelling) raises TypeError, as any Python call would, with the closest name.
    Celery stores any keyword in ``conf``, so ``borker=`` was silently ignored (decision 0024).
    """
    for key in kwargs:
        if config.canonical_name(key) is None:
            hint = closest(key, [*_INIT_PARAMETERS, *config.SETTINGS])
            did_you_mean = f"; did you mean {hint!r}?" if hint else ""
            raise TypeError(f"Celery() got an unexpected keyword argument {key!r}{did_you_mean}")


class Celery:
    """A celeriac application (named ``Celery`` so imports are the only change)."""

    #: the base Task class for tasks of this app (a subclass bound to this app)
    task_cls: type[Task] = Task
    #: whether ``on_after_configure`` was sent (beat sends it at start-up when it was not)
    _after_configure_sent: bool = False

    def __init__(
        self,
        main: str | None = None,
        loader: Any = None,
        backend: str | None = None,
        amqp: Any = None,
        events: Any = None,
        log: Any = None,
        control: Any = None,
        set_as_current: bool = True,
        tasks: Any = None,
        broker: str | None = None,
        include: Sequence[str] | None = None,
        changes: Mapping[str, Any] | None = None,
        config_source: Any = None,
        fixups: Any = None,
        task_cls: type[Task] | str | None = None,
        autofinalize: bool = True,
        namespace: str | None = None,
        strict_typing: bool = True,
        **kwargs: Any,
    ) -> None:
        _check_keywords(kwargs)
        self.main = main
        self.namespace = namespace
        self.strict_typing = strict_typing
        self.conf = config.Settings()
        self._tasks = TaskRegistry()
        self._finalized = False
        self._finalize_lock = threading.RLock()
        self._autodiscover: list[tuple[Any, str]] = []
        self._broker: Broker | None = None
        self._backend: ResultBackend | None = None
        self._coordination: CoordinationStore | None = None
        self._lock = threading.Lock()
        self._pid = PROCESS.pid
        self._trace_settings: tuple[int, TraceSettings] | None = None
        self._middleware: tuple[int, int, MiddlewareStack] | None = None
        self._publish_settings: tuple[int, PublishSettings] | None = None
        if task_cls is not None:
            self.task_cls = symbol_by_name(task_cls)
        self.on_configure = _AppSignal("on_configure")
        self.on_after_configure = _AppSignal("on_after_configure")
        self.on_after_finalize = _AppSignal("on_after_finalize")
        self.on_after_fork = _AppSignal("on_after_fork")
        self.hostname = f"celeriac@{socket.gethostname()}"
        if config_source is not None:
            self.config_from_object(config_source)
        if changes:
            self.conf.update(changes)
        if broker:
            self.conf.broker_url = broker
        if backend:
            self.conf.result_backend = backend
        if include:
            self.conf.include = list(self.conf.include or []) + list(include)
        for key, value in kwargs.items():
            self.conf[key] = value
        self.Task: type[Task] = type(
            "Task", (self.task_cls,), {"_app": self, "__module__": __name__}
        )
        self.control = Control(self)
        _state.register_app(self)
        if set_as_current:
            _state.set_current_app(self)
        for finalizer in _state.app_finalizers():
            finalizer(self)

    # -- configuration ----------------------------------------------------------------------------
    def config_from_object(
        self, obj: Any, silent: bool = False, force: bool = False, namespace: str | None = None
    ) -> None:
        """Load settings from a module path, ``'module:attr'``, ``'django.conf:settings'``, a
        class or an object; with ``namespace='CELERY'`` only ``CELERY_``-prefixed names."""
        try:
            source = config.load_source(obj)
        except ImproperlyConfigured:
            if silent:
                return
            raise
        namespace = namespace if namespace is not None else self.namespace
        self.namespace = namespace
        self._from_django = isinstance(obj, str) and obj.startswith("django.conf")
        self.conf.update_from_object(source, namespace=namespace)
        self._after_configure_sent = True
        self.on_after_configure.send(sender=self, source=source)

    def ensure_configured(self) -> None:
        """Send ``on_after_configure`` once if ``config_from_object`` never did, then finalize:
        runtimes (worker, beat) call this at start so users' hooks (``add_periodic_task``...)
        have run."""
        if not self._after_configure_sent:
            self._after_configure_sent = True
            self.on_after_configure.send(sender=self, source=self.conf)
        self.finalize()

    def config_from_envvar(
        self, variable_name: str, silent: bool = False, force: bool = False
    ) -> None:
        module_name = os.environ.get(variable_name)
        if not module_name:
            if silent:
                return
            raise ImproperlyConfigured(f"Environment variable {variable_name!r} is not set")
        self.config_from_object(module_name, silent=silent, force=force)

    def publish_settings(self) -> PublishSettings:
        cached = self._publish_settings
        version = self.conf._version
        if cached is not None and cached[0] == version:
            return cached[1]
        conf = self.conf
        settings = PublishSettings(
            always_eager=bool(conf.task_always_eager),
            routes=conf.task_routes,
            default_queue=str(conf.task_default_queue),
            default_priority=conf.task_default_priority,
            ignore_result=bool(conf.task_ignore_result),
            serializer=str(conf.task_serializer),
            compression=conf.task_compression or None,
            local_eta_tz=UTC if conf.enable_utc else self.timezone,
            retry=(
                sending.RetryPolicy.from_mapping(conf.task_publish_retry_policy)
                if conf.task_publish_retry
                else None
            ),
            reply_to_caller=self._replies_to_caller(),
        )
        self._publish_settings = (version, settings)
        return settings

    @property
    def middleware(self) -> MiddlewareStack:
        """The middleware stack: the built-ins, then ``worker_middleware``'s entries (see
        :mod:`celeriac.middleware`); built again when the configuration changes."""
        cached = self._middleware
        version, generation = self.conf._version, signals.generation
        if cached is not None and cached[0] == version and cached[1] == generation:
            return cached[2]
        # Instances are made once per configuration; the stack is rebuilt when a signal gains
        # or loses a receiver (the signals middleware runs only for heard signals).
        if cached is None or cached[0] != version:
            instances = load_middleware(self.conf.get("worker_middleware"), self)
        else:
            instances = list(cached[2])
        stack = MiddlewareStack(instances)
        self._middleware = (version, generation, stack)
        return stack

    def trace_settings(self) -> TraceSettings:
        """Settings the tracer reads for every task, looked up once per configuration change."""
        cached = self._trace_settings
        version = self.conf._version
        if cached is not None and cached[0] == version:
            return cached[1]
        conf = self.conf
        settings = TraceSettings(
            track_started=bool(conf.task_track_started),
            result_extended=bool(conf.result_extended),
            result_serializer=str(conf.result_serializer),
            accept=accepted_types(conf.accept_content),
            result_accept=accepted_types(conf.result_accept_content or conf.accept_content),
        )
        self._trace_settings = (version, settings)
        return settings

    def add_defaults(self, fun: Mapping[str, Any] | Callable[[], Mapping[str, Any]]) -> None:
        values = fun() if callable(fun) else fun
        for key, value in values.items():
            self.conf.setdefault(key, value)

    @property
    def timezone(self) -> tzinfo:
        """The ``timezone`` setting's zone (UTC when unset); a name of no known zone raises
        ImproperlyConfigured with the closest name."""
        name = self.conf.timezone
        return zone(name) if name else UTC

    def now(self) -> datetime:
        return datetime.now(self.timezone)

    @property
    def result_expires_s(self) -> float | None:
        return maybe_delta(self.conf.result_expires)

    # -- tasks ------------------------------------------------------------------------------------
    @overload
    def task(self, fun: Callable[TaskParams, TaskReturn], /) -> Task[TaskParams, TaskReturn]: ...

    @overload
    def task(
        self, *, bind: Literal[True], **opts: Any
    ) -> Callable[
        [Callable[Concatenate[Any, TaskParams], TaskReturn]], Task[TaskParams, TaskReturn]
    ]: ...

    @overload
    def task(
        self, *, bind: Literal[False] = False, **opts: Any
    ) -> Callable[[Callable[TaskParams, TaskReturn]], Task[TaskParams, TaskReturn]]: ...

    @overload
    def task(self, *, bind: bool, **opts: Any) -> Callable[[Callable[..., Any]], Task]: ...

    def task(self, *args: Any, **opts: Any) -> Any:
        """Decorator that turns a function into a task of this app: ``@app.task`` or
        ``@app.task(**options)``. With ``bind=True`` the function's first parameter is the task
        (``self``), which the typed signature of ``delay`` and calls leaves out."""
        opts.pop("shared", None)

        def decorate(fun: Callable[..., Any]) -> Task:
            return self._task_from_fun(fun, **opts)

        if len(args) == 1 and callable(args[0]) and not opts:
            return decorate(args[0])
        if args:
            raise TypeError("@task() takes keyword arguments only")
        return decorate

    def _task_from_fun(
        self,
        fun: Callable[..., Any],
        name: str | None = None,
        base: type[Task] | None = None,
        bind: bool = False,
        **options: Any,
    ) -> Task:
        name = name or gen_task_name(self, fun.__name__, fun.__module__)
        existing = self._tasks.get(name)
        if existing is not None and getattr(existing, "__wrapped__", None) is fun:
            return existing
        base_cls = base or self.Task
        unknown = set(options) - _TASK_OPTION_ATTRS - {"typing"}
        if unknown:
            raise TypeError(f"Unknown task option(s) for {name}: {', '.join(sorted(unknown))}")
        attrs: dict[str, Any] = {
            "name": name,
            "_app": self,
            "__doc__": fun.__doc__,
            "__module__": fun.__module__,
            "__qualname__": fun.__qualname__,
            "__wrapped__": fun,
            "_bind": bind,
            **options,
        }
        attrs["run"] = fun if bind else staticmethod(fun)
        cls = type(fun.__name__, (base_cls,), attrs)
        task: Task = cls()
        task.bind(self)
        if task.autoretry_for:
            # the wrapper shadows the class's run on this one instance
            task.__dict__["run"] = autoretry_wrapper(task, task.run)
        self._tasks.register(task)
        return task

    def register_task(self, task: Task | type[Task], **options: Any) -> Task:
        """Register a class-based task (``class MyTask(app.Task): def run(...)``)."""
        instance = task() if isinstance(task, type) else task
        if not instance.name:
            cls = type(instance)
            type(instance).name = gen_task_name(self, cls.__name__, cls.__module__)
        instance.bind(self)
        self._tasks.register(instance)
        return instance

    @property
    def tasks(self) -> TaskRegistry:
        self.finalize(auto=True)
        return self._tasks

    def finalize(self, auto: bool = False) -> None:
        """Import ``include``/``imports`` modules and autodiscovered task modules, once."""
        with self._finalize_lock:
            if self._finalized:
                return
            self._finalized = True
            self.import_default_modules()
            self.on_after_finalize.send(sender=self)

    def import_default_modules(self) -> None:
        for module in list(self.conf.imports or ()) + list(self.conf.include or ()):
            importlib.import_module(module)
        for packages, related_name in self._autodiscover:
            self._discover(packages, related_name)

    def autodiscover_tasks(
        self,
        packages: Iterable[str] | Callable[[], Iterable[str]] | None = None,
        related_name: str = "tasks",
        force: bool = False,
    ) -> None:
        """Import ``<package>.tasks`` for each package (Django: every installed app)."""
        if force or self._finalized:
            self._discover(packages, related_name)
        else:
            self._autodiscover.append((packages, related_name))

    def _discover(self, packages: Any, related_name: str) -> None:
        if packages is None:
            packages = self._django_apps()
        if callable(packages):
            packages = packages()
        for package in packages or ():
            module_name = f"{package}.{related_name}" if related_name else package
            try:
                importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name not in (module_name, package):
                    raise

    def _django_apps(self) -> list[str]:
        try:
            from django.apps import apps as django_apps
        except ImportError:
            return []
        return [config_.name for config_ in django_apps.get_app_configs()]

    def check_arguments(self, task: Task, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise TypeError now when ``args``/``kwargs`` don't fit the task's signature."""
        if not (self.strict_typing and task.typing):
            return
        cls = type(task)
        cached = cls.__dict__.get("_signature_cache")
        if cached is None:
            cached = _call_signature(cls, task)
            cls._signature_cache = cached  # type: ignore[attr-defined]
        if isinstance(cached, _Arity):
            if not kwargs and cached.required <= len(args) <= cached.total:
                return  # the common case, without inspect's bind()
            cached = cached.signature
        if isinstance(cached, inspect.Signature):
            try:
                cached.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{task.name}() {exc}") from None

    # -- transports -------------------------------------------------------------------------------
    def _check_fork(self) -> None:
        if self._pid != PROCESS.pid:
            # A forked child must not reuse the parent's sockets or file handles.
            self._broker = None
            self._backend = None
            self._coordination = None
            self._pid = PROCESS.pid

    @property
    def broker_url(self) -> str:
        return str(
            self.conf.broker_url
            or self.conf.broker_write_url
            or os.environ.get("CELERIAC_BROKER_URL")
            or os.environ.get("CELERY_BROKER_URL")
            or DEFAULT_SQLITE_URL
        )

    @property
    def broker(self) -> Broker:
        """The broker, created on first use (nothing connects at import time)."""
        self._check_fork()
        broker = self._broker
        if broker is None:
            with self._lock:
                if self._broker is None:
                    options = dict(self.conf.broker_transport_options or {})
                    lease_s = self.conf.get("worker_lease_seconds")
                    if lease_s:
                        options.setdefault("visibility_timeout", float(lease_s))
                    cls = broker_class(self.broker_url)
                    # Celery's settings this transport reads (e.g. task_queues on AMQP),
                    # handed over under their own names when the user set them.
                    for name in cls.app_settings:
                        if self.conf.is_set(name):
                            options.setdefault(name, self.conf[name])
                    created = cls(self.broker_url, transport_options=options)
                    created.rejected_sink = self._log_rejected
                    self._broker = created
                broker = self._broker
        return broker

    def connection(self, url: str | None = None, **options: Any) -> Connection:
        """Celery's ``app.connection()``: ``with app.connection() as conn:`` around
        ``app.events.Receiver(conn, ...)`` (a stand-in carrying this app's broker)."""
        return Connection(self.broker)

    connection_for_read = connection_for_write = connection

    @functools.cached_property
    def events(self) -> Events:
        """Celery's ``app.events``: ``Receiver``, ``State``, ``Dispatcher``
        (:mod:`celeriac.events`)."""
        return Events(self)

    @property
    def coordination(self) -> CoordinationStore:
        """Revokes, worker presence, beat's dedup keys and the rejected-message log
        (``coordination_url``; docs/decisions/0012), created on first use."""
        self._check_fork()
        store = self._coordination
        if store is None:
            in_process = not self.broker.shared_across_processes  # before the lock it takes
            with self._lock:
                if self._coordination is None:
                    self._coordination = open_store(
                        self.conf, self.broker_url, self.result_backend_url, in_process
                    )
                store = self._coordination
        return store

    def _log_rejected(self, items: Sequence[tuple[str, Envelope, str]]) -> None:
        """Where the broker's ``reject`` logs what it dead-letters."""
        self.coordination.record_rejected(items)

    @property
    def result_backend_url(self) -> str | None:
        url = (
            self.conf.result_backend
            or os.environ.get("CELERIAC_RESULT_BACKEND")
            or os.environ.get("CELERY_RESULT_BACKEND")
        )
        if url:
            return str(url)
        broker_url = self.broker_url
        if scheme_of(broker_url) in BACKENDS.builtins:
            # A built-in backend serves the broker's own URL: results live beside the messages.
            return broker_url
        return None

    @property
    def backend(self) -> ResultBackend:
        self._check_fork()
        backend = self._backend
        if backend is None:
            with self._lock:
                if self._backend is None:
                    url = self.result_backend_url
                    if url is None:
                        raise ImproperlyConfigured(
                            "No result backend is configured: set result_backend "
                            "(e.g. 'redis://localhost:6379/0' or 'sqlite:///results.db')"
                        )
                    self._backend = self._create_backend(url)
                backend = self._backend
        return backend

    def _replies_to_caller(self) -> bool:
        """Whether the configured result backend sends results back to the caller (rpc://),
        without creating it (nothing connects before first use)."""
        url = self.result_backend_url
        try:
            return bool(url) and backend_class(str(url)).replies_to_caller
        except Exception:  # e.g. a missing extra: said when the backend is first used instead
            return False

    def _create_backend(self, url: str) -> ResultBackend:
        options = dict(self.conf.result_backend_transport_options or {})
        cls = backend_class(url)
        # Celery's settings of this backend family (database_*, cache_backend_options), handed
        # over under their own names when the user set them.
        for name in getattr(cls, "app_settings", ()):
            if self.conf.is_set(name):
                options.setdefault(name, self.conf[name])
        if cls.replies_to_caller:
            # Results go back over the broker's connection to the caller (rpc://).
            settings = self.trace_settings()
            options.setdefault("broker_url", self.broker_url)
            if self.conf.is_set("broker_use_ssl"):
                options.setdefault("broker_use_ssl", self.conf.broker_use_ssl)
            options.setdefault("result_serializer", settings.result_serializer)
            options.setdefault("result_accept", sorted(settings.result_accept))
            options.setdefault("result_persistent", bool(self.conf.result_persistent))
            options.setdefault("result_expires_s", self.result_expires_s)
        return cls(url, options=options)

    def close(self) -> None:
        for thing in (self._broker, self._backend, self._coordination):
            if thing is not None:
                thing.close()
        self._broker = None
        self._backend = None
        self._coordination = None

    # -- sending ----------------------------------------------------------------------------------
    def prepare_message(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        send_options: SendOptions = DEFAULT_SEND,
        **options: Any,
    ) -> tuple[str, Envelope] | AsyncResult:
        """Build the message for one task call: (queue, envelope), or an EagerResult when
        ``task_always_eager`` runs the task here instead (see :mod:`celeriac.app.sending`)."""
        return sending.prepare_message(
            self, name, args, kwargs, send_options=send_options, **options
        )

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        result_cls: type[AsyncResult] | None = None,
        *,
        send_options: SendOptions = DEFAULT_SEND,
        **options: Any,
    ) -> AsyncResult:
        """Send a task by name (the worker that has it registered runs it). ``options`` are
        Celery's; ``send_options`` carries celeriac's own flags (:mod:`celeriac.send_options`)."""
        task_id = task_id or new_id()
        prepared = self.prepare_message(
            name, args, kwargs, task_id=task_id, send_options=send_options, **options
        )
        if isinstance(prepared, AsyncResult):
            return prepared
        queue, envelope = prepared
        middleware = self.middleware
        for hook in middleware.before_publish:
            hook(self, queue, envelope)
        broker = self.broker
        try:
            broker.publish(queue, envelope)
        except BrokerConnectionError as exc:
            sending.publish_again(self, exc, lambda: broker.publish(queue, envelope), options)
        for hook in middleware.after_publish:
            hook(self, queue, envelope)
        return (result_cls or AsyncResult)(task_id, task_name=name, app=self)

    def send_many(
        self,
        calls: Iterable[
            tuple[str, Sequence[Any] | None, Mapping[str, Any] | None, Mapping[str, Any] | None]
        ],
        *,
        chunk_size: int = 1000,
    ) -> list[AsyncResult]:
        """Send many task calls, ``(name, args, kwargs, options)`` each, in batched round trips
        (``publish_many``); returns their results in order."""
        return sending.send_many(self, calls, chunk_size=chunk_size)

    def add_periodic_task(
        self,
        schedule: Any,
        sig: Any,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | Sequence[Any] = (),
        name: str | None = None,
        **opts: Any,
    ) -> str:
        """Add a ``beat_schedule`` entry running ``sig`` (``task.s(...)``, a signature dict or a
        task) on ``schedule`` (seconds, timedelta, crontab...); ``args``/``kwargs`` extend the
        signature's, ``opts`` are send options. Returns the entry's name."""
        if isinstance(sig, Mapping):
            task, sig_args = sig.get("task"), sig.get("args") or ()
            sig_kwargs, sig_options = sig.get("kwargs") or {}, sig.get("options") or {}
        else:
            task = getattr(sig, "task", None)
            if not isinstance(task, str):
                task = getattr(sig, "name", None)
            sig_args = getattr(sig, "args", None) or ()
            sig_kwargs = getattr(sig, "kwargs", None) or {}
            sig_options = getattr(sig, "options", None) or {}
        if not isinstance(task, str) or not task:
            raise TypeError(f"add_periodic_task: {sig!r} is not a signature or a task")
        if not isinstance(sig_args, (list, tuple)) or not isinstance(sig_kwargs, Mapping):
            sig_args, sig_kwargs = (), {}
        entry_args = (*sig_args, *args)
        entry_kwargs = {**sig_kwargs, **dict(kwargs or {})}
        if name is None:
            shown = [*map(repr, entry_args), *(f"{k}={v!r}" for k, v in entry_kwargs.items())]
            name = f"{task}({', '.join(shown)})"
        entries = dict(self.conf.beat_schedule or {})
        entries[name] = {
            "task": task,
            "schedule": schedule,
            "args": entry_args,
            "kwargs": entry_kwargs,
            "options": {**dict(sig_options), **opts},
        }
        self.conf.beat_schedule = entries
        return name

    # -- results ----------------------------------------------------------------------------------
    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult:
        return AsyncResult(task_id, app=self, **kwargs)

    def GroupResult(self, *args: Any, **kwargs: Any) -> _GroupResult:
        kwargs.setdefault("app", self)
        return _GroupResult(*args, **kwargs)

    @property
    def accept_content(self) -> frozenset[str]:
        return self.trace_settings().accept

    @property
    def result_accept_content(self) -> frozenset[str]:
        return self.trace_settings().result_accept

    def decode_result(self, payload: bytes) -> dict[str, Any]:
        settings = self.trace_settings()
        return decode_meta(payload, settings.result_serializer, settings.result_accept)

    def encode_result(self, meta: Mapping[str, Any]) -> bytes:
        return encode_meta(meta, self.trace_settings().result_serializer)

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Context | None = None,
        **kwargs: Any,
    ) -> None:
        meta = build_meta(
            task_id,
            state,
            result,
            traceback=traceback,
            request=request,
            extended=bool(self.conf.result_extended),
        )
        backend = self.backend
        if backend.replies_to_caller and request is not None and request.reply_to:
            backend.note_reply_to(task_id, request.reply_to)
        backend.store(task_id, state, self.encode_result(meta), self.result_expires_s)

    def save_group(self, group: _GroupResult) -> None:
        meta = build_meta(group.id or "", states.SUCCESS, [[r.id, None] for r in group.results])
        self.backend.store(
            f"celery-taskset-meta-{group.id}",
            states.SUCCESS,
            self.encode_result(meta),
            self.result_expires_s,
        )

    def restore_group(self, group_id: str) -> _GroupResult | None:
        payload = self.backend.get(f"celery-taskset-meta-{group_id}")
        if payload is None:
            return None
        meta = self.decode_result(payload)
        results = [AsyncResult(item[0], app=self) for item in meta.get("result") or []]
        return _GroupResult(group_id, results, app=self)

    def delete_group(self, group_id: str) -> None:
        self.backend.forget(f"celery-taskset-meta-{group_id}")

    def run_eager_callbacks(
        self,
        state: str,
        retval: Any,
        link: Any,
        link_error: Any,
        task_id: str,
        request: Context | None = None,
        traceback: str | None = None,
    ) -> None:
        """Apply ``link``/``link_error`` signatures after an eager run (see celeriac.workflow)."""
        callbacks = as_list(link) if state == states.SUCCESS else None
        errbacks = as_list(link_error) if state == states.FAILURE else None
        if not (callbacks or errbacks):
            return
        workflow.run_eager_callbacks(
            self, state, retval, callbacks, errbacks, task_id, request=request, traceback=traceback
        )

    # -- canvas: a Task reaches the canvas and the eager tracer through its app, which sits
    # above both (docs/decisions/0013-import-layers.md)
    def signature(self, varies: Any, *args: Any, **kwargs: Any) -> canvas.Signature:
        """``app.signature('tasks.add', args=(2, 2), countdown=10)``: a signature of this app
        (``task.signature(...)``, ``task.s(...)`` come here with the task)."""
        if isinstance(varies, Task):
            return canvas.Signature.from_task(varies, *args, **kwargs)
        kwargs["app"] = self
        return canvas.signature(varies, *args, **kwargs)

    def xmap(self, sig: canvas.Signature, it: Iterable[Any]) -> canvas.xmap:
        """One ``celery.map`` task calling ``sig`` on each item (``task.map(it)``)."""
        return canvas.xmap(sig, it, app=self)

    def xstarmap(self, sig: canvas.Signature, it: Iterable[Sequence[Any]]) -> canvas.xstarmap:
        """One ``celery.starmap`` task calling ``sig`` with each item's arguments."""
        return canvas.xstarmap(sig, it, app=self)

    def chunks(self, sig: canvas.Signature, it: Iterable[Sequence[Any]], n: int) -> canvas.chunks:
        """``it`` split into ``celery.chunks`` tasks of ``n`` calls each (``task.chunks``)."""
        return canvas.chunks(sig, it, n, app=self)

    #: run a task here and now (``task.apply()``): the tracer's eager runner
    apply_eagerly = staticmethod(apply_eagerly)

    # -- misc ------------------------------------------------------------------------------------
    def set_current(self) -> None:
        _state.set_current_app(self)

    def set_default(self) -> None:
        _state.set_current_app(self)

    def worker_main(self, argv: Sequence[str] | None = None) -> None:
        """Start a worker for this app, as ``celeriac worker`` would (``argv``: its options)."""
        _command_line("run_worker_main")(self, argv)

    def start(self, argv: Sequence[str] | None = None) -> None:
        """Run the ``celeriac`` command line for this app."""
        _command_line("run_app_main")(self, argv)

    def __repr__(self) -> str:
        return f"<Celery {self.main or '__main__'} at {id(self):#x}>"


#: the console script the command line is installed as (``[project.scripts]``)
#: the keyword parameters of ``Celery(...)`` (what a misspelt keyword is compared with)
_INIT_PARAMETERS = tuple(inspect.signature(Celery.__init__).parameters)[1:-1]

CLI_SCRIPT = "celeriac"


def _command_line(runner: str) -> Callable[[Celery, Sequence[str] | None], Any]:
    """A runner of the installed command line (``run_app_main``, ``run_worker_main``).

    The CLI sits above every runtime and nothing in the core imports it: it is found as an
    installed component, through the ``celeriac`` console-script entry point, and the runner
    is read from the module that entry point names (docs/decisions/0013-import-layers.md)."""
    # importlib.metadata is slow to import and only these two calls need it
    from importlib.metadata import entry_points

    for ep in entry_points(group="console_scripts", name=CLI_SCRIPT):
        module = importlib.import_module(ep.module)
        found = getattr(module, runner, None)
        if callable(found):
            return found  # type: ignore[no-any-return]
    raise ImproperlyConfigured(
        f"app.start() and app.worker_main() run the {CLI_SCRIPT!r} command line, which is not "
        f"installed here: pip install celeriac (or pip install -e . in a checkout), or run "
        f"python -m celeriac"
    )


@dataclass(frozen=True, slots=True)
class _Arity:
    """A signature of plain positional-or-keyword parameters: checked by counting."""

    required: int
    total: int
    signature: inspect.Signature


def _call_signature(cls: type[Task], task: Task) -> inspect.Signature | _Arity | bool:
    """The signature callers must match (without ``self`` for bound tasks), or False."""
    fun = getattr(cls, "__wrapped__", None) or task.run
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        return False
    if cls.__dict__.get("_bind"):
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    params = list(sig.parameters.values())
    if all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params):
        required = sum(1 for p in params if p.default is inspect.Parameter.empty)
        return _Arity(required, len(params), sig)
    return sig
