"""Task results: AsyncResult, EagerResult, ResultSet, GroupResult and allow_join_result."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, cast

from celeriac import _state, states
from celeriac._types import ResultT_co
from celeriac._utils.timeutils import parse_iso
from celeriac.exceptions import TaskRevokedError, TimeoutError
from celeriac.result_meta import decode_exception, is_encoded_exception, pending_meta

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.backends.base import ResultBackend

JOIN_ERROR = (
    "Never call result.get() within a task!\n"
    "See https://docs.celeryq.dev/en/latest/userguide/tasks.html"
    "#avoid-launching-synchronous-subtasks"
)


def assert_will_not_block() -> None:
    if _state.current_task() is not None and not _state.join_allowed():
        raise RuntimeError(JOIN_ERROR)


@contextmanager
def allow_join_result() -> Iterator[None]:
    """Allow ``.get()`` on results inside a running task (use with care: it can deadlock)."""
    _state.set_join_allowed(1)
    try:
        yield
    finally:
        _state.set_join_allowed(-1)


@contextmanager
def denied_join_result() -> Iterator[None]:
    previous = _state.join_allowed()
    _state.set_join_allowed(-int(previous))
    try:
        yield
    finally:
        _state.set_join_allowed(int(previous))


def _exception_for(meta: dict[str, Any]) -> BaseException:
    status = meta["status"]
    result = meta.get("result")
    if status == states.REVOKED:
        exc = decode_exception(result) if is_encoded_exception(result) else None
        if isinstance(exc, TaskRevokedError):
            return exc
        return TaskRevokedError(str(exc) if exc else "revoked")
    return decode_exception(result)


class ResultBase:
    parent: Any = None


class AsyncResult(ResultBase, Generic[ResultT_co]):
    """The state and result of a task sent to a worker.

    ``AsyncResult[R]`` is what ``delay`` returns for a task whose function returns ``R``;
    ``get()`` is typed ``R``. With ``propagate=False`` a failed task's ``get()`` returns its
    exception instead (as in Celery), which the type does not show."""

    def __init__(
        self,
        id: str,
        backend: ResultBackend | None = None,
        task_name: str | None = None,
        app: Celery | None = None,
        parent: Any = None,
    ) -> None:
        if id is None:
            raise ValueError(f"AsyncResult requires valid id, not {type(id)}")
        self.id = id
        self.task_id = id
        self.app: Celery = app or _state.get_current_app()
        self._backend = backend
        self.name = task_name
        self.parent = parent
        self._cache: dict[str, Any] | None = None

    @property
    def backend(self) -> ResultBackend:
        return self._backend or self.app.backend

    # -- reading --------------------------------------------------------------------------------
    def _get_task_meta(self) -> dict[str, Any]:
        if self._cache is not None:
            return self._cache
        payload = self.backend.get(self.id)
        if payload is None:
            return pending_meta(self.id)
        meta = self.app.decode_result(payload)
        if meta["status"] in states.READY_STATES:
            self._cache = meta
        return meta

    def _set_cache(self, meta: dict[str, Any]) -> dict[str, Any]:
        if meta["status"] in states.READY_STATES:
            self._cache = meta
        return meta

    @property
    def state(self) -> str:
        return str(self._get_task_meta()["status"])

    status = state

    @property
    def result(self) -> Any:
        meta = self._get_task_meta()
        result = meta.get("result")
        if meta["status"] in states.EXCEPTION_STATES and is_encoded_exception(result):
            return decode_exception(result)
        return result

    info = result

    @property
    def traceback(self) -> str | None:
        return self._get_task_meta().get("traceback")

    @property
    def date_done(self) -> datetime | None:
        value = self._get_task_meta().get("date_done")
        return parse_iso(value) if isinstance(value, str) else value

    @property
    def children(self) -> list[Any]:
        return list(self._get_task_meta().get("children") or [])

    def _extended(self, key: str) -> Any:
        return self._get_task_meta().get(key)

    @property
    def args(self) -> Any:
        return self._extended("args")

    @property
    def kwargs(self) -> Any:
        return self._extended("kwargs")

    @property
    def worker(self) -> Any:
        return self._extended("worker")

    @property
    def queue(self) -> Any:
        return self._extended("queue")

    @property
    def retries(self) -> Any:
        return self._extended("retries")

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    # -- waiting --------------------------------------------------------------------------------
    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        no_ack: bool = True,
        follow_parents: bool = True,
        callback: Callable[[str, Any], Any] | None = None,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
        on_interval: Callable[[], Any] | None = None,
        disable_sync_subtasks: bool = True,
        EXCEPTION_STATES: frozenset[str] = states.EXCEPTION_STATES,
        PROPAGATE_STATES: frozenset[str] = states.PROPAGATE_STATES,
    ) -> ResultT_co:
        """Wait for the task to finish and return its result; re-raise its exception when it
        failed (``propagate=True``). Raises :class:`celeriac.exceptions.TimeoutError` when
        ``timeout`` seconds pass first."""
        if disable_sync_subtasks:
            assert_will_not_block()
        if follow_parents and propagate and self.parent is not None:
            self.maybe_throw_parent()
        meta = self._cache
        if meta is None:
            payload = self.backend.wait(self.id, timeout, interval)
            if payload is None:
                raise TimeoutError("The operation timed out.")
            meta = self._set_cache(self.app.decode_result(payload))
        if on_message is not None:
            on_message(meta)
        status = meta["status"]
        if callback is not None:
            callback(self.id, meta.get("result"))
        if status in PROPAGATE_STATES and propagate:
            raise _exception_for(meta)
        # The stored value is whatever the task returned (typed R by the decorator); with
        # propagate=False a failure's exception stands in for it, as the class docstring says.
        result = meta.get("result")
        if status in EXCEPTION_STATES and is_encoded_exception(result):
            return cast(ResultT_co, decode_exception(result))
        return cast(ResultT_co, result)

    wait = get

    def maybe_throw_parent(self) -> None:
        node = self.parent
        while node is not None:
            if isinstance(node, AsyncResult) and node.failed():
                raise _exception_for(node._get_task_meta())
            node = getattr(node, "parent", None)

    def maybe_throw(self, propagate: bool = True) -> None:
        meta = self._get_task_meta()
        if propagate and meta["status"] in states.PROPAGATE_STATES:
            raise _exception_for(meta)

    # -- acting ---------------------------------------------------------------------------------
    def forget(self) -> None:
        self._cache = None
        self.backend.forget(self.id)

    def revoke(
        self,
        connection: Any = None,
        terminate: bool = False,
        signal: Any = None,
        wait: bool = False,
        timeout: float | None = None,
        parents: bool = False,
    ) -> None:
        """Revoke this task (Celery's rule: only this one; the earlier steps of its chain
        still run). ``parents=True`` (celeriac's) revokes the earlier steps too, so revoking
        a chain's result stops the whole chain."""
        ids = [self.id]
        parent = self.parent if parents else None
        while parent is not None and len(ids) < 10_000:
            ids.append(parent.id)
            parent = parent.parent
        self.app.control.revoke(ids if len(ids) > 1 else self.id, terminate=terminate,
                                signal=signal)

    def as_tuple(self) -> tuple[Any, ...]:
        parent = self.parent
        return ((self.id, parent.as_tuple() if parent is not None else None), None)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"

    def __str__(self) -> str:
        return self.id

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.id, None, self.name, None, self.parent)


