"""Health over time, in the manner of PgHero's history.

`record` stores the figures the health checks read (one `HealthSnapshot`) and the top
statements of pg_stat_statements by total time (`HealthStatementSample`), and deletes
snapshots older than DB_HEALTH_HISTORY_DAYS in the same transaction. `dbhealth --record`
calls it from cron as the application role, which has CRUD on these tables (D4).

The series readers give the health page its charts. A range is cut into buckets of a fixed
length (24 hours: 5 minutes, 7 days: 35 minutes, 30 days: 150 minutes; at most 289 points
each) aligned on 2000-01-01 00:00 UTC, so a bucket's start does not move between page
loads. Within a bucket, figures that are a level (connections, cache hit ratio, dead
tuples) are averaged; sizes, max_connections and replication lag take the bucket's
maximum, so a spike is not averaged away. A snapshot alone in its bucket shows as stored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router, transaction
from django.utils import timezone

from dbops.health import SEVERITY, CheckResult, run_checks, thresholds, worst_status
from dbops.models import HealthSnapshot, HealthStatementSample
from sqlmigrations.redact import redact

STATUS_NAMES = {0: "ok", 1: "warning", 2: "critical"}  # health_snapshots.status
DEFAULT_HISTORY_DAYS = 35  # the 30-day view stays full
DEFAULT_HISTORY_STATEMENTS = 20
STATEMENT_TEXT_LIMIT = 1000
TOP_TABLES = 5
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
# Records every 5 minutes and mails the one line (or the error) when the health is critical.
CRON_LINE = (
    "*/5 * * * *  cd /srv/choregarden && .venv/bin/python manage.py dbhealth --record "
    '--fail-on critical >var/dbhealth-record.txt 2>&1 || mail -s "database critical" '
    "ops@example.com <var/dbhealth-record.txt"
)
# pg_stat_statements keeps $n placeholders for the constants of planned statements, but
# the text of a utility statement (SET, ALTER ROLE ..., a migration file) as it was sent:
# its quoted values are masked too, so no value reaches the table or the page. Line
# comments go (a migration file's header would fill the 1,000 characters); /* tags */ stay.
_TOKENS = re.compile(
    r"(?P<quoted>(?:(?<!\w)[eE])?'(?:''|\\.|[^'\\])*(?:'|$)"
    r"|\$(?P<tag>\w*)\$.*?(?:\$(?P=tag)\$|\Z))"
    r"|(?P<comment>--[^\n]*)",
    re.S,
)


_EMPTY = CheckResult(name="", title="", status="ok", summary="")  # a check that did not run


class HistoryError(Exception):
    """The figures of a snapshot could not be read."""


@dataclass(frozen=True)
class Range:
    key: str
    label: str
    span: timedelta
    bucket: timedelta


RANGES = {
    "24h": Range("24h", "24 hours", timedelta(hours=24), timedelta(minutes=5)),
    "7d": Range("7d", "7 days", timedelta(days=7), timedelta(minutes=35)),
    "30d": Range("30d", "30 days", timedelta(days=30), timedelta(minutes=150)),
}
DEFAULT_RANGE = RANGES["24h"]


def parse_range(value: Any) -> Range:
    """Return the range a query-string value names; anything else is the 24-hour range."""
    return RANGES.get(value, DEFAULT_RANGE) if isinstance(value, str) else DEFAULT_RANGE


def history_days() -> int:
    """Return DB_HEALTH_HISTORY_DAYS, read at call time."""
    days = getattr(settings, "DB_HEALTH_HISTORY_DAYS", DEFAULT_HISTORY_DAYS)
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise ImproperlyConfigured(f"DB_HEALTH_HISTORY_DAYS={days!r} must be a whole number >= 1.")
    return days


def history_statements() -> int:
    """Return DB_HEALTH_HISTORY_STATEMENTS: how many statements a snapshot keeps."""
    count = getattr(settings, "DB_HEALTH_HISTORY_STATEMENTS", DEFAULT_HISTORY_STATEMENTS)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ImproperlyConfigured(
            f"DB_HEALTH_HISTORY_STATEMENTS={count!r} must be a whole number >= 0."
        )
    return count


def statement_text(query: str | None) -> str:
    """Return a statement's text as stored: one line, values and passwords masked, cut."""
    text = _TOKENS.sub(lambda m: "'…'" if m["quoted"] else " ", query or "")
    text = redact(" ".join(text.split()))
    if len(text) > STATEMENT_TEXT_LIMIT:
        text = text[: STATEMENT_TEXT_LIMIT - 1] + "…"
    return text


