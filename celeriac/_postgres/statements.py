"""The PostgreSQL broker's statements (:mod:`celeriac.brokers.postgres`), over the tables of
``migrations/0001_initial.sql``. ``NOW`` is the database's clock in epoch seconds; ``%(ns)s``
binds the channel namespace wherever a statement notifies (:data:`~.conn.CHANNEL_SQL`).

Rules the statements keep: every row is read through one partial index (ready, scheduled,
leased); ids are looked up by primary key (``id = ANY(...)``), never by a join that could scan
the table; settling statements touch only rows the caller still owns (``owner``); whatever makes
rows claimable notifies their queues' channels in the same statement, hence the same transaction.
"""

from __future__ import annotations

from celeriac._postgres.conn import CHANNEL_SQL, NOW, TAKE_KEY

# Rows the promotion step turns ready per claim (the rest on the next claims).
PROMOTE_BATCH = 1000

TABLE = "celeriac_messages"
NOTIFY_QUEUES = f"SELECT pg_notify({CHANNEL_SQL.format(name='queue')}, '')"
INSERT_COLUMNS = (
    "queue, priority, eta, ready_at, task_id, headers, properties, body, content_type,"
    " content_encoding"
)
PUBLISH = f"""
WITH rows AS (
    SELECT * FROM unnest(%(queue)s::text[], %(priority)s::smallint[], %(eta)s::float8[],
        %(task_id)s::text[], %(headers)s::bytea[], %(properties)s::bytea[], %(body)s::bytea[],
        %(ctype)s::text[], %(cenc)s::text[]) WITH ORDINALITY
        AS r(queue, priority, eta, task_id, headers, properties, body, ctype, cenc, n)
), ins AS (
    INSERT INTO {TABLE} ({INSERT_COLUMNS})
    SELECT queue, priority, eta, coalesce(eta, {NOW}), task_id, headers, properties, body,
        ctype, cenc FROM rows ORDER BY n
)
{NOTIFY_QUEUES} FROM (SELECT DISTINCT queue FROM rows) AS d
"""
PUBLISH_ONCE = f"""
WITH k AS ({TAKE_KEY}), ins AS (
    INSERT INTO {TABLE} ({INSERT_COLUMNS})
    SELECT %(queue)s::text, %(priority)s::smallint, %(eta)s::float8,
        coalesce(%(eta)s::float8, {NOW}), %(task_id)s::text, %(headers)s::bytea,
        %(properties)s::bytea, %(body)s::bytea, %(ctype)s::text, %(cenc)s::text FROM k
    RETURNING queue
)
{NOTIFY_QUEUES} FROM ins
"""
# NaN (only a row written by hand holds one) is no time at all: it holds nothing back. Compared
# as a time it would never fall due nor lapse (PostgreSQL sorts NaN above every number), and
# its row would stay in the queue for good, never delivered, never dead-lettered.
PROMOTE = f"""
WITH due AS (
    UPDATE {TABLE} SET eta = NULL WHERE id = ANY(ARRAY(
        SELECT id FROM {TABLE} WHERE eta IS NOT NULL AND (eta <= {NOW} OR eta = 'NaN')
        LIMIT {PROMOTE_BATCH} FOR UPDATE SKIP LOCKED))
), lapsed AS (
    UPDATE {TABLE} SET lease_until = NULL WHERE id = ANY(ARRAY(
        SELECT id FROM {TABLE} WHERE lease_until IS NOT NULL
            AND (lease_until < {NOW} OR lease_until = 'NaN')
        LIMIT {PROMOTE_BATCH} FOR UPDATE SKIP LOCKED))
) SELECT 1
"""
# ``= ANY(ARRAY(...))``: the picked ids are looked up by primary key, never by a join that
# could scan the table. The delivery count stops at the column's limit: a row written by hand
# at 2^31 - 1 would otherwise overflow and fail every claim of its queue, good rows included.
CLAIM = f"""
UPDATE {TABLE} AS m SET lease_until = {NOW} + %(lease_s)s, owner = %(owner)s,
    delivery_count = least(m.delivery_count, 2147483646) + 1
WHERE m.id = ANY(ARRAY(
    SELECT c.id FROM unnest(%(queues)s::text[]) AS q(name) CROSS JOIN LATERAL (
        SELECT id, priority FROM {TABLE}
        WHERE queue = q.name AND eta IS NULL AND lease_until IS NULL
        ORDER BY priority DESC, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) AS c
    ORDER BY c.priority DESC, c.id LIMIT %(limit)s))
RETURNING m.id, m.queue, m.priority, m.headers, m.properties, m.body, m.content_type,
    m.content_encoding, m.delivery_count
"""
# Seconds until the next scheduled row falls due or lease runs out (NULL: none).
NEXT_DUE = f"""
SELECT least((SELECT min(eta) FROM {TABLE} WHERE eta IS NOT NULL),
             (SELECT min(lease_until) FROM {TABLE} WHERE lease_until IS NOT NULL)) - {NOW}
"""
# Claims, acks, requeues and renewals need not wait for the WAL flush: losing one in a database
# crash only brings its messages back (at least once). Publishes always wait.
ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"
DELETE_OWNED = f"DELETE FROM {TABLE} WHERE id = ANY(%(ids)s::bigint[]) AND owner = %(owner)s"
# The write-behind ack (celeriac._postgres.acks): ``$n`` placeholders, text parameters.
ACK = f"DELETE FROM {TABLE} WHERE id = ANY($1::bigint[]) AND owner = $2"
RELEASE = f"""
WITH r AS (
    UPDATE {TABLE} SET lease_until = NULL, owner = NULL
    WHERE id = ANY(%(ids)s::bigint[]) AND owner = %(owner)s RETURNING queue
)
{NOTIFY_QUEUES} FROM (SELECT DISTINCT queue FROM r) AS d
"""
RENEW = (
    f"UPDATE {TABLE} SET lease_until = {NOW} + %(lease_s)s"
    " WHERE id = ANY(%(ids)s::bigint[]) AND owner = %(owner)s"
)
# Unclaimed: ready, scheduled, or leased until a time now past.
UNCLAIMED = f"(lease_until IS NULL OR lease_until < {NOW})"
PURGE = f"DELETE FROM {TABLE} WHERE queue = ANY(%s) AND {UNCLAIMED}"
# Unclaimed rows in their three states, each counted through its own partial index.
STATES = ("eta IS NULL AND lease_until IS NULL", "eta IS NOT NULL",
           f"lease_until IS NOT NULL AND lease_until < {NOW}")
