"""Benchmark the admin changelists on large tables against a plain ModelAdmin (issue 6.5).

    .venv/bin/python bench/admin_bench.py [--profiles 1000000] [--completions 10000000]
                                          [--repeat 7] [--keep DIR]

On a throwaway local cluster (never the machine's own server): migrate, load N profiles,
20,000 households with three members each and M completions over the last twelve monthly
partitions (INSERT ... SELECT generate_series, audit triggers off during the load), ANALYZE,
then measure in-process, through Django's test client as a signed-in superuser, the median
server time of each page: the project's admin (/admin/) and the same pages served by a plain
`ModelAdmin` with the same columns, search and filters (/plain/). Prints both and the ratio.
Goal: every page of ours under 100 ms median, and at least 10x faster than the plain admin
where the plain one counts rows. --keep DIR reuses a loaded cluster between runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import data  # noqa: E402
from bench.data import log  # noqa: E402
from dbops.localdb import LocalCluster  # noqa: E402

HOUSEHOLDS = 20_000
GOAL_MS = 100.0
GOAL_RATIO = 10.0


def load(cluster: LocalCluster, profiles: int, completions: int) -> None:
    with data.owner_connection(cluster) as conn:
        if data.count(conn, "users") >= profiles:
            log("data already loaded (--keep)")
            return
        started = time.perf_counter()
        households = min(HOUSEHOLDS, profiles // 3)  # three members each
        with data.audit_off(conn):
            data.load_profiles(conn, profiles)
            data.load_households(conn, households)
            data.load_completions(conn, completions, households)
        data.finish(conn, started)


def measure(repeat: int) -> list[tuple[str, float, float]]:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import override_settings

    settings.ALLOWED_HOSTS = ["*"]
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    two_months_ago = datetime.now(UTC).month - 2 or 12
    year = datetime.now(UTC).year - (1 if datetime.now(UTC).month <= 2 else 0)
    pages = [
        ("profiles: first page", "accounts/userprofile/", {}),
        ("profiles: search 'user4242'", "accounts/userprofile/", {"q": "user4242"}),
        ("profiles: filter inactive", "accounts/userprofile/", {"is_active__exact": "0"}),
        ("completions: first page", "chores/completion/", {}),
        (
            "completions: search a member's email",
            "chores/completion/",
            {"q": "user77@example.com"},
        ),
        (
            "completions: filter one month",
            "chores/completion/",
            {"month": f"{year}-{two_months_ago:02d}"},
        ),
    ]
    from django.db import connection

    sql_ms = [0.0]
    queries = [0]

    def timed_sql(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_ms[0] += (time.perf_counter() - started) * 1000
            queries[0] += 1

    results = []
    with (
        override_settings(ROOT_URLCONF="bench.admin_bench_urls"),
        connection.execute_wrapper(timed_sql),
    ):
        for label, path, params in pages:
            timings: dict[str, list[float]] = {"admin": [], "plain": []}
            sql: dict[str, list[tuple[float, int]]] = {"admin": [], "plain": []}
            for site in ("admin", "plain"):
                response = client.get(f"/{site}/{path}", params)  # warm-up
                assert response.status_code == 200, (site, path, response.status_code)
            for _ in range(repeat):
                for site in ("admin", "plain"):
                    sql_ms[0], queries[0] = 0.0, 0
                    started = time.perf_counter()
                    response = client.get(f"/{site}/{path}", params)
                    timings[site].append((time.perf_counter() - started) * 1000)
                    sql[site].append((sql_ms[0], queries[0]))
            ours, plain = statistics.median(timings["admin"]), statistics.median(timings["plain"])
            ours_sql = statistics.median(t for t, _ in sql["admin"])
            plain_sql = statistics.median(t for t, _ in sql["plain"])
            log(
                f"{label}: ours {ours:.1f} ms ({ours_sql:.1f} ms SQL, {sql['admin'][0][1]} "
                f"queries), plain {plain:.1f} ms ({plain_sql:.1f} ms SQL, "
                f"{sql['plain'][0][1]} queries)"
            )
            results.append((label, ours, plain))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--completions", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="Cluster folder to keep and reuse.")
    args = parser.parse_args(argv)

    with data.migrated_cluster(args.keep, "choregarden-adminbench-") as cluster:
        load(cluster, args.profiles, args.completions)
        results = measure(args.repeat)

    print()
    print(f"{args.profiles:,} profiles, {args.completions:,} completions; median of {args.repeat}")
    print(f"{'page':<40} {'ours ms':>9} {'plain ms':>9} {'plain/ours':>11}")
    failed = []
    for label, ours, plain in results:
        print(f"{label:<40} {ours:>9.1f} {plain:>9.1f} {plain / ours:>10.1f}x")
        if ours >= GOAL_MS:
            failed.append(f"{label}: {ours:.1f} ms is not under {GOAL_MS:.0f} ms")
        if plain / ours < GOAL_RATIO:
            failed.append(f"{label}: {plain / ours:.1f}x is under {GOAL_RATIO:.0f}x")
    print()
    print("goals: " + ("all met" if not failed else "missed:\n  " + "\n  ".join(failed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