class EagerResult(AsyncResult[ResultT_co]):
    """Result of a task run in this process by ``apply()`` or ``task_always_eager``."""

    def __init__(
        self,
        id: str,
        ret_value: Any,
        state: str,
        traceback: str | None = None,
        name: str | None = None,
        app: Celery | None = None,
    ) -> None:
        self.id = self.task_id = id
        self.name = name
        self.parent = None
        self._backend = None
        self.app = app or _state.maybe_current_app()  # type: ignore[assignment]
        self._result = ret_value
        self._state = state
        self._traceback = traceback
        self._cache = None

    def _get_task_meta(self) -> dict[str, Any]:
        return {
            "task_id": self.id,
            "status": self._state,
            "result": self._result,
            "traceback": self._traceback,
            "children": [],
            "date_done": None,
        }

    @property
    def state(self) -> str:
        return self._state

    status = state

    @property
    def result(self) -> Any:
        return self._result

    info = result

    @property
    def traceback(self) -> str | None:
        return self._traceback

    def get(  # type: ignore[override]
        self, timeout: float | None = None, propagate: bool = True, **kwargs: Any
    ) -> ResultT_co:
        if self.successful():
            return cast(ResultT_co, self._result)
        if self._state in states.PROPAGATE_STATES and propagate:
            raise (
                self._result if isinstance(self._result, BaseException) else Exception(self._result)
            )
        return cast(ResultT_co, self._result)

    wait = get  # type: ignore[assignment]

    def forget(self) -> None:
        pass

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        self._state = states.REVOKED

    def __repr__(self) -> str:
        return f"<EagerResult: {self.id}>"


