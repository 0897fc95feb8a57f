"""Database health checks in the style of PgHero, shared by the admin page and `dbhealth`.

Each check reads PostgreSQL's statistics views and returns a CheckResult: the figures,
the thresholds they were judged against, a status and the detail rows behind it. The
checks only read; they run on the connection alias given (a read replica for reporting
when one is configured), in one transaction with a statement timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections, transaction

from dbops.redact import redact

logger = logging.getLogger(__name__)

OK, INFO, WARNING, CRITICAL = "ok", "info", "warning", "critical"
SEVERITY = {OK: 0, INFO: 0, WARNING: 1, CRITICAL: 2}
QUERY_TEXT_LIMIT = 300
INT_MAX = {"smallint": 32767, "integer": 2147483647, "bigint": 9223372036854775807}

# Defaults a deployment can override per key in settings.DB_HEALTH_THRESHOLDS.
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "connections": {"warning": 70, "critical": 90},  # % of max_connections in use
    "long_running_queries": {"warning_seconds": 60, "critical_seconds": 300},
    "blocked_queries": {"warning": 1, "critical": 5},  # sessions waiting on a lock
    # % of block reads served from memory, judged once min_blocks have been read
    "cache_hit_ratio": {"warning": 99, "critical": 95, "min_blocks": 10000},
    "table_sizes": {"top": 10},
    "index_sizes": {"top": 10},
    "unused_indexes": {"warning": 1, "min_size_bytes": 1024 * 1024},
    "duplicate_indexes": {"warning": 1},
    "missing_indexes": {"warning": 1, "min_rows": 10000, "index_usage_percent": 95},
    "sequences": {"warning": 75, "critical": 90},  # % of the column's or sequence's maximum
    "dead_tuples": {"warning": 20, "critical": 50, "min_dead_rows": 1000},  # % dead rows
    "slow_queries": {"warning": 1, "mean_ms": 100, "min_calls": 10, "top": 10},
    "statement_timeout_ms": {"value": 10000},
}

ENABLE_PG_STAT_STATEMENTS = (
    "Slow queries come from the pg_stat_statements extension. To enable it: load the "
    "library at server start (shared_preload_libraries = 'pg_stat_statements' in "
    "postgresql.conf; on RDS, add pg_stat_statements to shared_preload_libraries in the "
    "DB parameter group and reboot the instance), then run CREATE EXTENSION "
    "pg_stat_statements; in this database as a superuser (on RDS, the master user)."
)


@dataclass
class CheckResult:
    """The outcome of one health check."""

    name: str
    title: str
    status: str
    summary: str
    values: dict[str, float | int | None] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    unit: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    hint: str = ""

    @property
    def value(self) -> float | int | None:
        return next(iter(self.values.values()), None)

    @property
    def severity(self) -> int:
        return SEVERITY[self.status]

    def value_text(self) -> str:
        def show(key: str, value: Any) -> str:
            if key.endswith("bytes") and isinstance(value, int):
                return _pretty(value)
            return f"{fmt(value)}{self.unit}"

        if len(self.values) == 1:
            return show(*next(iter(self.values.items())))
        return ", ".join(f"{k} {show(k, v)}" for k, v in self.values.items()) or "-"

    def threshold_text(self) -> str:
        return ", ".join(f"{k} {fmt(v)}" for k, v in self.thresholds.items()) or "-"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [[_jsonable(cell) for cell in row] for row in self.rows]
        return data


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def thresholds(check: str) -> dict[str, float]:
    """Return a check's thresholds: the defaults updated by settings.DB_HEALTH_THRESHOLDS."""
    configured = getattr(settings, "DB_HEALTH_THRESHOLDS", {}) or {}
    unknown = set(configured) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise ImproperlyConfigured(
            f"DB_HEALTH_THRESHOLDS names unknown checks {sorted(unknown)}: use "
            f"{', '.join(sorted(DEFAULT_THRESHOLDS))}."
        )
    values = dict(DEFAULT_THRESHOLDS[check])
    for key, value in (configured.get(check) or {}).items():
        if key not in values:
            raise ImproperlyConfigured(
                f"DB_HEALTH_THRESHOLDS[{check!r}] has no key {key!r}: use "
                f"{', '.join(sorted(values))}."
            )
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ImproperlyConfigured(
                f"DB_HEALTH_THRESHOLDS[{check!r}][{key!r}] = {value!r} is not a number."
            )
        values[key] = value
    return values


