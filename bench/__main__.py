"""``python -m bench <name> [options]``: run a benchmark and print a table with ratios."""

from __future__ import annotations

import argparse
import sys

from bench import amqp, canvas, dashboard, drain, events, postgres, speed, throughput, trees


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="name", required=True)
    sqlite = sub.add_parser("sqlite", help="embedded SQLite broker drain rate vs Celery")
    sqlite.add_argument("--n", type=int, default=20000, help="tasks for celeriac")
    sqlite.add_argument("--celery-n", type=int, default=3000, help="tasks for each Celery run")
    sqlite.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/15",
        help="Redis URL for the Celery-on-Redis reference ('' to skip)",
    )
    tp = sub.add_parser("throughput", help="celeriac vs Celery on the same Redis")
    tp.add_argument("--broker", default="redis://127.0.0.1:6379/15")
    tp.add_argument("--n", type=int, default=100000, help="tasks drained")
    tp.add_argument("--delay-n", type=int, default=20000, help="tasks sent one by one")
    tp.add_argument("--rtt-n", type=int, default=2000, help="round trips timed")
    tp.add_argument("--prefetch", type=int, default=64, help="worker_prefetch_multiplier")
    tp.add_argument(
        "--early-ack-batch",
        type=int,
        default=64,
        help="also run celeriac with this worker_early_ack_batch (1: skip)",
    )
    tp.add_argument(
        "--backend",
        default="",
        help="result backend for an amqp:// broker (default redis://127.0.0.1:6379/15)",
    )
    tp.add_argument("--rounds", type=int, default=3, help="interleaved rounds (amqp://)")
    tp.add_argument("--defaults-n", type=int, default=0,
                    help="tasks drained with default settings (amqp://; 0: --n)")
    pg = sub.add_parser("postgres", help="PostgreSQL drain: celeriac vs Celery vs Procrastinate")
    pg.add_argument("--broker", default="postgresql://postgres@127.0.0.1:5432/test")
    pg.add_argument("--backend", default="redis://127.0.0.1:6379/15",
                    help="result backend of celeriac and Celery (Redis)")
    pg.add_argument("--n", type=int, default=10000, help="tasks drained per run")
    pg.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    pg.add_argument("--prefetch", type=int, default=64, help="tuned worker_prefetch_multiplier")
    pg.add_argument("--early-ack-batch", type=int, default=64,
                    help="also run celeriac with this worker_early_ack_batch (1: skip)")
    cv = sub.add_parser("canvas", help="group and chord of n tasks, celeriac vs Celery on Redis")
    cv.add_argument("--broker", default="redis://127.0.0.1:6379/15")
    cv.add_argument("--n", type=int, default=10000, help="tasks in the group / chord header")
    cv.add_argument("--prefetch", type=int, default=64, help="worker_prefetch_multiplier")
    cv.add_argument("--timeout", type=float, default=600, help="seconds to wait for each get()")
    tr = sub.add_parser("trees", help="one celeriac source tree against another (before/after)")
    tr.add_argument("--before", required=True, help="path of the older tree (a git worktree)")
    tr.add_argument("--after", default=".", help="path of the newer tree")
    tr.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="'' to skip Redis")
    tr.add_argument("--n", type=int, default=20000, help="tasks drained")
    tr.add_argument("--delay-n", type=int, default=10000, help="tasks sent one by one")
    tr.add_argument("--rtt-n", type=int, default=1000, help="round trips timed")
    tr.add_argument("--rounds", type=int, default=3, help="runs per tree (medians shown)")
    tr.add_argument("--no-sqlite", action="store_true", help="skip the SQLite runs")
    ev = sub.add_parser("events", help="a worker's drain rate with events off and on (-E)")
    ev.add_argument("--broker", default="redis://127.0.0.1:6379/15")
    ev.add_argument("--n", type=int, default=50000, help="tasks drained per run")
    ev.add_argument("--rounds", type=int, default=3, help="runs of each (medians shown)")
    ev.add_argument("--prefetch", type=int, default=64, help="worker_prefetch_multiplier")
    ev.add_argument("--no-listener", action="store_true",
                    help="no receiver during the runs (the worker's own cost only)")
    db = sub.add_parser("dashboard", help="dashboard history queries at 100k tasks")
    db.add_argument("--n", type=int, default=100_000, help="tasks recorded")
    db.add_argument("--rounds", type=int, default=20, help="runs of each query (median shown)")
    db.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="'' to skip Redis")
    db.add_argument("--memory", action="store_true", help="also time memory://")
    sp = sub.add_parser("speed", help="issue 15's table: default and tuned workers on Redis, "
                        "Celery, celeriac and Huey, with round trips and profiles")
    # not DB 15: other bench commands still FLUSHDB it, which empties a run's queue mid-drain
    sp.add_argument("--redis", default="redis://127.0.0.1:6379/7")
    sp.add_argument("--n", type=int, default=20000, help="tasks queued, then drained")
    sp.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians shown)")
    sp.add_argument("--rtt-n", type=int, default=2000,
                    help="delay().get() round trips timed (10 s at most per run)")
    sp.add_argument("--count-n", type=int, default=2000,
                    help="tasks drained through the counting proxy (at most --n)")
    sp.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    args = parser.parse_args(argv)
    if args.name == "speed":
        return speed.run(args.redis, args.n, args.rounds, args.rtt_n, args.count_n,
                         profile=not args.no_profile)
    if args.name == "dashboard":
        return dashboard.run(args.n, args.rounds, args.redis, args.memory)
    if args.name == "trees":
        return trees.run(args.before, args.after, args.redis, args.n, args.delay_n, args.rtt_n,
                         args.rounds, sqlite=not args.no_sqlite)
    if args.name == "events":
        return events.run(args.broker, args.n, args.rounds, args.prefetch,
                          listen=not args.no_listener)
    if args.name == "canvas":
        return canvas.run(args.broker, args.n, args.prefetch, args.timeout, argv)
    if args.name == "postgres":
        return postgres.run(args.broker, args.backend, args.n, args.rounds, args.prefetch,
                            args.early_ack_batch)
    if args.name == "throughput" and args.broker.split("://")[0] in amqp.AMQP_SCHEMES:
        return amqp.run(
            args.broker, args.backend or "redis://127.0.0.1:6379/15", args.n, args.delay_n,
            args.rtt_n, args.prefetch, args.early_ack_batch, args.rounds, args.defaults_n,
        )
    if args.name == "throughput" and args.backend not in ("", args.broker):
        parser.error("--backend is for amqp:// brokers (Redis runs keep results in the broker)")
    if args.name == "throughput":
        return throughput.run(
            args.broker, args.n, args.delay_n, args.rtt_n, args.prefetch, args.early_ack_batch
        )
    if args.name == "sqlite":
        return drain.run_sqlite(args.n, args.celery_n, args.redis)
    return 2


if __name__ == "__main__":
    sys.exit(main())