QUEUE_SIZE = "SELECT " + " + ".join(
    f"(SELECT count(*) FROM {TABLE} WHERE {state} AND queue = %(queue)s)" for state in STATES)
OLDEST_READY = f"SELECT {NOW} - least(" + ", ".join(
    f"(SELECT min(ready_at) FROM {TABLE} WHERE {state} AND queue = %(queue)s)"
    for state in (STATES[0], f"eta IS NOT NULL AND eta <= {NOW}", STATES[2])) + ")"
BROADCAST_LARGE = f"""
WITH gone AS (DELETE FROM celeriac_broadcasts WHERE at < {NOW} - %(keep_s)s),
ins AS (
    INSERT INTO celeriac_broadcasts (channel, payload, at) VALUES (%(channel)s, %(payload)s, {NOW})
    RETURNING id
)
SELECT pg_notify(%(notify)s, 'r' || id) FROM ins
"""
RECLAIM_OWNERS = (
    f"SELECT DISTINCT owner FROM {TABLE} WHERE lease_until IS NOT NULL"
    " AND left(owner, %s) = %s"
)
RECLAIM = f"""
WITH r AS (
    UPDATE {TABLE} SET lease_until = NULL, owner = NULL
    WHERE lease_until IS NOT NULL AND owner = ANY(%(owners)s) RETURNING queue
), n AS (
    {NOTIFY_QUEUES} FROM (SELECT DISTINCT queue FROM r) AS d
) SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM n)
"""
