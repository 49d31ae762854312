"""Signature: one task call as data (a dict with Celery's keys), and the helpers that make them.

A signature is what travels in a message's ``callbacks``/``errbacks``/``chain``/``chord``
embed, so it IS a dict: ``task``, ``args``, ``kwargs``, ``options``, ``subtask_type``,
``immutable`` (plus ``chord_size`` on a chord body). The class only names those keys and
forwards its verbs; what the verbs do lives in :mod:`celeriac.canvas.compose` (building,
copying, freezing) and :mod:`celeriac.canvas.send` (sending and running).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from celeriac import _state
from celeriac._utils.text import saferepr

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.result import ResultBase
    from celeriac.task import Task

S = TypeVar("S", bound="Signature")


class Verbs(Protocol):
    """What a signature does, as opposed to what it holds: sending, running, freezing,
    copying, piping. :mod:`celeriac.canvas.verbs` implements it over ``send`` and ``compose``
    and the package installs it on import (:func:`install_verbs`), so this module, which
    those two build on, imports neither."""

    def call_directly(self, sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ...

    def apply_async(
        self, sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> Any: ...

    def apply(
        self, sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> Any: ...

    def freeze(self, sig: Signature, **ids: Any) -> Any: ...

    def clone(
        self, sig: Signature, args: tuple[Any, ...], kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> Signature: ...

    def pipe(self, left: Signature, right: Any) -> Any: ...


_verbs: list[Verbs] = []


def install_verbs(verbs: Verbs) -> None:
    """Give every signature its verbs (``celeriac.canvas`` does this once, on import)."""
    _verbs[:] = [verbs]


def _do() -> Verbs:
    # Importing any celeriac.canvas module runs the package's __init__ first, which installs
    # the verbs; only a call made while that __init__ is still running could find none.
    return _verbs[0]

#: subtask_type -> class, so a dict from the wire comes back as the right primitive
_TYPES: dict[str, type[Signature]] = {}


def register_type(name: str) -> Callable[[type[S]], type[S]]:
    """Class decorator: dicts whose ``subtask_type`` is ``name`` revive as this class."""

    def register(cls: type[S]) -> type[S]:
        _TYPES[name] = cls
        return cls

    return register


class Signature(dict[str, Any]):
    """A task call to make later: ``add.s(2, 2)``, ``signature('tasks.add', (2, 2))``."""

    TYPES: ClassVar[dict[str, type[Signature]]] = _TYPES
    _app: Celery | None = None
    _type: Task | None = None

    def __init__(
        self,
        task: Any = None,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        type: Task | None = None,
        subtask_type: str | None = None,
        immutable: bool = False,
        app: Celery | None = None,
        **ex: Any,
    ) -> None:
        self._app = app
        if isinstance(task, Mapping):
            dict.__init__(self, task)
            _normalize_fields(self)
            return
        name = task
        if task is not None and not isinstance(task, str):
            self._type = task
            name = task.name
            if app is None:
                self._app = type_app(task)
        if type is not None:
            self._type = type
        dict.__init__(
            self,
            task=name,
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}, **ex),
            subtask_type=subtask_type,
            immutable=immutable,
        )

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celery | None = None) -> Signature:
        """Revive a signature dict (from a message or the result backend) as its class."""
        target = _TYPES.get(d.get("subtask_type") or "", Signature)
        sig = target.__new__(target)
        dict.__init__(sig, d)
        sig._app = app
        _normalize_fields(sig)
        sig._revive(app)
        return sig

    @classmethod
    def from_task(
        cls, task: Task, args: Any = None, *starargs: Any, **starkwargs: Any
    ) -> Signature:
        """``task.signature(args, kwargs, **options)`` (what ``task.s``/``si`` call)."""
        starkwargs.setdefault("app", type_app(task))
        return cls(task, args, *starargs, **starkwargs)

    def _revive(self, app: Celery | None) -> None:
        """Turn nested signature dicts (a chain's tasks, a chord's body...) into signatures."""

    # -- the keys ---------------------------------------------------------------------------------
    @property
    def task(self) -> Any:
        return self.get("task")

    @property
    def args(self) -> tuple[Any, ...]:
        return tuple(self.get("args") or ())

    @args.setter
    def args(self, value: Iterable[Any]) -> None:
        self["args"] = tuple(value)

    @property
    def kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = self["kwargs"]
        return kwargs

    @kwargs.setter
    def kwargs(self, value: Mapping[str, Any]) -> None:
        self["kwargs"] = dict(value)

    @property
    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = self["options"]
        return options

    @options.setter
    def options(self, value: Mapping[str, Any]) -> None:
        self["options"] = dict(value)

    @property
    def subtask_type(self) -> str | None:
        return self.get("subtask_type")

    @property
    def immutable(self) -> bool:
        return bool(self.get("immutable"))

    @immutable.setter
    def immutable(self, value: bool) -> None:
        self["immutable"] = bool(value)

    @property
    def id(self) -> str | None:
        """The task id, once assigned by :meth:`freeze` or ``set(task_id=...)``."""
        task_id: str | None = self["options"].get("task_id")
        return task_id

    @property
    def app(self) -> Celery:
        if self._app is not None:
            return self._app
        if self._type is not None:
            return type_app(self._type)
        return _state.get_current_app()

    @property
    def type(self) -> Task:
        """The task this signature calls (raises NotRegistered when the app lacks it)."""
        if self._type is not None:
            return self._type
        return self.app.tasks[self["task"]]

    # -- verbs (forwarded) ----------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task function right here (no message), with partial arguments merged."""
        return _do().call_directly(self, args, kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> ResultBase:
        result: ResultBase = self.apply_async(args, kwargs)
        return result

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        route_name: str | None = None,
        **options: Any,
    ) -> Any:
        """Send it: partial ``args`` go first, ``kwargs`` and ``options`` are merged in."""
        return _do().apply_async(self, tuple(args or ()), dict(kwargs or {}), options)

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run it here and now (every task of a workflow, in this process)."""
        return _do().apply(self, tuple(args or ()), dict(kwargs or {}), options)

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> Any:
        """Assign task ids now (kept by the send) and return the result it will have."""
        return _do().freeze(
            self,
            _id=_id,
            group_id=group_id,
            chord_body=chord,
            root_id=root_id,
            parent_id=parent_id,
            group_index=group_index,
        )

    def clone(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A copy, with partial ``args`` in front and ``kwargs``/``options`` merged in."""
        return _do().clone(self, tuple(args or ()), dict(kwargs or {}), options)

    partial = clone

    def set(self: S, immutable: bool | None = None, **options: Any) -> S:
        if immutable is not None:
            self.immutable = immutable
        self["options"].update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self.immutable = immutable

    def link(self, callback: Any) -> Any:
        """Run ``callback`` with this task's result when it succeeds; returns ``callback``."""
        self["options"].setdefault("link", []).append(callback)
        return callback

    def link_error(self, errback: Any) -> Any:
        """Run ``errback`` when this task fails; returns ``errback``."""
        self["options"].setdefault("link_error", []).append(errback)
        return errback

    def on_error(self: S, errback: Any) -> S:
        """Like :meth:`link_error`, returning the signature so calls can be chained."""
        self.link_error(errback)
        return self

    def __or__(self, other: Any) -> Any:
        return _do().pipe(self, other)

    def __invert__(self) -> Any:
        return self.apply_async().get()

    # -- copying and display --------------------------------------------------------------------
    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        return Signature.from_dict(copy.deepcopy(dict(self), memo), app=self._app)

    def __reduce__(self) -> tuple[Any, ...]:
        return _from_reduce, (dict(self),)

    def __json__(self) -> dict[str, Any]:
        return dict(self)

    def reprcall(self) -> str:
        parts = [saferepr(a) for a in self.args]
        parts.extend(f"{k}={saferepr(v)}" for k, v in self.kwargs.items())
        return f"{'%' if self.immutable else ''}{self['task']}({', '.join(parts)})"

    def __repr__(self) -> str:
        return self.reprcall()


