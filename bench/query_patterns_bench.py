"""Benchmark the app's query patterns with their indexes against without them (issue 4.4).

    .venv/bin/python bench/query_patterns_bench.py [--profiles 100000] [--households 20000]
        [--completions 5000000] [--notifications 1000000] [--repeat 50] [--keep DIR]
        [--markdown FILE]

On a throwaway local cluster (never the machine's own server): migrate, load the profiles,
the households (three members and three daily tasks each), 30 days of assignments per task
(1.8M for 20,000 households), the completions over twelve monthly partitions and the
notifications with generate_series (bench/data.py), VACUUM ANALYZE. Then, for each pattern of
bench/query_patterns.py, the SQL comes from the project's own ORM function
(`qs.query.sql_with_params()`, sent as Django sends it: parameters bound client-side) and
runs `--repeat` times, each with another member, household or user; the median is reported.
The same statements then run in one transaction that first drops the pattern's index (and
the indexes the planner would fall back to), and is rolled back: nothing is rebuilt. The
EXPLAIN (ANALYZE, BUFFERS) plans of both are printed (and written to --markdown FILE).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import data  # noqa: E402
from bench.data import log  # noqa: E402
from bench.query_patterns import Pattern, drop_statement, indexes_used, patterns  # noqa: E402
from dbops.localdb import LocalCluster  # noqa: E402


@dataclass
class Result:
    pattern: Pattern
    sql: str  # the first sample's statement, as sent
    dropped: list[str]
    with_ms: float
    without_ms: float
    server_with_ms: float
    server_without_ms: float
    used: list[str]
    used_without: list[str]
    plan: str
    plan_without: str

    @property
    def ratio(self) -> float:
        return self.without_ms / self.with_ms

    @property
    def server_ratio(self) -> float:
        return self.server_without_ms / self.server_with_ms


def load(cluster: LocalCluster, args: argparse.Namespace) -> None:
    with data.owner_connection(cluster) as conn:
        if data.count(conn, "notifications") >= args.notifications:
            log("data already loaded (--keep)")
            return
        if data.count(conn, "users"):
            raise SystemExit(
                f"{cluster.requested_dir}: holds a partial load (an earlier run stopped while "
                "loading); remove the folder or give another --keep"
            )
        started = time.perf_counter()
        with data.audit_off(conn):
            data.load_profiles(conn, args.profiles)
            data.load_households(conn, args.households)
            data.load_assignments(conn, args.households)
            data.load_completions(conn, args.completions, args.households)
            data.load_notifications(conn, args.notifications, args.households)
        data.finish(conn, started)


Statement = tuple[str, tuple[Any, ...]]


def run(cursor: psycopg.ClientCursor[Any], statements: list[Statement], times: int) -> list[float]:
    timings = []
    for sql, params in itertools.islice(itertools.cycle(statements), times):
        started = time.perf_counter()
        cursor.execute(sql, params)
        cursor.fetchall()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def server_times(
    cursor: psycopg.ClientCursor[Any], statements: list[Statement], times: int
) -> list[float]:
    """Execution Time of EXPLAIN ANALYZE (no per-node timing): the server's share alone."""
    timings = []
    for sql, params in itertools.islice(itertools.cycle(statements), times):
        cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}", params)
        timings.append(float(cursor.fetchone()[0][0]["Execution Time"]))
    return timings


def explain(cursor: psycopg.ClientCursor[Any], statement: Statement) -> str:
    cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement[0]}", statement[1])
    return "\n".join(row[0] for row in cursor.fetchall())


