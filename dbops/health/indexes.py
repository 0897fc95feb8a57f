"""Indexes: invalid, unused, duplicate and missing ones."""

from __future__ import annotations

from typing import Any

from dbops.health.base import (
    THIRD_PARTY_NOTE,
    CheckResult,
    fetch_rows,
    fmt,
    pretty,
    status_above,
    third_party_tables,
    thresholds,
)
from sqlmigrations.lib.invalid_indexes import invalid_indexes


def check_invalid_indexes(cursor: Any) -> CheckResult:
    limits = thresholds("invalid_indexes")
    found = invalid_indexes(cursor)
    rows = [
        [f"{i.schema}.{i.table}", i.name, i.valid, i.ready, i.definition, i.drop] for i in found
    ]
    return CheckResult(
        name="invalid_indexes",
        title="Invalid indexes",
        status=status_above(len(rows), limits),
        summary=f"{len(rows)} index{'' if len(rows) == 1 else 'es'} that queries cannot use "
        "(indisvalid or indisready false), left by a failed CREATE INDEX CONCURRENTLY or "
        "REINDEX CONCURRENTLY; builds in progress are left out.",
        values={"count": len(rows)},
        thresholds=dict(limits),
        columns=["table", "index", "valid", "ready", "definition", "fix"],
        rows=rows,
        hint="An invalid index is never read but every write still updates it, and "
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS skips it. Drop it (the fix column), then "
        "build it again: if a migration built it, `manage.py sqlmigrations repair` removes "
        "the failed row, and `migrate` runs the file again.",
    )


def check_unused_indexes(cursor: Any) -> CheckResult:
    limits = thresholds("unused_indexes")
    rows = fetch_rows(
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
        f"{pretty(int(limits['min_size_bytes']))} or more never scanned{since} "
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
    indexes = fetch_rows(
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
    rows = fetch_rows(
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
