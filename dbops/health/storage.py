"""Storage: cache hit ratio, table and index sizes, sequences, dead tuples."""

from __future__ import annotations

from typing import Any

from dbops.health.base import (
    INFO,
    CheckResult,
    fetch_rows,
    fmt,
    pretty,
    status_above,
    status_below,
    thresholds,
)

INT_MAX = {"smallint": 32767, "integer": 2147483647, "bigint": 9223372036854775807}


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
    rows = fetch_rows(
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
        summary=f"The database takes {pretty(database_bytes)}; the largest tables follow.",
        values={"database_bytes": database_bytes},
        thresholds=dict(limits),
        columns=["table", "total bytes", "total", "table", "indexes", "estimated rows"],
        rows=rows,
    )


def check_index_sizes(cursor: Any) -> CheckResult:
    limits = thresholds("index_sizes")
    rows = fetch_rows(
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
        summary=f"The {len(rows)} largest indexes take {pretty(total)}.",
        values={"top_bytes": total},
        thresholds=dict(limits),
        columns=["table", "index", "bytes", "size", "scans"],
        rows=rows,
    )


def check_sequences(cursor: Any) -> CheckResult:
    limits = thresholds("sequences")
    found = fetch_rows(
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
        " WHERE NOT s.cycle"  # a cycling sequence starts over: it never runs out
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
    rows = fetch_rows(
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