def third_party_tables() -> list[str]:
    """Return the tables of Django's and third-party apps, left out of the index checks:
    their indexes come with those apps' migrations, not this project's SQL files."""
    if getattr(settings, "DB_HEALTH_INCLUDE_THIRD_PARTY", False):
        return []
    base = Path(settings.BASE_DIR).resolve()
    tables: set[str] = set()
    for app in apps.get_app_configs():
        path = Path(app.path).resolve()
        if path.is_relative_to(base) and "site-packages" not in path.parts:
            continue
        tables.update(m._meta.db_table for m in app.get_models(include_auto_created=True))
    return sorted(tables)


THIRD_PARTY_NOTE = (
    " Tables of Django's own and third-party apps are left out "
    "(DB_HEALTH_INCLUDE_THIRD_PARTY = True includes them)."
)


def status_above(value: float | None, limits: dict[str, float]) -> str:
    """Judge a figure where higher is worse."""
    if value is None:
        return OK
    if "critical" in limits and value >= limits["critical"]:
        return CRITICAL
    if "warning" in limits and value >= limits["warning"]:
        return WARNING
    return OK


def status_below(value: float | None, limits: dict[str, float]) -> str:
    """Judge a figure where lower is worse (ratios)."""
    if value is None:
        return OK
    if "critical" in limits and value < limits["critical"]:
        return CRITICAL
    if "warning" in limits and value < limits["warning"]:
        return WARNING
    return OK


def _short(query: str | None) -> str:
    text = " ".join((query or "").split())
    text = redact(text)
    return text if len(text) <= QUERY_TEXT_LIMIT else text[: QUERY_TEXT_LIMIT - 1] + "…"


def _rows(cursor: Any, query: str, params: Any = None) -> list[list[Any]]:
    cursor.execute(query, params)
    return [list(r) for r in cursor.fetchall()]


# --- the checks --------------------------------------------------------------------------