def measure(conn: psycopg.Connection[Any], pattern: Pattern, repeat: int) -> Result:
    statements = [pattern.sql(argument) for argument in pattern.samples(repeat)]
    cursor = psycopg.ClientCursor(conn)  # Django's psycopg backend binds client-side too
    first = statements[0]
    run(cursor, statements, len(statements))  # warm-up
    with_ms = statistics.median(run(cursor, statements, repeat))
    server_with_ms = statistics.median(server_times(cursor, statements, repeat))
    used = indexes_used(cursor, *first)
    plan = explain(cursor, first)
    dropped = [drop_statement(cursor, name) for name in (pattern.index, *pattern.fallbacks)]
    without_ms, server_without_ms, used_without, plan_without = 0.0, 0.0, [], ""
    with conn.transaction():
        for statement in dropped:
            cursor.execute(statement)
        run(cursor, statements, 2)  # warm-up
        without_ms = statistics.median(run(cursor, statements, repeat))
        server_without_ms = statistics.median(server_times(cursor, statements, repeat))
        used_without = indexes_used(cursor, *first)
        plan_without = explain(cursor, first)
        raise psycopg.Rollback()  # the indexes come back as they were, nothing rebuilt
    sql = cursor.mogrify(*first)
    return Result(
        pattern,
        sql,
        dropped,
        with_ms,
        without_ms,
        server_with_ms,
        server_without_ms,
        used,
        used_without,
        plan,
        plan_without,
    )


def report(result: Result) -> str:
    p = result.pattern
    return "\n".join(
        [
            f"### {p.title}",
            "",
            "```sql",
            result.sql,
            "```",
            "",
            f"Index: `{p.index}`"
            + (f" (fallbacks also dropped: {', '.join(p.fallbacks)})" if p.fallbacks else ""),
            f"With index: {result.with_ms:.3f} ms median; without: {result.without_ms:.3f} ms "
            f"({result.ratio:.0f}x); on the server {result.server_with_ms:.3f} ms against "
            f"{result.server_without_ms:.3f} ms ({result.server_ratio:.0f}x)",
            f"Dropped in the rolled-back run: {'; '.join(result.dropped)}",
            "",
            "With the index:",
            "```",
            result.plan,
            "```",
            "",
            "Without:",
            "```",
            result.plan_without,
            "```",
            "",
        ]
    )


def table(results: list[Result]) -> str:
    lines = [
        f"{'':<46} {'round trip, median ms':^31} {'server, median ms':^31}",
        f"{'pattern':<46} {'index':>9} {'without':>11} {'ratio':>9} {'index':>9} "
        f"{'without':>11} {'ratio':>9}  index used",
    ]
    for r in results:
        lines.append(
            f"{r.pattern.title:<46} {r.with_ms:>9.3f} {r.without_ms:>11.3f} {r.ratio:>8.0f}x "
            f"{r.server_with_ms:>9.3f} {r.server_without_ms:>11.3f} {r.server_ratio:>8.0f}x  "
            f"{', '.join(r.used) or 'none'} (without: {', '.join(r.used_without) or 'no index'})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--households", type=int, default=20_000)
    parser.add_argument("--completions", type=int, default=5_000_000)
    parser.add_argument("--notifications", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50, help="Executions per measurement.")
    parser.add_argument("--keep", type=Path, help="Cluster folder to keep and reuse.")
    parser.add_argument("--markdown", type=Path, help="Write the SQL, plans and figures here.")
    args = parser.parse_args(argv)
    if args.households < 1 or 3 * args.households > args.profiles:
        parser.error("--households must be at least 1 and at most a third of --profiles")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    load_before = os.getloadavg()[0]
    with data.migrated_cluster(args.keep, "choregarden-qpbench-") as cluster:
        load(cluster, args)
        import django

        django.setup()
        results = []
        with data.owner_connection(cluster) as conn:
            for pattern in patterns():
                log(f"measuring: {pattern.title}")
                results.append(measure(conn, pattern, args.repeat))

    reports = "\n".join(report(r) for r in results)
    print()
    print(reports)
    summary = (
        f"{args.profiles:,} profiles, {args.households:,} households, "
        f"{args.completions:,} completions, {args.notifications:,} notifications; "
        f"median of {args.repeat} executions with different parameters; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(summary)
    print(table(results))
    missing = [r.pattern.title for r in results if r.pattern.index not in r.used]
    if args.markdown:
        args.markdown.write_text(f"{summary}\n\n```\n{table(results)}\n```\n\n{reports}")
        log(f"wrote {args.markdown}")
    if missing:
        print("index not used by: " + "; ".join(missing))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