@dataclass
class Recording:
    """What one `record` run stored and deleted."""

    snapshot: HealthSnapshot
    statements: int
    pruned: int
    note: str = ""  # why no statements were sampled (pg_stat_statements missing)
    results: list[CheckResult] = field(default_factory=list)


def record(using: str = "default", results: list[CheckResult] | None = None) -> Recording:
    """Store one snapshot of the health figures and delete those past the retention."""
    days = history_days()
    top = history_statements()
    if results is None:
        results = run_checks(using=using)
    checks = {r.name: r for r in results}
    missing = [n for n in ("connections", "table_sizes") if not checks.get(n, _EMPTY).values]
    if missing:
        details = "; ".join(checks[n].summary.rstrip(".") for n in missing if n in checks)
        raise HistoryError(
            f"cannot record a health snapshot without the {' and '.join(missing)} check"
            f"{': ' + details if details else ' (not run)'}. Nothing was recorded; "
            f"`manage.py dbhealth --check {missing[0]}` shows the check."
        )
    connections_check, sizes = checks["connections"], checks["table_sizes"]
    replication = checks.get("replication", _EMPTY).values
    slow = checks.get("slow_queries", _EMPTY)
    # The slow-queries check has columns only when pg_stat_statements answered.
    note = "" if slow.columns else (slow.summary or "pg_stat_statements was not checked.")
    timeout = int(thresholds("statement_timeout_ms")["value"])
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout)])
        dead_tuples, cache_ratio = _totals(cursor)
        statements = _statements(cursor, top) if top and not note else []
        snapshot = HealthSnapshot.objects.using(using).create(
            status=SEVERITY[worst_status(results)],
            connections=connections_check.values["used"],
            max_connections=connections_check.values["max"],
            cache_hit_ratio=cache_ratio,
            database_bytes=sizes.values["database_bytes"],
            dead_tuples=dead_tuples,
            replication_lag_seconds=replication.get("max_lag_seconds"),
            replication_lag_bytes=replication.get("max_lag_bytes"),
            table_sizes={row[0]: int(row[1]) for row in sizes.rows},
        )
        snapshot.refresh_from_db(fields=["taken_at"])
        HealthStatementSample.objects.using(using).bulk_create(
            HealthStatementSample(
                snapshot=snapshot,
                queryid=queryid,
                query=statement_text(query),
                calls=calls,
                total_ms=total_ms,
                mean_ms=total_ms / calls,
            )
            for queryid, query, calls, total_ms in statements
        )
        pruned = prune(using=using, now=snapshot.taken_at, days=days)
    return Recording(snapshot, len(statements), pruned, note, results)


def _totals(cursor: Any) -> tuple[int, float | None]:
    """Return the dead tuples of all tables and the share of block reads from memory."""
    cursor.execute(
        "SELECT (SELECT coalesce(sum(n_dead_tup), 0)::bigint FROM pg_stat_user_tables),"
        " (SELECT coalesce(sum(heap_blks_hit), 0) FROM pg_statio_user_tables)"
        " + (SELECT coalesce(sum(idx_blks_hit), 0) FROM pg_statio_user_indexes),"
        " (SELECT coalesce(sum(heap_blks_read), 0) FROM pg_statio_user_tables)"
        " + (SELECT coalesce(sum(idx_blks_read), 0) FROM pg_statio_user_indexes)"
    )
    dead, hit, read = cursor.fetchone()
    return int(dead), (float(hit) / float(hit + read) if hit + read else None)


