"""``django-db`` and ``django-cache``: result backends on Django's ORM and cache framework.

``django-db`` keeps each record in a :class:`~.models.TaskResult` row (a group saved with
``GroupResult.save()`` in a :class:`~.models.GroupResult` row, a chord's counter in a
:class:`~.models.ChordCounter` row) on the database alias named in the URL's host part
(``django-db://results``) or the ``database`` transport option, else the one Django's routers
pick for writes. The rows are reached through the app registry (``apps.get_model``), so this
module imports without Django being set up; the first call sets Django up if it is configured
and not yet loaded.

The chord counter is one ``UPDATE ... SET value = value + n`` (an F() expression) followed by a
read of the row inside the same transaction: the update's row lock (PostgreSQL) or write lock
(SQLite, taken at the first write statement of the transaction) serialises increments, so every
caller reads back the value its own increment produced.

``django-cache`` keeps records in the Django cache named by the URL's host part
(``django-cache://results``), the ``cache_backend`` transport option or the
``CELERY_CACHE_BACKEND`` Django setting, default ``"default"``. Its expiry is the cache's own;
lifetimes are rounded up to whole seconds, the unit most caches keep.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

# At import, so a process without Django gets the registry's "pip install 'celeriac[django]'".
import django

from celeriac import states
from celeriac._state import maybe_current_app
from celeriac.backends.base import ResultBackend
from celeriac.exceptions import ImproperlyConfigured

#: the key prefix ``Celery.save_group`` stores group records under
GROUP_PREFIX = "celery-taskset-meta-"
_APP_LABEL = "celeriac_results"
_CHUNK = 500
_CLEANUP_EVERY_S = 60.0
_MIN_POLL_S = 0.001


def _ensure_django() -> None:
    """Set Django up when it is configured but its apps are not loaded (a plain script or a
    worker started without the fix-up); say what is missing when it is not configured."""
    from django.apps import apps
    from django.conf import settings

    if apps.ready:
        return
    if not settings.configured:
        raise ImproperlyConfigured(
            "The django-db / django-cache result backends need Django settings: set "
            "DJANGO_SETTINGS_MODULE (or call settings.configure()) before using results"
        )
    django.setup()


def _host(url: str) -> str:
    """The URL's host part, which names a database or cache alias (``django-db://results``)."""
    return urlsplit(url).netloc if "://" in url else ""


def _decode(payload: bytes) -> dict[str, Any] | None:
    """The record as a dict when it is JSON (the default result serializer), else None."""
    try:
        meta = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def _text(value: Any, max_chars: int | None = None) -> str | None:
    """A column's text: PostgreSQL refuses NUL characters in text, so they become U+FFFD (the
    exact record stays in ``payload``)."""
    return None if value is None else str(value)[:max_chars].replace("\x00", "\ufffd")


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        return _text(repr(value))


def _short(value: Any, max_chars: int = 255) -> str | None:
    return _text(value, max_chars)


