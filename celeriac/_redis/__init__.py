"""What the Redis broker, the Redis result backend and the Redis coordination store share: the
redis-py clients (:mod:`celeriac._redis.client`) and the Lua scripts (``scripts/*.lua``, each
naming its key layout in its header). A service package, so ``brokers``, ``backends`` and
``coordination`` never import each other for it (docs/decisions/0012)."""