def _statements(cursor: Any, top: int) -> list[tuple[int, str, int, float]]:
    """Return the database's top statements by total time (summed over roles)."""
    cursor.execute(
        "SELECT s.queryid, min(s.query), sum(s.calls)::bigint, sum(s.total_exec_time)::float"
        " FROM pg_stat_statements s"
        " WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND s.queryid IS NOT NULL"
        " GROUP BY s.queryid HAVING sum(s.calls) > 0"
        " ORDER BY 4 DESC, 1 LIMIT %s",
        [top],
    )
    return [tuple(row) for row in cursor.fetchall()]


def prune(using: str = "default", now: datetime | None = None, days: int | None = None) -> int:
    """Delete snapshots older than the retention (their samples go by the cascade)."""
    cutoff = (now or timezone.now()) - timedelta(days=days or history_days())
    table = connections[using].ops.quote_name(HealthSnapshot._meta.db_table)
    with connections[using].cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE taken_at < %s", [cutoff])
        return cursor.rowcount


# --- the page's series ---------------------------------------------------------------------

Point = tuple[datetime, float | None]


@dataclass
class History:
    """A range's figures, bucketed: each list holds (bucket start, value) points."""

    range: Range
    snapshots: int = 0
    connections: list[Point] = field(default_factory=list)
    max_connections: list[Point] = field(default_factory=list)
    cache_hit_ratio: list[Point] = field(default_factory=list)  # 0 to 1
    database_bytes: list[Point] = field(default_factory=list)
    dead_tuples: list[Point] = field(default_factory=list)
    lag_seconds: list[Point] = field(default_factory=list)
    lag_bytes: list[Point] = field(default_factory=list)
    tables: dict[str, list[Point]] = field(default_factory=dict)


def _read_alias() -> str:
    return router.db_for_read(HealthSnapshot) or "default"


def _window(span: Range, now: datetime | None) -> tuple[datetime, datetime]:
    end = now or timezone.now()
    return end - span.span, end


def figure_series(span: Range, now: datetime | None = None) -> History:
    """Return the range's figures, bucketed (see the module's docstring)."""
    since, until = _window(span, now)
    using = _read_alias()
    table = connections[using].ops.quote_name(HealthSnapshot._meta.db_table)
    history = History(range=span)
    window = {"step": span.bucket, "origin": ORIGIN, "since": since, "until": until}
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT date_bin(%(step)s, taken_at, %(origin)s) AS at, count(*),"
            " avg(connections)::float, max(max_connections), avg(cache_hit_ratio)::float,"
            " max(database_bytes), avg(dead_tuples)::float, max(replication_lag_seconds),"
            " max(replication_lag_bytes)"
            f" FROM {table} WHERE taken_at > %(since)s AND taken_at <= %(until)s"
            " GROUP BY 1 ORDER BY 1",
            window,
        )
        for at, count, conns, max_conns, ratio, size, dead, lag_s, lag_b in cursor.fetchall():
            history.snapshots += count
            history.connections.append((at, _round(conns)))
            history.max_connections.append((at, max_conns))
            history.cache_hit_ratio.append((at, _round(ratio, 4)))
            history.database_bytes.append((at, size))
            history.dead_tuples.append((at, _round(dead)))
            history.lag_seconds.append((at, lag_s))
            history.lag_bytes.append((at, lag_b))
        if not history.snapshots:
            return history
        cursor.execute(
            f"SELECT table_sizes FROM {table} WHERE taken_at > %(since)s"
            " AND taken_at <= %(until)s ORDER BY taken_at DESC, id DESC LIMIT 1",
            window,
        )
        latest = _as_dict(cursor.fetchone()[0])
        names = sorted(latest, key=lambda n: (-int(latest[n]), n))[:TOP_TABLES]
        cursor.execute(
            "SELECT date_bin(%(step)s, s.taken_at, %(origin)s), t.key, max(t.value::bigint)"
            f" FROM {table} s, jsonb_each_text(s.table_sizes) t"
            " WHERE s.taken_at > %(since)s AND s.taken_at <= %(until)s"
            " AND t.key = ANY(%(names)s) GROUP BY 1, 2 ORDER BY 1",
            {**window, "names": names},
        )
        found: dict[str, dict[datetime, int]] = {n: {} for n in names}
        for at, name, size in cursor.fetchall():
            found[name][at] = size
    buckets = [at for at, _ in history.connections]
    history.tables = {n: [(at, found[n].get(at)) for at in buckets] for n in names}
    return history


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):  # a backend that hands jsonb over as text
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def latest_snapshot() -> HealthSnapshot | None:
    return HealthSnapshot.objects.using(_read_alias()).order_by("-taken_at", "-id").first()