class DatabaseBackend(ResultBackend):
    """Results in the Django database (``django-db``)."""

    schemes = ("django-db",)

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        self._alias: str | None = _host(url) or self.options.get("database") or None
        self._checked = False
        self._next_cleanup = time.monotonic() + _CLEANUP_EVERY_S

    # -- plumbing -------------------------------------------------------------------------------
    def _model(self, name: str) -> Any:
        _ensure_django()
        from django.apps import apps

        return apps.get_model(_APP_LABEL, name)

    def _db(self) -> str:
        if self._alias is None:
            from django.db import router

            self._alias = router.db_for_write(self._model("TaskResult")) or "default"
        elif not self._checked:
            from django.db import connections

            _ensure_django()
            if self._alias not in connections.settings:
                raise ImproperlyConfigured(f"django-db: no database {self._alias!r} in DATABASES")
            self._checked = True
        return self._alias

    def _live(self, model: Any) -> Any:
        from django.db.models import Q
        from django.utils import timezone

        return model.objects.using(self._db()).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )

    @staticmethod
    def _until(now: datetime, expires_s: float | None) -> datetime | None:
        return now + timedelta(seconds=expires_s) if expires_s else None

    # -- records --------------------------------------------------------------------------------
    def store(self, task_id: str, state: str, payload: bytes, expires_s: float | None) -> None:
        self.store_many([(task_id, state, payload)], expires_s)

    def store_many(self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None) -> None:
        if not items:
            return
        from django.db import transaction
        from django.utils import timezone

        now = timezone.now()
        until = self._until(now, expires_s)
        # One row per id, the last record winning (an upsert may not touch a row twice).
        latest = {task_id: (state, payload) for task_id, state, payload in items}
        tasks, groups = [], []
        task_model, group_model = self._model("TaskResult"), self._model("GroupResult")
        for task_id, (state, payload) in latest.items():
            done = now if state in states.READY_STATES else None
            meta = _decode(payload) or {}
            if task_id.startswith(GROUP_PREFIX):
                members = meta.get("result")
                ids = [m[0] for m in members if m] if isinstance(members, list) else None
                groups.append(group_model(
                    group_id=task_id[len(GROUP_PREFIX):], result=_json_text(ids), date_created=now,
                    payload=payload, date_done=done, expires_at=until,
                ))
                continue
            tasks.append(task_model(
                task_id=task_id, status=state, payload=payload, date_done=done, expires_at=until,
                date_created=now,
                result=_json_text(meta.get("result")), traceback=_text(meta.get("traceback")),
                task_name=_short(meta.get("name")), task_args=_json_text(meta.get("args")),
                task_kwargs=_json_text(meta.get("kwargs")), worker=_short(meta.get("worker")),
                retries=meta.get("retries") if isinstance(meta.get("retries"), int) else None,
                queue=_short(meta.get("queue")),
            ))
        db = self._db()
        with transaction.atomic(using=db):
            for model, rows, key, fields in (
                (task_model, tasks, "task_id", [
                    "status", "payload", "date_done", "expires_at", "result", "traceback",
                    "task_name", "task_args", "task_kwargs", "worker", "retries", "queue",
                ]),
                (group_model, groups, "group_id", ["result", "payload", "date_done", "expires_at"]),
            ):
                for start in range(0, len(rows), _CHUNK):
                    model.objects.using(db).bulk_create(
                        rows[start : start + _CHUNK], update_conflicts=True,
                        unique_fields=[key], update_fields=fields,
                    )
        if time.monotonic() >= self._next_cleanup:
            self._next_cleanup = time.monotonic() + _CLEANUP_EVERY_S
            self.cleanup()

    def _split(self, task_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        tasks = [t for t in task_ids if not t.startswith(GROUP_PREFIX)]
        groups = [t[len(GROUP_PREFIX):] for t in task_ids if t.startswith(GROUP_PREFIX)]
        return tasks, groups

    def get(self, task_id: str) -> bytes | None:
        return self.get_many([task_id])[0]

    def get_many(self, task_ids: Sequence[str]) -> list[bytes | None]:
        ids = list(task_ids)
        tasks, groups = self._split(ids)
        found: dict[str, bytes] = {}
        for model, wanted, key, prefix in (
            ("TaskResult", tasks, "task_id", ""), ("GroupResult", groups, "group_id", GROUP_PREFIX),
        ):
            unique = sorted(set(wanted))
            for start in range(0, len(unique), _CHUNK):
                rows = self._live(self._model(model)).filter(
                    **{f"{key}__in": unique[start : start + _CHUNK]}
                ).values_list(key, "payload")
                found.update((prefix + k, bytes(p)) for k, p in rows)
        return [found.get(task_id) for task_id in ids]

    def get_state(self, task_id: str) -> str | None:
        if task_id.startswith(GROUP_PREFIX):
            return states.SUCCESS if self.get(task_id) is not None else None
        state = self._live(self._model("TaskResult")).filter(task_id=task_id).values_list(
            "status", flat=True
        ).first()
        return None if state is None else str(state)

    def wait(self, task_id: str, timeout_s: float | None, interval_s: float = 0.05) -> bytes | None:
        """Poll with a back-off from 1 ms to ``interval_s``; the payload is read only once the
        task is ready."""
        if task_id.startswith(GROUP_PREFIX):
            return super().wait(task_id, timeout_s, interval_s)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        max_poll_s = max(interval_s, _MIN_POLL_S)
        delay = _MIN_POLL_S
        model = self._model("TaskResult")
        while True:
            payload = self._live(model).filter(
                task_id=task_id, status__in=sorted(states.READY_STATES)
            ).values_list("payload", flat=True).first()
            if payload is not None:
                return bytes(payload)
            sleep_s = delay
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                sleep_s = min(sleep_s, remaining)
            time.sleep(sleep_s)
            delay = min(delay * 2, max_poll_s)

    def forget(self, task_id: str) -> None:
        tasks, groups = self._split([task_id])
        db = self._db()
        if tasks:
            self._model("TaskResult").objects.using(db).filter(task_id__in=tasks).delete()
        if groups:
            self._model("GroupResult").objects.using(db).filter(group_id__in=groups).delete()

    # -- chord counters -------------------------------------------------------------------------
    def incr(self, key: str, amount: int, expires_s: float | None) -> int:
        from django.db import IntegrityError, transaction
        from django.db.models import Case, F, Value, When
        from django.utils import timezone

        model = self._model("ChordCounter")
        db = self._db()
        now = timezone.now()
        until = self._until(now, expires_s)
        rows = model.objects.using(db).filter(key=key)
        bump = Case(
            # An expired counter restarts from zero, as if it had been deleted on time.
            When(expires_at__isnull=False, expires_at__lte=now, then=Value(amount)),
            default=F("value") + Value(amount),
        )
        with transaction.atomic(using=db):
            # The UPDATE comes first: it takes the lock that orders concurrent increments.
            if not rows.update(value=bump, expires_at=until):
                try:
                    with transaction.atomic(using=db):
                        model.objects.using(db).create(key=key, value=amount, expires_at=until)
                    return amount
                except IntegrityError:
                    # Another caller created it first: increment theirs.
                    rows.update(value=bump, expires_at=until)
            return int(rows.values_list("value", flat=True).get())

    def delete_counter(self, key: str) -> None:
        self._model("ChordCounter").objects.using(self._db()).filter(key=key).delete()

    # -- housekeeping ---------------------------------------------------------------------------
    def cleanup(self) -> int:
        from django.db import transaction
        from django.utils import timezone

        now = timezone.now()
        db = self._db()
        with transaction.atomic(using=db):
            self._model("ChordCounter").objects.using(db).filter(expires_at__lte=now).delete()
            # Counters are chord bookkeeping, not records: only results are counted.
            deleted = 0
            for name in ("TaskResult", "GroupResult"):
                expired = self._model(name).objects.using(db).filter(expires_at__lte=now)
                deleted += expired.delete()[0]
        return deleted

    def close(self) -> None:
        """Close this thread's connection unless a transaction holds it (Django reopens it on
        the next query)."""
        from django.db import connections

        if self._alias is None or not _django_ready():
            return
        connection = connections[self._alias]
        if not connection.in_atomic_block:
            connection.close()


def _current_cache_backend() -> str | None:
    """The current app's ``cache_backend`` setting. A backend is not told its app's settings
    (only ``result_backend_transport_options``), and the app that made it is the current one
    in the processes that use it (a worker, a Django site with one app)."""
    app = maybe_current_app()
    value = app.conf.cache_backend if app is not None else None
    return str(value) if value else None


def _django_ready() -> bool:
    from django.apps import apps

    return bool(apps.ready)


class CacheBackend(ResultBackend):
    """Results in one of Django's caches (``django-cache``)."""

    schemes = ("django-cache",)
    _prefix = "celery-task-meta-"
    _counter_prefix = "celeriac-counter-"

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        self._alias_option: str | None = _host(url) or self.options.get("cache_backend") or None

    def _cache(self) -> Any:
        _ensure_django()
        from django.conf import settings
        from django.core.cache import caches

        alias = (
            self._alias_option
            or _current_cache_backend()
            or getattr(settings, "CELERY_CACHE_BACKEND", None)
            or "default"
        )
        try:
            return caches[alias]
        except Exception as exc:  # django raises InvalidCacheBackendError
            raise ImproperlyConfigured(f"django-cache: no cache {alias!r} in CACHES") from exc

    @staticmethod
    def _timeout(expires_s: float | None) -> int | None:
        # Whole seconds, rounded up: redis and memcached caches drop the fraction (0.2 s would
        # become 0, which deletes the key at once).
        return None if not expires_s else max(1, math.ceil(expires_s))

    def store(self, task_id: str, state: str, payload: bytes, expires_s: float | None) -> None:
        self.store_many([(task_id, state, payload)], expires_s)

    def store_many(self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None) -> None:
        if items:
            self._cache().set_many(
                {self._prefix + t: (state, payload) for t, state, payload in items},
                timeout=self._timeout(expires_s),
            )

    def _entries(self, task_ids: Sequence[str]) -> list[tuple[str, bytes] | None]:
        ids = list(task_ids)
        found = self._cache().get_many([self._prefix + t for t in ids]) if ids else {}
        out: list[tuple[str, bytes] | None] = []
        for task_id in ids:
            entry = found.get(self._prefix + task_id)
            out.append((str(entry[0]), bytes(entry[1])) if entry else None)
        return out

    def get(self, task_id: str) -> bytes | None:
        entry = self._entries([task_id])[0]
        return None if entry is None else entry[1]

    def get_many(self, task_ids: Sequence[str]) -> list[bytes | None]:
        return [None if e is None else e[1] for e in self._entries(task_ids)]

    def get_state(self, task_id: str) -> str | None:
        entry = self._entries([task_id])[0]
        return None if entry is None else entry[0]

    def forget(self, task_id: str) -> None:
        self._cache().delete(self._prefix + task_id)

    def incr(self, key: str, amount: int, expires_s: float | None) -> int:
        cache = self._cache()
        name = self._counter_prefix + key
        while True:
            # add() is create-if-missing; incr() is atomic on memcached, redis and locmem (not on
            # the database cache). The counter's lifetime starts when it is created.
            cache.add(name, 0, timeout=self._timeout(expires_s))
            try:
                return int(cache.incr(name, amount))
            except ValueError:  # expired between add() and incr(): create it again
                continue

    def delete_counter(self, key: str) -> None:
        self._cache().delete(self._counter_prefix + key)

    def cleanup(self) -> int:
        """The cache expires records itself: nothing to delete, 0."""
        return 0
