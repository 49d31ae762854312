"""The canvas primitives: chain, group, chord, chunks, xmap and xstarmap.

Each is a :class:`Signature` whose ``kwargs`` hold its parts, as Celery lays them out on the
wire (``chain``: ``tasks``; ``group``: ``tasks``; ``chord``: ``header``, ``body``, ``kwargs``;
``chunks``: ``task``, ``it``, ``n``; ``xmap``/``xstarmap``: ``task``, ``it``). The classes
only build and name those parts; sending and running them is :mod:`celeriac.canvas.send`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from celeriac.canvas.signature import Signature, maybe_signature, register_type

if TYPE_CHECKING:
    from celeriac.app.base import Celery


def _task_list(tasks: tuple[Any, ...]) -> list[Any]:
    """``chain(a, b)``, ``chain([a, b])`` and ``group(x for x in ...)`` all mean the same."""
    if len(tasks) == 1 and not isinstance(tasks[0], Mapping):
        return list(tasks[0])
    return list(tasks)


def _first_app(tasks: Iterable[Any]) -> Celery | None:
    for task in tasks:
        app: Celery | None = getattr(task, "_app", None)
        if app is not None:
            return app
    return None


@register_type("chain")
class chain(Signature):
    """Tasks run one after another, each getting the previous result as first argument:
    ``chain(add.s(2, 2), mul.s(4))`` or ``add.s(2, 2) | mul.s(4)``."""

    def __init__(self, *tasks: Any, **options: Any) -> None:
        app = options.pop("app", None)
        steps = [maybe_signature(t, app=app) for t in _task_list(tasks)]
        super().__init__(
            "celery.chain",
            (),
            {"tasks": steps},
            options,
            subtask_type="chain",
            app=app or _first_app(steps),
        )

    def _revive(self, app: Celery | None) -> None:
        self.kwargs["tasks"] = [maybe_signature(t, app=app) for t in self.kwargs.get("tasks", ())]

    @property
    def tasks(self) -> list[Signature]:
        tasks: list[Signature] = self.kwargs["tasks"]
        return tasks

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def link(self, callback: Any) -> Any:
        # The chain's result is its last task's.
        return self.tasks[-1].link(callback)

    def link_error(self, errback: Any) -> Any:
        # Any step may fail, and only the failing one calls its errbacks.
        for task in self.tasks:
            task.link_error(errback)
        return errback

    def __repr__(self) -> str:
        if not self.tasks:
            return "%celery.chain()"
        return " | ".join(repr(t) for t in self.tasks)


_chain = chain


@register_type("group")
class group(Signature):
    """Tasks run in parallel; the result is the list of their results, in order."""

    def __init__(self, *tasks: Any, **options: Any) -> None:
        app = options.pop("app", None)
        members = [maybe_signature(t, app=app) for t in _task_list(tasks)]
        super().__init__(
            "celery.group",
            (),
            {"tasks": members},
            options,
            subtask_type="group",
            app=app or _first_app(members),
        )

    def _revive(self, app: Celery | None) -> None:
        self.kwargs["tasks"] = [maybe_signature(t, app=app) for t in self.kwargs.get("tasks", ())]

    @property
    def tasks(self) -> list[Signature]:
        tasks: list[Signature] = self.kwargs["tasks"]
        return tasks

    def __call__(self, *partial_args: Any, **options: Any) -> Any:
        return self.apply_async(partial_args, **options)

    def skew(self, start: float = 1.0, stop: float | None = None, step: float = 1.0) -> group:
        """Spread the members out in time: countdown ``start``, ``start + step``... up to
        ``stop`` (then ``stop`` for the rest)."""
        countdown = start
        for task in self.tasks:
            task.set(countdown=countdown)
            if stop is None or countdown + step <= stop:
                countdown += step
        return self

    def link(self, callback: Any) -> Any:
        # Celery's behaviour: the callback hangs off the first member, immutable (a callback
        # that needs every result is a chord).
        return self.tasks[0].link(maybe_signature(callback).clone().set(immutable=True))

    def link_error(self, errback: Any) -> Any:
        for task in self.tasks:
            task.link_error(errback)
        return errback

    def __iter__(self) -> Iterator[Signature]:  # type: ignore[override]
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"group({self.tasks!r})"


@register_type("chord")
class chord(Signature):
    """A group (the header) whose list of results is passed to one more task (the body) once
    every header task has finished: ``chord([add.s(1, 2), add.s(3, 4)], xsum.s())``."""

    def __init__(
        self,
        header: Any,
        body: Any = None,
        task: str = "celery.chord",
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        app: Celery | None = None,
        **options: Any,
    ) -> None:
        head = _as_group(header, app)
        super().__init__(
            task,
            args,
            {"header": head, "body": maybe_signature(body, app=app), "kwargs": dict(kwargs or {})},
            options,
            subtask_type="chord",
            app=app or head._app,
        )

    def _revive(self, app: Celery | None) -> None:
        kwargs = self.kwargs
        header = kwargs.get("header")
        kwargs["header"] = _as_group([] if header is None else header, app)
        kwargs["body"] = maybe_signature(kwargs.get("body"), app=app)
        kwargs.setdefault("kwargs", {})

    @property
    def header(self) -> group:
        header: group = self.kwargs["header"]
        return header

    @property
    def tasks(self) -> list[Signature]:
        return self.header.tasks

    @property
    def body(self) -> Signature | None:
        return self.kwargs.get("body")

    @body.setter
    def body(self, value: Any) -> None:
        self.kwargs["body"] = maybe_signature(value, app=self._app)

    def __call__(self, body: Any = None, **options: Any) -> Any:
        return self.apply_async((), {"body": body} if body is not None else {}, **options)

    def link(self, callback: Any) -> Any:
        assert self.body is not None, "chord has no body yet"
        return self.body.link(callback)

    def link_error(self, errback: Any) -> Any:
        assert self.body is not None, "chord has no body yet"
        return self.body.link_error(errback)

    def __repr__(self) -> str:
        return f"chord({self.header.tasks!r}, {self.body!r})"


def _as_group(header: Any, app: Celery | None) -> group:
    if isinstance(header, group):
        return header
    if isinstance(header, Mapping):
        revived = maybe_signature(header, app=app)
        return revived if isinstance(revived, group) else group([revived], app=app)
    return group(list(header), app=app)


class _basemap(Signature):
    """``celery.map``/``celery.starmap``: one message whose task calls ``task`` per item."""

    _task_name = ""
    _kind = ""

    def __init__(self, task: Any, it: Iterable[Any], **options: Any) -> None:
        app = options.pop("app", None)
        sig = maybe_signature(task, app=app)
        super().__init__(
            self._task_name,
            (),
            {"task": sig, "it": list(it)},
            options,
            subtask_type=self._kind,
            immutable=True,
            app=app or getattr(sig, "_app", None),
        )

    def _revive(self, app: Celery | None) -> None:
        self.kwargs["task"] = maybe_signature(self.kwargs.get("task"), app=app)

    def __repr__(self) -> str:
        task = self.kwargs["task"]
        return f"[{task['task']}(x) for x in {self.kwargs['it']!r}]"


@register_type("xmap")
class xmap(_basemap):
    _task_name = "celery.map"
    _kind = "xmap"


@register_type("xstarmap")
class xstarmap(_basemap):
    _task_name = "celery.starmap"
    _kind = "xstarmap"

    def __repr__(self) -> str:
        task = self.kwargs["task"]
        return f"[{task['task']}(*x) for x in {self.kwargs['it']!r}]"


def split_every(it: Iterable[Any], n: int) -> Iterator[list[Any]]:
    """``it`` in lists of ``n`` items (the last may be shorter)."""
    source = iter(it)
    while True:
        part = list(itertools.islice(source, n))
        if not part:
            return
        yield part


@register_type("chunks")
class chunks(Signature):
    """``task`` over ``it`` split into parts of ``n``: one ``celery.starmap`` task per part;
    the result is the list of the parts' lists."""

    def __init__(self, task: Any, it: Iterable[Any], n: int, **options: Any) -> None:
        app = options.pop("app", None)
        sig = maybe_signature(task, app=app)
        super().__init__(
            "celery.chunks",
            (),
            {"task": sig, "it": list(it), "n": n},
            options,
            subtask_type="chunks",
            immutable=True,
            app=app or getattr(sig, "_app", None),
        )

    def _revive(self, app: Celery | None) -> None:
        self.kwargs["task"] = maybe_signature(self.kwargs.get("task"), app=app)

    def __call__(self, **options: Any) -> Any:
        return self.apply_async(**options)

    def group(self) -> group:
        """The equivalent group of ``celery.starmap`` tasks."""
        task, it, n = self.kwargs["task"], self.kwargs["it"], int(self.kwargs["n"])
        return group(
            (xstarmap(task, part, app=self._app) for part in split_every(it, n)),
            app=self._app,
            **self.options,
        )
