"""Benchmark the analytics rollups: the refresh, and each page's reads against live SQL.

    .venv/bin/python bench/analytics_bench.py [--scale 1.0] [--repeat 20] [--keep DIR]
        [--markdown FILE]

On a throwaway local cluster (never the machine's own server), the query patterns' data set
(bench/data.py; at --scale 1: 100,000 profiles, 20,000 households, 5,000,000 completions
over twelve months, 1,000,000 notifications, 30 days of assignments), with the households
spread over six time zones and three in four done assignments done before their due time.
Then:
- the full rebuild (`analytics refresh --full`), its days, rows and time;
- one day's incremental refresh: a day's worth of completions (completions / 360) recorded
  now for the last 24 hours, then `analytics refresh`;
- for each page's figures (the service's last 90 days, a household's last 12 weeks, the
  top households this month) the median time of the read function (chores.analytics.read,
  over the rollups) against the same figures computed live from completions, assignments,
  users and notifications, each `--repeat` times with other households, and the ratio;
- the admin pages themselves, when they exist (Django's test Client, a superuser).
ANALYTICS_REFRESH_MARGIN is 5 s here (300 s by default): the bulk load happens just before
the full rebuild, which a real watermark margin would read again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import data  # noqa: E402
from bench.data import log  # noqa: E402
from bench.query_patterns_bench import load as load_query_patterns_data  # noqa: E402

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Pacific/Auckland",
]

LIVE_SERVICE = """
WITH c AS (
    SELECT (c.completed_at AT TIME ZONE 'UTC')::date AS day, c.household_id, c.points,
           m.user_id
    FROM completions c LEFT JOIN household_members m ON m.id = c.member_id
    WHERE c.completed_at >= %(lo)s AND c.completed_at < %(hi)s
), active AS (
    SELECT day, count(DISTINCT user_id) AS users FROM (
        SELECT day, user_id FROM c WHERE user_id IS NOT NULL
        UNION ALL
        SELECT (last_seen_at AT TIME ZONE 'UTC')::date, id FROM users
        WHERE last_seen_at >= %(lo)s AND last_seen_at < %(hi)s) u
    GROUP BY day
), a AS (
    SELECT (due_at AT TIME ZONE 'UTC')::date AS day, count(*) AS due,
           count(*) FILTER (WHERE status = 'done' AND (status_changed_at <= due_at OR EXISTS (
               SELECT 1 FROM completions l WHERE l.assignment_id = a.id
               AND l.completed_at <= a.due_at AND l.completed_at >= a.due_at - interval '31 days'
           ))) AS on_time
    FROM assignments a
    WHERE due_at >= %(lo)s AND due_at < %(hi)s AND status <> 'cancelled'
    GROUP BY 1
)
SELECT d.day::date, coalesce(active.users, 0), cs.households, np.n, cs.n, cs.points, a.due,
       a.on_time, ns.sent, nr.read
FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') d(day)
LEFT JOIN active ON active.day = d.day
LEFT JOIN (SELECT day, count(*) AS n, sum(points) AS points,
                  count(DISTINCT household_id) AS households FROM c GROUP BY day) cs
    ON cs.day = d.day
LEFT JOIN a ON a.day = d.day
LEFT JOIN (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM users
           WHERE created_at >= %(lo)s AND created_at < %(hi)s GROUP BY 1) np ON np.day = d.day
LEFT JOIN (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS sent
           FROM notifications WHERE created_at >= %(lo)s AND created_at < %(hi)s
           GROUP BY 1) ns ON ns.day = d.day
LEFT JOIN (SELECT (read_at AT TIME ZONE 'UTC')::date AS day, count(*) AS read
           FROM notifications WHERE read_at >= %(lo)s AND read_at < %(hi)s
           GROUP BY 1) nr ON nr.day = d.day