def latest_statements(snapshot: HealthSnapshot) -> list[HealthStatementSample]:
    """Return a snapshot's statements, the most total time first."""
    return list(snapshot.statements.order_by("-total_ms", "queryid"))


def statement_sample(queryid: int) -> HealthStatementSample | None:
    """Return the newest sample of a statement, or None when none is kept."""
    return (
        HealthStatementSample.objects.using(_read_alias())
        .filter(queryid=queryid)
        .select_related("snapshot")
        .order_by("-snapshot__taken_at", "-snapshot_id")
        .first()
    )


@dataclass
class StatementHistory:
    """One statement's mean time and calls between consecutive snapshots, bucketed."""

    range: Range
    mean_ms: list[Point] = field(default_factory=list)
    calls: list[Point] = field(default_factory=list)
    resets: int = 0  # statistics resets seen (calls went down)


def statement_series(queryid: int, span: Range, now: datetime | None = None) -> StatementHistory:
    """Return a statement's mean time between snapshots over the range.

    Between two samples, mean = (total_ms - previous total_ms) / (calls - previous calls).
    When calls went down, the statistics were reset in between: the later sample's own
    figures are what ran since the reset, so they are the interval's. No calls in a bucket
    leaves a gap, never a zero or a negative time.
    """
    since, until = _window(span, now)
    samples = HealthStatementSample.objects.using(_read_alias()).filter(queryid=queryid)
    inside = samples.filter(snapshot__taken_at__gt=since, snapshot__taken_at__lte=until)
    before = samples.filter(snapshot__taken_at__lte=since)
    order = ("snapshot__taken_at", "snapshot_id")
    columns = ("snapshot__taken_at", "calls", "total_ms")
    baseline = before.order_by(*(f"-{o}" for o in order)).values_list(*columns)[:1]
    rows = [*baseline, *inside.order_by(*order).values_list(*columns)]
    history = StatementHistory(range=span)
    intervals: list[tuple[datetime, int, float]] = []
    for (_, calls_before, total_before), (at, calls, total) in pairwise(rows):
        if calls < calls_before or total < total_before:
            history.resets += 1
            intervals.append((at, calls, total))
        else:
            intervals.append((at, calls - calls_before, total - total_before))
    buckets: dict[datetime, list[float]] = {}
    for at, calls, total in intervals:
        bucket = buckets.setdefault(_bucket(at, span.bucket), [0, 0.0])
        bucket[0] += calls
        bucket[1] += total
    for at, (calls, total) in sorted(buckets.items()):
        history.calls.append((at, calls))
        history.mean_ms.append((at, round(total / calls, 3) if calls else None))
    return history


def _bucket(at: datetime, step: timedelta) -> datetime:
    """Return the start of the bucket `at` falls in, as PostgreSQL's date_bin does."""
    return ORIGIN + step * ((at - ORIGIN) // step)


def parse_queryid(value: Any) -> int | None:
    """Return the queryid a query-string value names, or None (not a bigint)."""
    if not isinstance(value, str) or not value.strip().lstrip("-").isascii():
        return None
    try:
        queryid = int(value.strip())
    except ValueError:  # not a number, or more digits than Python converts
        return None
    return queryid if -(2**63) <= queryid < 2**63 else None
