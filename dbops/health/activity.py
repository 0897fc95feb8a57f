"""Sessions: connections in use, long-running queries, blocked queries."""

from __future__ import annotations

from typing import Any

from dbops.health.base import (
    CRITICAL,
    OK,
    WARNING,
    CheckResult,
    fetch_rows,
    fmt,
    short,
    status_above,
    thresholds,
)


def check_connections(cursor: Any) -> CheckResult:
    limits = thresholds("connections")
    cursor.execute(
        "SELECT current_setting('max_connections')::int,"
        " current_setting('superuser_reserved_connections')::int,"
        " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
    )
    max_connections, reserved, used = cursor.fetchone()
    percent = round(100.0 * used / max_connections, 1)
    rows = fetch_rows(
        cursor,
        "SELECT coalesce(datname, '-'), coalesce(usename, '-'), coalesce(application_name, ''),"
        " coalesce(state, '-'), count(*) FROM pg_stat_activity"
        " WHERE backend_type = 'client backend'"
        " GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC, 1, 2, 3, 4",
    )
    return CheckResult(
        name="connections",
        title="Connections",
        status=status_above(percent, limits),
        summary=f"{used} of {max_connections} connections in use "
        f"({reserved} reserved for superusers).",
        values={"used_percent": percent, "used": used, "max": max_connections},
        thresholds=dict(limits),
        columns=["database", "user", "application", "state", "connections"],
        rows=rows,
        hint="Near the limit: look for idle connections (pool sizes DB_POOL_MAX_SIZE x "
        "processes), sessions stuck 'idle in transaction', or raise max_connections.",
    )


def check_long_running_queries(cursor: Any) -> CheckResult:
    limits = thresholds("long_running_queries")
    rows = fetch_rows(
        cursor,
        "SELECT pid, coalesce(usename, '-'), coalesce(application_name, ''), state,"
        " round(extract(epoch FROM now() - coalesce(xact_start, query_start))::numeric, 1)"
        "::float, query"
        " FROM pg_stat_activity"
        " WHERE state IS NOT NULL AND state <> 'idle' AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend'"
        " AND now() - coalesce(xact_start, query_start) > make_interval(secs => %s)"
        " ORDER BY 5 DESC",
        [limits["warning_seconds"]],
    )
    for row in rows:
        row[5] = short(row[5])
    longest = rows[0][4] if rows else 0.0
    status = OK
    if rows:
        status = CRITICAL if longest >= limits["critical_seconds"] else WARNING
    return CheckResult(
        name="long_running_queries",
        title="Long-running queries",
        status=status,
        summary=f"{len(rows)} quer{'y' if len(rows) == 1 else 'ies'} or transaction"
        f"{'' if len(rows) == 1 else 's'} running longer than {fmt(limits['warning_seconds'])} s"
        + (f"; the longest for {fmt(longest)} s." if rows else "."),
        values={"count": len(rows), "longest_seconds": longest},
        thresholds=dict(limits),
        columns=["pid", "user", "application", "state", "seconds", "query"],
        rows=rows,
        hint="Cancel one with SELECT pg_cancel_backend(pid); end its session with "
        "pg_terminate_backend(pid). 'idle in transaction' holds locks and blocks vacuum.",
    )


def check_blocked_queries(cursor: Any) -> CheckResult:
    limits = thresholds("blocked_queries")
    rows = fetch_rows(
        cursor,
        "SELECT blocked.pid, coalesce(blocked.usename, '-'),"
        " round(extract(epoch FROM now() - blocked.query_start)::numeric, 1)::float,"
        " array_to_string(pg_blocking_pids(blocked.pid), ', '), blocked.query,"
        " (SELECT string_agg(b.query, ' | ') FROM pg_stat_activity b"
        "  WHERE b.pid = ANY(pg_blocking_pids(blocked.pid)))"
        " FROM pg_stat_activity blocked"
        " WHERE cardinality(pg_blocking_pids(blocked.pid)) > 0"
        " ORDER BY 3 DESC",
    )
    for row in rows:
        row[4], row[5] = short(row[4]), short(row[5])
    return CheckResult(
        name="blocked_queries",
        title="Blocked queries",
        status=status_above(len(rows), limits),
        summary=f"{len(rows)} session{'' if len(rows) == 1 else 's'} waiting for a lock "
        "held by another session.",
        values={"count": len(rows)},
        thresholds=dict(limits),
        columns=["pid", "user", "waiting seconds", "blocked by pids", "query", "blocking query"],
        rows=rows,
        hint="The blocking session usually holds a transaction open: finish it, or end it "
        "with SELECT pg_terminate_backend(pid).",
    )