ORDER BY 1
"""

LIVE_HOUSEHOLD = """
WITH c AS (
    SELECT date_trunc('week', (c.completed_at AT TIME ZONE h.timezone))::date AS week,
           c.member_id, c.points
    FROM completions c JOIN households h ON h.id = c.household_id
    WHERE c.household_id = %(household)s AND c.completed_at >= %(lo)s AND c.completed_at < %(hi)s
      AND (c.completed_at AT TIME ZONE h.timezone)::date >= %(first)s
      AND (c.completed_at AT TIME ZONE h.timezone)::date < %(end)s
), a AS (
    SELECT date_trunc('week', (a.due_at AT TIME ZONE h.timezone))::date AS week, a.assignee_id,
           a.status = 'done' AND (a.status_changed_at <= a.due_at OR EXISTS (
               SELECT 1 FROM completions l WHERE l.assignment_id = a.id
               AND l.completed_at <= a.due_at AND l.completed_at >= a.due_at - interval '31 days'
           )) AS on_time,
           a.status IN ('open', 'missed') AND a.due_at < now() AS overdue
    FROM assignments a JOIN tasks t ON t.id = a.task_id JOIN households h ON h.id = t.household_id
    WHERE t.household_id = %(household)s AND a.due_at >= %(lo)s AND a.due_at < %(hi)s
      AND a.status <> 'cancelled'
      AND (a.due_at AT TIME ZONE h.timezone)::date >= %(first)s
      AND (a.due_at AT TIME ZONE h.timezone)::date < %(end)s
)
SELECT week, member_id, sum(n), sum(points), sum(due), sum(on_time), sum(overdue) FROM (
    SELECT week, member_id, count(*) AS n, sum(points) AS points, 0 AS due, 0 AS on_time,
           0 AS overdue FROM c GROUP BY 1, 2
    UNION ALL
    SELECT week, assignee_id, 0, 0, count(*), count(*) FILTER (WHERE on_time),
           count(*) FILTER (WHERE overdue) FROM a GROUP BY 1, 2
) x GROUP BY ROLLUP (week, member_id)
"""

LIVE_TOP = """
SELECT t.household_id, h.name, t.points, t.n FROM (
    SELECT c.household_id, sum(c.points) AS points, count(*) AS n
    FROM completions c JOIN households h ON h.id = c.household_id
    WHERE c.completed_at >= %(lo)s AND c.completed_at < %(hi)s
      AND (c.completed_at AT TIME ZONE h.timezone)::date >= %(first)s
      AND (c.completed_at AT TIME ZONE h.timezone)::date < %(end)s
    GROUP BY c.household_id ORDER BY points DESC, c.household_id LIMIT 10
) t JOIN households h ON h.id = t.household_id ORDER BY t.points DESC, t.household_id
"""


def scaled(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(
        profiles=int(100_000 * args.scale),
        households=int(20_000 * args.scale),
        completions=int(5_000_000 * args.scale),
        notifications=int(1_000_000 * args.scale),
    )


def prepare(cluster: Any, sizes: argparse.Namespace) -> None:
    """Load the query patterns' data set, then spread time zones and on-time assignments."""
    load_query_patterns_data(cluster, sizes)
    with data.owner_connection(cluster) as conn:
        if conn.execute("SELECT count(DISTINCT timezone) FROM households").fetchone()[0] == 1:
            log("households over six time zones")
            conn.execute(
                "UPDATE households SET timezone = (%s::text[])[1 + id %% %s]", [ZONES, len(ZONES)]
            )
        early = "status = 'done' AND status_changed_at <= due_at"
        if not conn.execute(f"SELECT EXISTS (SELECT FROM assignments WHERE {early})").fetchone()[0]:
            log("three in four done assignments done before their due time")
            conn.execute(
                "UPDATE assignments SET status_changed_at = due_at - interval '2 hours'"
                " WHERE status = 'done' AND id % 4 <> 0"
            )
        conn.execute("VACUUM ANALYZE households, assignments")


def add_a_day(cluster: Any, sizes: argparse.Namespace) -> int:
    """Record a day's worth of completions now, for the last 24 hours."""
    n = sizes.completions // 360
    with data.owner_connection(cluster) as conn:
        conn.execute(
            """
            INSERT INTO completions (household_id, member_id, task_id, completed_at, points)
            SELECT h, 3 * h - 2 + n %% 3, 3 * h - 2 + (n / 7) %% 3,
                   now() - make_interval(secs => (n::bigint * 7919) %% 86400), n %% 10
            FROM (SELECT n, 1 + n %% %s AS h FROM generate_series(1, %s) n) s
            """,
            [sizes.households, n],
        )
    return n


