"""The PostgreSQL coordination store reads rows written straight into its tables without
failing: a presence record that is not JSON, a rejected record that cannot be opened."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac.coordination import CoordinationStore, create_store
from tests.brokers.conftest import envelope
from tests.postgres.support import connect


@pytest.fixture
def store(pg_url: str) -> Iterator[CoordinationStore]:
    made = create_store(pg_url)
    made.announce("first@host", {"pid": 1}, 60)  # the tables exist from here on
    yield made
    made.close()


def test_a_presence_record_that_is_not_json_hides_no_one(pg_url: str,
                                                         store: CoordinationStore) -> None:
    with connect(pg_url) as db:
        db.execute(
            "INSERT INTO celeriac_workers (hostname, info, last_seen, expires_at) VALUES"
            " ('bad@host', '\\xff00', 1, 'Infinity'), ('list@host', '[1]', 1, 'Infinity')"
        )
    records = {r.hostname: r.info for r in store.workers()}
    assert records == {"bad@host": {}, "first@host": {"pid": 1}, "list@host": {}}
    assert store.is_announced("bad@host")


def test_rejected_records_written_by_hand_still_read(pg_url: str,
                                                     store: CoordinationStore) -> None:
    store.record_rejected([("q", envelope("ok"), "why")])
    with connect(pg_url) as db:
        db.execute(
            "INSERT INTO celeriac_rejected (queue, headers, properties, body, content_type,"
            " content_encoding, reason, at) VALUES ('q', 'not json', '\\x00', '\\x', '', '',"
            " 'by hand', 0)"
        )
    records = store.rejected()
    assert [reason for _, reason in records] == ["why", "by hand"]
    assert records[0][0].task_id == "ok"


def test_revokes_with_odd_expiries(pg_url: str, store: CoordinationStore) -> None:
    with connect(pg_url) as db:
        db.execute("INSERT INTO celeriac_revoked (task_id, expires_at) VALUES"
                   " ('forever', 'Infinity'), ('nan', 'NaN'), ('past', '-Infinity')")
    store.revoke(["t1"], 60)  # also drops what has expired (NaN sorts above every time)
    assert store.revoked(["forever", "nan", "past", "t1", "other"]) == {"forever", "nan", "t1"}
