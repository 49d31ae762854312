"""``python -m tests.chaos [--tasks 5000] [--attacks 5]``: every chaos scenario on SQLite and
Redis at full size, printed as the table in docs/reliability.md. Needs the test Redis server
(tests/redis/support.py: 127.0.0.1:6379, database 14 unless CELERIAC_TEST_REDIS_* say) and
``redis-server`` on PATH for the restart scenario."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.chaos import harness, inject
from tests.redis.conftest import RedisServer
from tests.redis.support import SPARE_DB, drop_keys, redis_url


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos")
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--attacks", type=int, default=5)
    args = parser.parse_args()
    tasks, attacks = args.tasks, args.attacks
    reports: list[harness.Report] = []
    print(harness.HEADER, flush=True)

    def record(report: harness.Report) -> None:
        reports.append(report)
        print(report.row(), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for label in ("sqlite", "redis"):
            for name in ("sigkill", "sigterm", "poison"):
                workdir = root / f"{label}-{name}"
                workdir.mkdir()
                if label == "sqlite":
                    url, injector = f"sqlite:///{workdir / 'broker.db'}", inject.into_sqlite
                else:
                    url, injector = redis_url(SPARE_DB), inject.into_redis
                try:
                    if name == "sigkill":
                        record(harness.sigkill(workdir, url, label, tasks=tasks, kills=attacks))
                    elif name == "sigterm":
                        record(harness.sigterm(workdir, url, label, tasks=tasks, stops=attacks))
                    else:
                        record(harness.poison(workdir, url, label, tasks=tasks // 2,
                                              inject=injector))
                finally:
                    if label == "redis":
                        drop_keys(url)
        server_dir = root / "redis-server"
        server_dir.mkdir()
        server = RedisServer(server_dir, unix=False, durable=True)
        server.start()
        try:
            workdir = root / "restart"
            workdir.mkdir()
            record(harness.broker_restart(workdir, server, "redis", tasks=tasks,
                                          restarts=max(1, attacks // 2)))
        finally:
            server.stop()
    return 0 if all(r.passed for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
