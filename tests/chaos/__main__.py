"""``python -m tests.chaos [--tasks 5000] [--attacks 5] [--brokers sqlite,redis,amqp,postgresql]``:
every chaos scenario at full size, printed as the table in docs/reliability.md. Needs the test
services of tests/support/services.py (Redis, RabbitMQ, PostgreSQL on loopback), ``redis-server``
on PATH for the Redis restart, PostgreSQL's server binaries (``pg_ctl``) for the PostgreSQL
restart (each on a private server of its own), and ``rabbitmqctl`` for RabbitMQ's connection
cuts (the shared server is never restarted)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.chaos import harness
from tests.chaos.targets import AMQP_CUT_PREFETCH, KINDS, AmqpConnectionCut, target
from tests.postgres.test_restart import PrivatePostgres
from tests.redis.conftest import RedisServer


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos")
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--attacks", type=int, default=5)
    parser.add_argument("--brokers", default=",".join(KINDS))
    args = parser.parse_args()
    tasks, attacks = args.tasks, args.attacks
    kinds = [k for k in args.brokers.split(",") if k]
    reports: list[harness.Report] = []
    print(harness.HEADER, flush=True)

    def record(report: harness.Report) -> None:
        reports.append(report)
        print(report.row(), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for kind in kinds:
            for name in ("sigkill", "sigterm", "poison"):
                workdir = root / f"{kind}-{name}"
                workdir.mkdir()
                with target(kind, workdir) as where:
                    if name == "sigkill":
                        record(harness.sigkill(workdir, where, tasks=tasks, kills=attacks))
                    elif name == "sigterm":
                        record(harness.sigterm(workdir, where, tasks=tasks, stops=attacks))
                    else:
                        record(harness.poison(workdir, where, tasks=tasks // 2))
        restarts = max(1, attacks // 2)
        if "redis" in kinds:
            server_dir = root / "redis-server"
            server_dir.mkdir()
            server = RedisServer(server_dir, unix=False, durable=True)
            server.start()
            try:
                workdir = root / "redis-restart"
                workdir.mkdir()
                record(harness.broker_restart(workdir, server, "redis", tasks=tasks,
                                              restarts=restarts))
            finally:
                server.stop()
        if "amqp" in kinds:
            workdir = root / "amqp-cut"
            workdir.mkdir()
            with target("amqp", workdir) as where:
                record(harness.broker_restart(workdir, AmqpConnectionCut(where.broker_url), "amqp",
                                              tasks=tasks, restarts=restarts,
                                              backend_url=where.backend_url,
                                              scenario="connections cut",
                                              prefetch_multiplier=AMQP_CUT_PREFETCH))
        if "postgresql" in kinds:
            # Not under the temporary directory: its 0700 parent would keep the postgres user out.
            cluster = Path(tempfile.mkdtemp(prefix="celeriac-pg-"))
            pg = PrivatePostgres(cluster)
            try:
                workdir = root / "postgresql-restart"
                workdir.mkdir()
                record(harness.broker_restart(workdir, pg, "postgresql", tasks=tasks,
                                              restarts=restarts, backend_url="db+" + pg.url))
            finally:
                try:
                    pg.stop()
                except subprocess.CalledProcessError:
                    pass  # already stopped
                shutil.rmtree(cluster, ignore_errors=True)
    return 0 if all(r.passed for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