class ResultSet(ResultBase):
    """A list of results treated as one."""

    def __init__(self, results: Iterable[AsyncResult], app: Celery | None = None) -> None:
        self.results: list[AsyncResult] = list(results)
        self._app = app

    @property
    def app(self) -> Celery:
        if self._app is not None:
            return self._app
        if self.results:
            return self.results[0].app
        return _state.get_current_app()

    def add(self, result: AsyncResult) -> None:
        if result not in self.results:
            self.results.append(result)

    def _leaves(self) -> Iterator[AsyncResult]:
        for result in self.results:
            if isinstance(result, ResultSet):
                yield from result._leaves()
            else:
                yield result

    def _fetch(self) -> dict[str, dict[str, Any]]:
        """The meta of every result (nested sets included), unread ones in one round trip."""
        metas: dict[str, dict[str, Any]] = {}
        pending = []
        for result in self._leaves():
            if result._cache is not None or isinstance(result, EagerResult):
                metas[result.id] = result._get_task_meta()
            else:
                pending.append(result)
        if pending:
            payloads = self.app.backend.get_many([r.id for r in pending])
            for result, payload in zip(pending, payloads, strict=True):
                metas[result.id] = (
                    result._set_cache(self.app.decode_result(payload))
                    if payload is not None
                    else pending_meta(result.id)
                )
        return metas

    @staticmethod
    def _status_of(result: Any, metas: dict[str, dict[str, Any]]) -> str:
        if not isinstance(result, ResultSet):
            return str(metas[result.id]["status"])
        found = [ResultSet._status_of(r, metas) for r in result.results]
        if all(s == states.SUCCESS for s in found):
            return states.SUCCESS
        if states.FAILURE in found:
            return states.FAILURE
        if all(s in states.READY_STATES for s in found):
            return next(s for s in found if s != states.SUCCESS)
        return states.PENDING

    def _statuses(self) -> list[str]:
        """One status per member; a nested set is SUCCESS once all of it succeeded."""
        metas = self._fetch()
        return [self._status_of(r, metas) for r in self.results]

    def ready(self) -> bool:
        return all(s in states.READY_STATES for s in self._statuses())

    def successful(self) -> bool:
        return all(s == states.SUCCESS for s in self._statuses())

    def failed(self) -> bool:
        return any(s == states.FAILURE for s in self._statuses())

    def waiting(self) -> bool:
        return not self.ready()

    def completed_count(self) -> int:
        return sum(1 for s in self._statuses() if s == states.SUCCESS)

    def revoke(self, connection: Any = None, terminate: bool = False, **kwargs: Any) -> None:
        self.app.control.revoke([r.id for r in self.results], terminate=terminate)

    def forget(self) -> None:
        for result in self.results:
            result.forget()

    def join(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], Any] | None = None,
        disable_sync_subtasks: bool = True,
        **kwargs: Any,
    ) -> list[Any]:
        """Wait for every result, in order, and return their values."""
        if disable_sync_subtasks:
            assert_will_not_block()
        deadline = None if timeout is None else time.monotonic() + timeout
        # One round trip caches every finished result; only unfinished ones are waited on.
        self._fetch()
        values = []
        for result in self.results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = result.get(
                timeout=remaining,
                propagate=propagate,
                interval=interval,
                disable_sync_subtasks=False,
            )
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    get = join
    join_native = join

    def __iter__(self) -> Iterator[AsyncResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> AsyncResult:
        return self.results[index]

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(r.id for r in self.results)}]>"


class GroupResult(ResultSet):
    """The results of a group, with the group's id (saveable and restorable)."""

    def __init__(
        self,
        id: str | None = None,
        results: Sequence[AsyncResult] | None = None,
        parent: Any = None,
        app: Celery | None = None,
    ) -> None:
        super().__init__(results or [], app=app)
        self.id = id
        self.parent = parent

    @property
    def children(self) -> list[AsyncResult]:
        return self.results

    def save(self, backend: ResultBackend | None = None) -> GroupResult:
        self.app.save_group(self)
        return self

    def delete(self, backend: ResultBackend | None = None) -> None:
        self.app.delete_group(self.id or "")

    @classmethod
    def restore(
        cls, id: str, backend: ResultBackend | None = None, app: Celery | None = None
    ) -> GroupResult | None:
        return (app or _state.get_current_app()).restore_group(id)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"


def result_from_tuple(data: Any, app: Celery | None = None) -> AsyncResult:
    (task_id, parent), _ = data
    parent_result = result_from_tuple(parent, app) if parent else None
    return AsyncResult(task_id, app=app, parent=parent_result)


__all__ = [
    "AsyncResult",
    "EagerResult",
    "GroupResult",
    "ResultBase",
    "ResultSet",
    "allow_join_result",
    "denied_join_result",
    "result_from_tuple",
]
