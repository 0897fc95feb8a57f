"""Row counts and content hashes of every table, to compare a restore with its source."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from dbops.connections.config import ConnInfo

TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
ORDER BY 1, 2
"""
# Order-independent and streaming: the sums of two 64-bit halves of each row's md5, so
# no table is sorted or held in memory, whatever its size.
TABLE_HASH = """
SELECT count(*),
       coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0),
       coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)
FROM (SELECT md5(ROW(t.*)::text) AS h FROM ONLY {} AS t) AS rows
"""
# The text form of a row must not depend on the session.
SESSION = (
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';"
    " SET extra_float_digits = 3; SET bytea_output = 'hex'"
)


@dataclass(frozen=True)
class TableFingerprint:
    rows: int
    digest: str


@dataclass(frozen=True)
class Comparison:
    table: str
    source: TableFingerprint | None
    restored: TableFingerprint | None

    @property
    def ok(self) -> bool:
        return self.source is not None and self.source == self.restored


def snapshot_connection(target: ConnInfo) -> psycopg.Connection[Any]:
    """A read-only REPEATABLE READ connection: one snapshot for all tables, even under writes."""
    conn = psycopg.connect(**target)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


def fingerprint_in(conn: psycopg.Connection[Any]) -> dict[str, TableFingerprint]:
    """Return {"schema.table": (rows, digest)} for every ordinary table, in conn's snapshot."""
    result = {}
    conn.execute(SESSION)
    for schema, table in conn.execute(TABLES).fetchall():
        query = sql.SQL(TABLE_HASH).format(sql.Identifier(schema, table))
        row = conn.execute(query).fetchone()
        assert row is not None
        rows, low, high = row
        digest = hashlib.md5(f"{rows}:{low}:{high}".encode(), usedforsecurity=False)
        result[f"{schema}.{table}"] = TableFingerprint(int(rows), digest.hexdigest()[:16])
    return result


def fingerprint(target: ConnInfo) -> dict[str, TableFingerprint]:
    with snapshot_connection(target) as conn:
        return fingerprint_in(conn)


def to_json(tables: dict[str, TableFingerprint]) -> dict[str, dict[str, Any]]:
    return {name: {"rows": t.rows, "hash": t.digest} for name, t in tables.items()}


def from_json(data: dict[str, dict[str, Any]]) -> dict[str, TableFingerprint]:
    return {name: TableFingerprint(int(t["rows"]), str(t["hash"])) for name, t in data.items()}


def compare(
    source: dict[str, TableFingerprint], restored: dict[str, TableFingerprint]
) -> list[Comparison]:
    return [
        Comparison(table, source.get(table), restored.get(table))
        for table in sorted(set(source) | set(restored))
    ]
