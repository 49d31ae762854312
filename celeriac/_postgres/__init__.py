"""What the PostgreSQL broker and coordination store share: URL parsing (``postgresql://``,
``postgres://`` and the SQLAlchemy ``db+postgresql[+driver]://`` forms), a connection pool per
process that is safe across ``fork``, the versioned schema (``migrations/*.sql``, applied under
an advisory lock), and the translation of psycopg errors into celeriac's error tree. A service
package, so ``brokers`` and ``coordination`` never import each other for it
(docs/decisions/0021-postgresql-broker.md)."""
