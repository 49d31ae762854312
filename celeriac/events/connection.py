"""``app.connection()``: what Celery code opens to make event receivers and dispatchers.

Celery returns a kombu connection; celeriac's transport is the app's broker, so the stand-in
only carries it: ``with app.connection() as conn: app.events.Receiver(conn, handlers=...)``.
Leaving the ``with`` block releases nothing shared (the app's broker stays open for the app).
"""

from __future__ import annotations

from typing import Any

from celeriac._state import get_current_app
from celeriac.brokers.base import Broker

__all__ = ["Connection", "broker_of"]


class Connection:
    """A stand-in for kombu's ``Connection`` around an app's broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def as_uri(self, include_password: bool = False) -> str:
        """The broker's URL; the password is masked unless ``include_password``."""
        url = self.broker.url
        if include_password or "@" not in url or "://" not in url:
            return url
        scheme, _, rest = url.partition("://")
        credentials, _, host = rest.rpartition("@")
        user = credentials.partition(":")[0]
        return f"{scheme}://{user}:**@{host}" if ":" in credentials else url

    def release(self) -> None:
        """Nothing to give back: the broker belongs to the app."""

    close = release

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Connection {self.as_uri()}>"


def broker_of(connection: Any, app: Any) -> Broker:
    """The broker behind ``connection``: a :class:`Connection`, a
    :class:`~celeriac.brokers.base.Broker` (or an object that wraps one and has its
    ``broadcast``/``subscribe``), or None for ``app``'s broker (the current app's
    when ``app`` is None)."""
    if isinstance(connection, Broker):
        return connection
    if isinstance(connection, Connection):
        return connection.broker
    if connection is not None and callable(getattr(connection, "broadcast", None)):
        return connection  # type: ignore[no-any-return]  # a broker wrapper (duck-typed)
    if connection is not None:
        raise TypeError(
            f"events: expected app.connection() or a Broker, got {type(connection).__name__}"
        )
    if app is None:
        app = get_current_app()
    broker: Broker = app.broker
    return broker