def check_connections(cursor: Any) -> CheckResult:
    limits = thresholds("connections")
    cursor.execute(
        "SELECT current_setting('max_connections')::int,"
        " current_setting('superuser_reserved_connections')::int,"
        " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
    )
    max_connections, reserved, used = cursor.fetchone()
    percent = round(100.0 * used / max_connections, 1)
    rows = _rows(
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
    rows = _rows(
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
        row[5] = _short(row[5])
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
    rows = _rows(
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
        row[4], row[5] = _short(row[4]), _short(row[5])
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


def check_cache_hit_ratio(cursor: Any) -> CheckResult:
    limits = thresholds("cache_hit_ratio")
    cursor.execute(
        "SELECT t.hit, t.read, i.hit, i.read FROM"
        " (SELECT coalesce(sum(heap_blks_hit), 0)::bigint AS hit,"
        "  coalesce(sum(heap_blks_read), 0)::bigint AS read FROM pg_statio_user_tables) t,"
        " (SELECT coalesce(sum(idx_blks_hit), 0)::bigint AS hit,"
        "  coalesce(sum(idx_blks_read), 0)::bigint AS read FROM pg_statio_user_indexes) i"
    )
    table_hit, table_read, index_hit, index_read = cursor.fetchone()
    table_ratio = _ratio(table_hit, table_read)
    index_ratio = _ratio(index_hit, index_read)
    blocks = table_hit + table_read + index_hit + index_read
    known = [r for r in (table_ratio, index_ratio) if r is not None]
    worst = min(known) if known else None
    if blocks < limits["min_blocks"]:
        status = INFO
        summary = (
            f"Only {blocks} blocks read since statistics began: too few to judge the ratio "
            f"(needs {fmt(limits['min_blocks'])})."
        )
    else:
        status = status_below(worst, limits)
        summary = f"Share of {blocks} table and index block reads served from shared buffers."
    return CheckResult(
        name="cache_hit_ratio",
        title="Cache hit ratio",
        status=status,
        summary=summary,
        values={"tables": table_ratio, "indexes": index_ratio},
        thresholds=dict(limits),
        unit="%",
        hint="Below 99% on a busy database: the working set outgrows shared_buffers "
        "(a bigger instance class) or queries read whole tables (see missing indexes).",
    )


def _ratio(hit: int, read: int) -> float | None:
    return round(100.0 * hit / (hit + read), 2) if hit + read else None


def check_table_sizes(cursor: Any) -> CheckResult:
    limits = thresholds("table_sizes")
    rows = _rows(
        cursor,
        "SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid),"
        " pg_size_pretty(pg_total_relation_size(c.oid)), pg_size_pretty(pg_relation_size(c.oid)),"
        " pg_size_pretty(pg_indexes_size(c.oid)), greatest(c.reltuples, 0)::bigint"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'm')"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%%'"
        " ORDER BY 2 DESC, 1 LIMIT %s",
        [int(limits["top"])],
    )
    cursor.execute("SELECT pg_database_size(current_database())")
    (database_bytes,) = cursor.fetchone()
    return CheckResult(
        name="table_sizes",
        title="Table sizes",
        status=INFO,
        summary=f"The database takes {_pretty(database_bytes)}; the largest tables follow.",
        values={"database_bytes": database_bytes},
        thresholds=dict(limits),
        columns=["table", "total bytes", "total", "table", "indexes", "estimated rows"],
        rows=rows,
    )


def check_index_sizes(cursor: Any) -> CheckResult:
    limits = thresholds("index_sizes")
    rows = _rows(
        cursor,
        "SELECT s.schemaname || '.' || s.relname, s.indexrelname,"
        " pg_relation_size(s.indexrelid), pg_size_pretty(pg_relation_size(s.indexrelid)),"
        " s.idx_scan FROM pg_stat_user_indexes s ORDER BY 3 DESC, 1, 2 LIMIT %s",
        [int(limits["top"])],
    )
    total = sum(r[2] for r in rows)
    return CheckResult(
        name="index_sizes",
        title="Index sizes",
        status=INFO,
        summary=f"The {len(rows)} largest indexes take {_pretty(total)}.",
        values={"top_bytes": total},
        thresholds=dict(limits),
        columns=["table", "index", "bytes", "size", "scans"],
        rows=rows,
    )


def check_unused_indexes(cursor: Any) -> CheckResult:
    limits = thresholds("unused_indexes")
    rows = _rows(
        cursor,
        "SELECT s.schemaname || '.' || s.relname, s.indexrelname,"
        " pg_size_pretty(pg_relation_size(s.indexrelid)), pg_relation_size(s.indexrelid)"
        " FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid"
        " WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)"
        " AND pg_relation_size(s.indexrelid) >= %s AND NOT s.relname = ANY(%s)"
        " ORDER BY 4 DESC, 1, 2",
        [limits["min_size_bytes"], third_party_tables()],
    )
    cursor.execute("SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()")
    reset = cursor.fetchone()[0]
    since = f" since statistics were reset on {reset:%Y-%m-%d %H:%M} UTC" if reset else ""
    return CheckResult(
        name="unused_indexes",
        title="Unused indexes",
        status=status_above(len(rows), limits),
        summary=f"{len(rows)} index{'' if len(rows) == 1 else 'es'} of "
        f"{_pretty(int(limits['min_size_bytes']))} or more never scanned{since} "
        "(unique and primary-key indexes left out)." + THIRD_PARTY_NOTE,
        values={"count": len(rows)},
        thresholds=dict(limits),
        columns=["table", "index", "size", "bytes"],
        rows=rows,
        hint="An unused index slows every write. Check the replicas too (statistics are "
        "per server), then drop it in a migration with DROP INDEX CONCURRENTLY.",
    )


def check_duplicate_indexes(cursor: Any) -> CheckResult:
    limits = thresholds("duplicate_indexes")
    indexes = _rows(
        cursor,
        "SELECT n.nspname || '.' || t.relname, ic.relname, i.indkey::int2[]::int[],"
        " i.indisunique, i.indisprimary, am.amname,"
        " coalesce(pg_get_expr(i.indpred, i.indrelid), ''),"
        " coalesce(pg_get_expr(i.indexprs, i.indrelid), ''),"
        " array_to_string(i.indclass::oid[], ','), array_to_string(i.indcollation::oid[], ','),"
        " pg_size_pretty(pg_relation_size(i.indexrelid))"
        " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
        " JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
        " JOIN pg_am am ON am.oid = ic.relam"
        " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%%' AND i.indisvalid"
        " ORDER BY 1, 2",
    )
    outside = {f"public.{t}" for t in third_party_tables()}
    indexes = [ix for ix in indexes if ix[0] not in outside]
    rows = []
    for dup in indexes:
        for cover in indexes:
            if dup is not cover and _covered_by(dup, cover):
                rows.append([dup[0], dup[1], dup[10], cover[1]])
                break
    return CheckResult(
        name="duplicate_indexes",
        title="Duplicate indexes",
        status=status_above(len(rows), limits),
        summary=f"{len(rows)} index{'' if len(rows) == 1 else 'es'} whose columns lead "
        "another index on the same table." + THIRD_PARTY_NOTE,
        values={"count": len(rows)},
        thresholds=dict(limits),
        columns=["table", "index", "size", "covered by"],
        rows=rows,
        hint="The covering index serves the same lookups: drop the redundant one.",
    )


def _covered_by(dup: list[Any], cover: list[Any]) -> bool:
    """Return whether index `dup` is made redundant by index `cover` on the same table."""
    table, name, keys, unique, primary, am, pred, exprs, classes, collations, _ = dup
    c_table, c_name, c_keys, c_unique, c_primary, c_am, c_pred, c_exprs, c_classes, c_coll, _ = (
        cover
    )
    if (table, am, pred, exprs) != (c_table, c_am, c_pred, c_exprs) or primary:
        return False
    n = len(keys)
    if n > len(c_keys) or c_keys[:n] != keys or (exprs and n != len(c_keys)):
        return False
    if _oids(classes)[:n] != _oids(c_classes)[:n] or _oids(collations)[:n] != _oids(c_coll)[:n]:
        return False
    if unique:
        # Only an identical unique index (or the primary key) makes a unique one redundant.
        return n == len(c_keys) and (c_primary or (c_unique and name > c_name))
    if n < len(c_keys) or c_unique or c_primary:
        return True
    return name > c_name  # two identical indexes: report the later name only


def _oids(text: str) -> list[str]:
    return text.split(",")


def check_missing_indexes(cursor: Any) -> CheckResult:
    limits = thresholds("missing_indexes")
    rows = _rows(
        cursor,
        "SELECT s.schemaname || '.' || s.relname, greatest(s.n_live_tup, c.reltuples::bigint),"
        " s.seq_scan, coalesce(s.idx_scan, 0),"
        " round(100.0 * coalesce(s.idx_scan, 0) / nullif(s.seq_scan + coalesce(s.idx_scan, 0),"
        " 0), 1)::float"
        " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
        " WHERE greatest(s.n_live_tup, c.reltuples::bigint) >= %s AND s.seq_scan > 0"
        " AND 100.0 * coalesce(s.idx_scan, 0) / (s.seq_scan + coalesce(s.idx_scan, 0)) < %s"
        " AND NOT s.relname = ANY(%s)"
        " ORDER BY s.seq_scan DESC, 1",
        [limits["min_rows"], limits["index_usage_percent"], third_party_tables()],
    )
    return CheckResult(
        name="missing_indexes",
        title="Missing indexes",
        status=status_above(len(rows), limits),
        summary=f"{len(rows)} table{'' if len(rows) == 1 else 's'} of "
        f"{fmt(limits['min_rows'])}+ rows read mostly by sequential scans "
        f"(index use below {fmt(limits['index_usage_percent'])}%)." + THIRD_PARTY_NOTE,
        values={"count": len(rows)},
        thresholds=dict(limits),
        columns=["table", "rows", "sequential scans", "index scans", "index use %"],
        rows=rows,
        hint="Find the queries in slow queries (pg_stat_statements), EXPLAIN them, and add "
        "the index in a migration with CREATE INDEX CONCURRENTLY (executeInTransaction=false).",
    )


def check_sequences(cursor: Any) -> CheckResult:
    limits = thresholds("sequences")
    found = _rows(
        cursor,
        "SELECT s.schemaname || '.' || s.sequencename,"
        " coalesce(tn.nspname || '.' || t.relname || '.' || a.attname, ''),"
        " coalesce(format_type(a.atttypid, NULL), ''), s.last_value, s.max_value,"
        " s.min_value, s.increment_by, has_sequence_privilege(sc.oid, 'SELECT,USAGE')"
        " FROM pg_sequences s"
        " JOIN pg_namespace sn ON sn.nspname = s.schemaname"
        " JOIN pg_class sc ON sc.relname = s.sequencename AND sc.relnamespace = sn.oid"
        " LEFT JOIN pg_depend d ON d.objid = sc.oid AND d.classid = 'pg_class'::regclass"
        "  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')"
        "  AND d.refobjsubid > 0"
        " LEFT JOIN pg_class t ON t.oid = d.refobjid"
        " LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace"
        " LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
        " ORDER BY 1",
    )
    rows = []
    for name, column, column_type, last, seq_max, seq_min, increment, _ in found:
        if increment > 0:
            limit = min(seq_max, INT_MAX.get(column_type, seq_max))
            percent = 100.0 * (last or 0) / limit if limit > 0 else 0.0
        else:
            limit = max(seq_min, -INT_MAX.get(column_type, -seq_min) - 1)
            percent = 100.0 * (last or 0) / limit if limit < 0 else 0.0
        rows.append([name, column, column_type, last, limit, round(max(percent, 0.0), 2)])
    rows.sort(key=lambda r: (-r[5], r[0]))
    top = rows[0][5] if rows else 0.0
    hidden = sum(1 for readable in found if not readable[-1])
    return CheckResult(
        name="sequences",
        title="Sequences near their maximum",
        status=status_above(top, limits),
        summary=f"The fullest of {len(rows)} sequence{'' if len(rows) == 1 else 's'} has used "
        f"{fmt(top)}% of its range (the owning column's type counts for serial and "
        "identity columns)."
        + (
            f" {hidden} sequence{'' if hidden == 1 else 's'} cannot be read by this role "
            "(GRANT SELECT ON ALL SEQUENCES IN SCHEMA ... TO it)."
            if hidden
            else ""
        ),
        values={"max_used_percent": top},
        thresholds=dict(limits),
        unit="%",
        columns=["sequence", "column", "column type", "last value", "maximum", "used %"],
        rows=rows[:20],
        hint="Widen the column to bigint (ALTER TABLE ... ALTER COLUMN ... TYPE bigint, and "
        "ALTER SEQUENCE ... AS bigint) before it runs out; it rewrites the table.",
    )


def check_dead_tuples(cursor: Any) -> CheckResult:
    limits = thresholds("dead_tuples")
    rows = _rows(
        cursor,
        "SELECT schemaname || '.' || relname, n_live_tup, n_dead_tup,"
        " round(100.0 * n_dead_tup / nullif(n_live_tup + n_dead_tup, 0), 1)::float,"
        " last_autovacuum, last_vacuum, last_autoanalyze"
        " FROM pg_stat_user_tables WHERE n_dead_tup >= %s"
        " ORDER BY 4 DESC NULLS LAST, 1",
        [limits["min_dead_rows"]],
    )
    worst = rows[0][3] if rows else 0.0
    return CheckResult(
        name="dead_tuples",
        title="Dead tuples and autovacuum",
        status=status_above(worst, limits),
        summary=f"{len(rows)} table{'' if len(rows) == 1 else 's'} with "
        f"{fmt(limits['min_dead_rows'])}+ dead rows; the worst is {fmt(worst)}% dead.",
        values={"max_dead_percent": worst},
        thresholds=dict(limits),
        unit="%",
        columns=[
            "table",
            "live rows",
            "dead rows",
            "dead %",
            "last autovacuum",
            "last vacuum",
            "last autoanalyze",
        ],
        rows=rows,
        hint="Autovacuum is falling behind or is blocked (long transactions, see "
        "long-running queries). Run VACUUM (VERBOSE) on the table; tune "
        "autovacuum_vacuum_scale_factor for large tables.",
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
    rows = _rows(
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
        row[4] = _short(row[4])
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


def _pretty(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


CHECKS: dict[str, Callable[[Any], CheckResult]] = {
    "connections": check_connections,
    "long_running_queries": check_long_running_queries,
    "blocked_queries": check_blocked_queries,
    "cache_hit_ratio": check_cache_hit_ratio,
    "table_sizes": check_table_sizes,
    "index_sizes": check_index_sizes,
    "unused_indexes": check_unused_indexes,
    "duplicate_indexes": check_duplicate_indexes,
    "missing_indexes": check_missing_indexes,
    "sequences": check_sequences,
    "dead_tuples": check_dead_tuples,
    "slow_queries": check_slow_queries,
}


def run_checks(using: str = "default", names: list[str] | None = None) -> list[CheckResult]:
    """Run the named checks (all by default) on connection `using`; one failing check
    is reported as a warning and does not stop the others."""
    for name in names or []:
        if name not in CHECKS:
            raise ValueError(f"unknown check {name!r}: use {', '.join(CHECKS)}")
    timeout = int(thresholds("statement_timeout_ms")["value"])
    connection = connections[using]
    results = []
    own_transaction = not connection.in_atomic_block
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if own_transaction:
            # Our own transaction (not a caller's): make sure nothing in it can write.
            cursor.execute("SET TRANSACTION READ ONLY")
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout)])
        # Statistics views are snapshotted per transaction: start from fresh figures.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        for name, check in CHECKS.items():
            if names and name not in names:
                continue
            try:
                with transaction.atomic(using=using):
                    results.append(check(cursor))
            except DatabaseError as err:
                logger.warning("health check %s failed: %s", name, redact(str(err)))
                results.append(
                    CheckResult(
                        name=name,
                        title=name.replace("_", " ").capitalize(),
                        status=WARNING,
                        summary=f"The check could not run: {redact(str(err)).strip()}",
                        hint="The reporting role may lack privileges: GRANT pg_monitor TO it.",
                    )
                )
    return results


def worst_status(results: list[CheckResult]) -> str:
    worst = max(results, key=lambda r: r.severity, default=None)
    return worst.status if worst is not None and worst.severity else OK