def _from_reduce(d: dict[str, Any]) -> Signature:
    return Signature.from_dict(d)


def _normalize_fields(sig: Signature) -> None:
    sig["args"] = tuple(sig.get("args") or ())
    sig["kwargs"] = dict(sig.get("kwargs") or {})
    sig["options"] = dict(sig.get("options") or {})
    sig.setdefault("subtask_type", None)
    sig["immutable"] = bool(sig.get("immutable"))


def type_app(task: Any) -> Celery:
    """The app of a task instance (without finalizing anything)."""
    app: Celery | None = getattr(type(task), "_app", None)
    if app is None:
        app = task.app
    return app


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """Make a signature from a task name, a task, or a signature dict (which is revived)."""
    app = kwargs.get("app")
    if isinstance(varies, Mapping):
        if isinstance(varies, Signature):
            return varies.clone()
        return Signature.from_dict(varies, app=app)
    return Signature(varies, *args, **kwargs)


subtask = signature


def maybe_signature(d: Any, app: Celery | None = None, clone: bool = False) -> Any:
    """``d`` as a Signature (dicts are revived; None stays None; lists map over items)."""
    if d is None:
        return None
    if isinstance(d, list):
        return [maybe_signature(item, app=app, clone=clone) for item in d]
    if isinstance(d, Signature):
        if clone:
            d = d.clone()
    elif isinstance(d, Mapping):
        d = Signature.from_dict(d, app=app)
    else:
        return d
    if app is not None:
        d._app = app
    return d
