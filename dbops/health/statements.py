"""Slow queries from pg_stat_statements, and how to enable it when it is missing."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, transaction

from dbops.health.base import (
    INFO,
    CheckResult,
    fetch_rows,
    fmt,
    short,
    status_above,
    thresholds,
)

ENABLE_PG_STAT_STATEMENTS = (
    "Slow queries come from the pg_stat_statements extension. To enable it: load the "
    "library at server start (shared_preload_libraries = 'pg_stat_statements' in "
    "postgresql.conf; on RDS, add pg_stat_statements to shared_preload_libraries in the "
    "DB parameter group and reboot the instance), then run CREATE EXTENSION "
    "pg_stat_statements; in this database as a superuser (on RDS, the master user)."
)


def check_slow_queries(cursor: Any) -> CheckResult:
    limits = thresholds("slow_queries")
    cursor.execute(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'),"
        " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')"
    )
    version, available = cursor.fetchone()
    problem = None
    if version is None:
        problem = "not created in this database" + ("" if available else " (nor installed)")
    else:
        try:
            with transaction.atomic(using=cursor.db.alias):
                cursor.execute("SELECT 1 FROM pg_stat_statements LIMIT 0")
        except DatabaseError:
            problem = "created but not loaded at server start (shared_preload_libraries)"
    if problem:
        return CheckResult(
            name="slow_queries",
            title="Slow queries",
            status=INFO,
            summary=f"pg_stat_statements is {problem}: slow queries cannot be listed.",
            thresholds=dict(limits),
            hint=ENABLE_PG_STAT_STATEMENTS,
        )
    rows = fetch_rows(
        cursor,
        "SELECT round(s.mean_exec_time::numeric, 1)::float,"
        " round(s.total_exec_time::numeric / 60000, 2)::float, s.calls,"
        " coalesce(r.rolname, '-'), s.query"
        " FROM pg_stat_statements s LEFT JOIN pg_roles r ON r.oid = s.userid"
        " WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND s.calls >= %s AND s.mean_exec_time >= %s"
        " ORDER BY s.total_exec_time DESC LIMIT %s",
        [limits["min_calls"], limits["mean_ms"], int(limits["top"])],
    )
    for row in rows:
        row[4] = short(row[4])
    return CheckResult(
        name="slow_queries",
        title="Slow queries",
        status=status_above(len(rows), limits),
        summary=f"{len(rows)} statement{'' if len(rows) == 1 else 's'} averaging "
        f"{fmt(limits['mean_ms'])} ms or more over {fmt(limits['min_calls'])}+ calls "
        f"(pg_stat_statements {version}).",
        values={"count": len(rows)},
        thresholds=dict(limits),
        columns=["mean ms", "total minutes", "calls", "user", "query"],
        rows=rows,
        hint="EXPLAIN (ANALYZE, BUFFERS) the statement; reset the figures with "
        "SELECT pg_stat_statements_reset(); after a fix.",
    )