def median_ms(call: Callable[[int], Any], repeat: int) -> float:
    call(0)  # warm-up
    timings = []
    for n in range(repeat):
        started = time.perf_counter()
        call(n)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def live(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def measure_pages(households: int, repeat: int, live_repeat: int) -> list[tuple[str, float, float]]:
    from zoneinfo import ZoneInfo

    from chores.analytics import read
    from chores.models import Household

    today = datetime.now(UTC).date()
    picks = [1 + (n * 7919) % households for n in range(repeat + 1)]
    zones = dict(Household.objects.filter(pk__in=picks).values_list("pk", "timezone"))

    def service_live(_: int) -> Any:
        first = today - timedelta(days=89)
        lo = datetime(first.year, first.month, first.day, tzinfo=UTC)
        return live(
            LIVE_SERVICE,
            {"lo": lo, "hi": lo + timedelta(days=90), "first": first, "last": today},
        )

    def household_live(n: int) -> Any:
        household = picks[n]
        local_today = datetime.now(ZoneInfo(zones[household])).date()
        weeks = read.week_starts(local_today, 12)
        first, end = weeks[0], weeks[-1] + timedelta(days=7)
        lo = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(hours=14)
        hi = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(hours=12)
        return live(
            LIVE_HOUSEHOLD,
            {"household": household, "lo": lo, "hi": hi, "first": first, "end": end},
        )

    def top_live(_: int) -> Any:
        first, end = read.month_days(today.year, today.month)
        lo = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(hours=14)
        hi = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(hours=12)
        return live(LIVE_TOP, {"lo": lo, "hi": hi, "first": first, "end": end})

    pages = [
        ("service, last 90 days", lambda _: read.service_days(90), service_live),
        ("a household, last 12 weeks", lambda n: read.household_weeks(picks[n]), household_live),
        (
            "top households, query",
            lambda _: read.top_households(today.year, today.month, cached=False),
            top_live,
        ),
        (
            "top households, cached",
            lambda _: read.top_households(today.year, today.month),
            top_live,
        ),
    ]
    results = []
    for title, rollup, computed in pages:
        log(f"measuring: {title}")
        results.append((title, median_ms(rollup, repeat), median_ms(computed, live_repeat)))
    return results


def measure_admin(households: int, repeat: int) -> list[tuple[str, float]]:
    """Time the admin's analytics pages (if this checkout has them) with Django's Client."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import NoReverseMatch, reverse

    try:
        urls = [
            ("admin: usage analytics", reverse("admin:chores_servicedailystats_changelist")),
            ("admin: household page", reverse("admin:chores_household_change", args=[1])),
        ]
    except NoReverseMatch:
        return []
    setup_test_environment()
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first() or (
        user_model.objects.create_superuser("bench", "bench@example.com", "bench-password-1")
    )
    client = Client()
    client.force_login(user)
    results = []
    for title, url in urls:
        response = client.get(url)
        if response.status_code != 200:
            log(f"{title}: {url} answered {response.status_code}; not timed")
            continue
        results.append((title, median_ms(lambda _n, u=url: client.get(u), repeat)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1: 5M completions.")
    parser.add_argument("--repeat", type=int, default=20, help="Executions per measurement.")
    parser.add_argument(
        "--live-repeat", type=int, default=5, help="Executions of each live computation."
    )
    parser.add_argument("--keep", type=Path, help="Cluster folder to keep and reuse.")
    parser.add_argument("--markdown", type=Path, help="Write the figures here.")
    args = parser.parse_args(argv)
    if not 0.001 <= args.scale <= 10 or args.repeat < 1 or args.live_repeat < 1:
        parser.error("--scale must be between 0.001 and 10, --repeat and --live-repeat at least 1")
    sizes = scaled(args)
    load_before = os.getloadavg()[0]
    lines = []
    with data.migrated_cluster(args.keep, "choregarden-anbench-") as cluster:
        prepare(cluster, sizes)
        os.environ["ANALYTICS_REFRESH_MARGIN"] = "5s"
        os.environ.setdefault("ALLOWED_HOSTS", "testserver")
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        import django

        django.setup()
        from chores.analytics.refresh import DayDone, refresh

        with data.owner_connection(cluster) as conn:  # a rebuild from nothing, every run
            conn.execute(
                "TRUNCATE household_daily_stats, member_daily_stats, service_daily_stats,"
                " analytics_refresh_state"
            )
        log("full rebuild")
        full = refresh(full=True)
        lines.append(
            f"full rebuild: {len(full.days)} days, {full.rows:,} rows in {full.seconds:.1f} s "
            f"({full.seconds / len(full.days) * 1000:.0f} ms a day)"
        )
        with data.owner_connection(cluster) as conn:  # as autovacuum does after the inserts
            conn.execute("VACUUM ANALYZE household_daily_stats, member_daily_stats")
        time.sleep(6)  # past the margin
        added = add_a_day(cluster, sizes)
        log(f"incremental refresh after {added:,} new completions")
        per_day: list[DayDone] = []
        one = refresh(progress=per_day.append)
        lines.append(
            f"incremental refresh after a day's {added:,} completions: {len(one.days)} days "
            f"({one.days[0]}..{one.days[-1]}, {one.skipped} skipped), {one.rows:,} rows "
            f"in {one.seconds * 1000:.0f} ms: finding the days "
            f"{(one.seconds - sum(d.seconds for d in per_day)) * 1000:.0f} ms, each day "
            + ", ".join(f"{d.day} {d.seconds * 1000:.0f} ms" for d in per_day)
        )
        again = refresh()
        lines.append(
            f"refresh with nothing new: {len(again.days)} days in {again.seconds * 1000:.0f} ms"
        )
        lines.append("")
        lines.append(f"{'page figures':<28} {'rollups ms':>11} {'live ms':>10} {'ratio':>8}")
        for title, rollup_ms, live_ms in measure_pages(
            sizes.households, args.repeat, args.live_repeat
        ):
            lines.append(
                f"{title:<28} {rollup_ms:>11.2f} {live_ms:>10.1f} {live_ms / rollup_ms:>7.0f}x"
            )
        admin = measure_admin(sizes.households, args.repeat)
        for title, ms in admin:
            lines.append(f"{title:<28} {ms:>11.1f} ms median (whole page, test Client)")
    summary = (
        f"{sizes.profiles:,} profiles, {sizes.households:,} households, "
        f"{sizes.completions:,} completions, {sizes.notifications:,} notifications; median of "
        f"{args.repeat} (live: {args.live_repeat}); load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    print()
    print(summary)
    print("\n".join(lines))
    if args.markdown:
        args.markdown.write_text(f"{summary}\n\n```\n" + "\n".join(lines) + "\n```\n")
        log(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
