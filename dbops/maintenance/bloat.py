"""What needs a VACUUM or a REINDEX: dead rows of tables, estimated bloat of btree indexes.

Tables: over the dead_tuples thresholds of the health check (DB_HEALTH_THRESHOLDS,
dbops/health/base.py): at least `min_dead_rows` dead rows, and at least `warning` percent of
the rows dead. The same numbers that make `dbhealth` warn make a maintenance run vacuum.

Indexes: btree indexes of MAINTENANCE_INDEX_MIN_BYTES or more, whose bloat, the share of
the index a rebuild would give back, is at least MAINTENANCE_INDEX_BLOAT_RATIO. Measured
with pgstattuple's pgstatindex() when the extension is installed in the database (it reads
the whole index: 1 - avg_leaf_density / fillfactor); otherwise estimated from the planner's
statistics with the method of ioguix's pgsql-bloat-estimation (btree_bloat.sql): the pages
reltuples entries of the columns' average width would fill at the index's fillfactor,
against the pages the index has. Indexes without statistics (never analysed, expressions)
are left out of the estimate and said so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings

from dbops.health.base import thresholds

BLOCK_HEADER = 24  # PageHeaderData
BTREE_OPAQUE = 16  # BTPageOpaqueData, at the end of each btree page
ITEM_ID = 4  # ItemIdData: the line pointer of each entry
INDEX_TUPLE_HEADER = 8  # IndexTupleData
NULL_BITMAP = 4  # IndexAttributeBitMapData, when a key column can be null
MAXALIGN = 8
DEFAULT_FILLFACTOR = 90  # btree's


@dataclass
class DeadTable:
    oid: int
    schema: str
    table: str
    live: int
    dead: int
    heap_bytes: int

    @property
    def dead_percent(self) -> float:
        return 100.0 * self.dead / max(self.live + self.dead, 1)


@dataclass
class BloatedIndex:
    oid: int
    schema: str
    table: str
    name: str
    bytes: int
    ratio: float  # share of the index a rebuild gives back, 0..1
    method: str  # "pgstattuple" or "statistics"

    @property
    def bloat_bytes(self) -> int:
        return int(self.bytes * self.ratio)


def index_bloat_ratio() -> float:
    return float(getattr(settings, "MAINTENANCE_INDEX_BLOAT_RATIO", 0.3))


def index_min_bytes() -> int:
    return int(getattr(settings, "MAINTENANCE_INDEX_MIN_BYTES", 1024 * 1024))


# Tables and indexes this role may vacuum and reindex: those of a role it is a member of.
_OWNED = "pg_has_role(t.relowner, 'MEMBER')"
_USER_SCHEMA = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"
    " AND n.nspname NOT LIKE 'pg_temp%%'"
)


def dead_tables(cursor: Any) -> list[DeadTable]:
    """Tables over the health check's dead-row thresholds (both of them), worst first."""
    limits = thresholds("dead_tuples")
    cursor.execute(
        "SELECT s.relid, s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup,"
        " pg_relation_size(s.relid)"
        " FROM pg_stat_user_tables s JOIN pg_class t ON t.oid = s.relid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace"
        f" WHERE t.relkind IN ('r', 'm') AND {_OWNED} AND {_USER_SCHEMA}"
        " AND s.n_dead_tup >= %s"
        " AND 100.0 * s.n_dead_tup / nullif(s.n_live_tup + s.n_dead_tup, 0) >= %s"
        " ORDER BY s.n_dead_tup DESC, 2, 3",
        [limits["min_dead_rows"], limits["warning"]],
    )
    return [DeadTable(*row) for row in cursor.fetchall()]


_CANDIDATES = (
    "SELECT c.oid, n.nspname, t.relname, c.relname, pg_relation_size(c.oid),"
    " coalesce((SELECT substring(o FROM '^fillfactor=([0-9]+)$')::int"
    "  FROM unnest(c.reloptions) AS o WHERE o LIKE 'fillfactor=%%'), 90)"
    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_am am ON am.oid = c.relam"
    " WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND t.relkind IN ('r', 'm')"
    f" AND {_OWNED} AND {_USER_SCHEMA} AND pg_relation_size(c.oid) >= %s"
    " ORDER BY pg_relation_size(c.oid) DESC, 2, 4"
)


def pgstattuple_schema(cursor: Any) -> str | None:
    """The schema of the pgstattuple extension, if it is installed and this role may use it."""
    cursor.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'pgstattuple'"
    )
    row = cursor.fetchone()
    if row is None:
        return None
    # Asked apart: inside the query above it could be pushed to every schema's row.
    cursor.execute(
        "SELECT has_function_privilege(%s, 'EXECUTE')", [f"{_quote(row[0])}.pgstatindex(regclass)"]
    )
    return str(row[0]) if cursor.fetchone()[0] else None


def bloated_indexes(cursor: Any) -> tuple[list[BloatedIndex], list[str]]:
    """Indexes over the bloat ratio (most bytes to win first) and notes on those not judged."""
    ratio, min_bytes = index_bloat_ratio(), index_min_bytes()
    schema = pgstattuple_schema(cursor)
    measured = _measured(cursor, schema, min_bytes) if schema else _estimated(cursor, min_bytes)
    found, notes = measured
    over = [ix for ix in found if ix.ratio >= ratio]
    over.sort(key=lambda ix: (-ix.bloat_bytes, ix.schema, ix.name))
    return over, notes


def _measured(cursor: Any, schema: str, min_bytes: int) -> tuple[list[BloatedIndex], list[str]]:
    cursor.execute(_CANDIDATES, [min_bytes])
    found, notes = [], []
    for oid, nsp, table, name, size, fillfactor in cursor.fetchall():
        try:
            cursor.execute(
                f"SELECT avg_leaf_density FROM {_quote(schema)}.pgstatindex(%s::regclass)", [oid]
            )
        except psycopg.Error as err:  # dropped meanwhile, or not readable: the others go on
            notes.append(f"{nsp}.{name}: pgstatindex failed: {err.diag.message_primary}")
            continue
        density = cursor.fetchone()[0]
        if density is None or math.isnan(density):
            notes.append(f"{nsp}.{name}: no leaf pages to measure")
            continue
        ratio = max(0.0, 1.0 - float(density) / fillfactor)
        found.append(BloatedIndex(oid, nsp, table, name, size, round(ratio, 4), "pgstattuple"))
    return found, notes


def _estimated(cursor: Any, min_bytes: int) -> tuple[list[BloatedIndex], list[str]]:
    block = int(_setting(cursor, "block_size"))
    cursor.execute(ESTIMATE, [min_bytes])
    found, notes = [], []
    for oid, nsp, table, name, size, fillfactor, entries, width, nullable, ok in cursor.fetchall():
        if not ok or entries is None or entries < 0:
            notes.append(f"{nsp}.{name}: no statistics to estimate its bloat (ANALYZE {table})")
            continue
        header = _align(INDEX_TUPLE_HEADER + (NULL_BITMAP if nullable else 0))
        entry = header + _align(math.ceil(float(width))) + ITEM_ID
        per_page = math.floor((block - BLOCK_HEADER - BTREE_OPAQUE) * fillfactor / 100 / entry)
        expected = 1 + math.ceil(float(entries) / max(per_page, 1))  # the metapage, the leaves
        pages = max(size // block, 1)
        ratio = max(0.0, 1.0 - expected / pages)
        found.append(BloatedIndex(oid, nsp, table, name, size, round(ratio, 4), "statistics"))
    return found, notes


ESTIMATE = (
    "WITH ix AS ("
    "SELECT c.oid, n.nspname, t.relname AS tbl, c.relname AS idx, pg_relation_size(c.oid) AS size,"
    " coalesce((SELECT substring(o FROM '^fillfactor=([0-9]+)$')::int"
    "  FROM unnest(c.reloptions) AS o WHERE o LIKE 'fillfactor=%%'), 90) AS ff,"
    " c.reltuples, i.indrelid, i.indkey::int2[] AS keys"
    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_am am ON am.oid = c.relam"
    " WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND t.relkind IN ('r', 'm')"
    f" AND {_OWNED} AND {_USER_SCHEMA} AND pg_relation_size(c.oid) >= %s"
    # Key columns only: an expression has no statistics of the table's.
    " AND 0 <> ALL (i.indkey::int2[])"
    ") SELECT ix.oid, ix.nspname, ix.tbl, ix.idx, ix.size, ix.ff, ix.reltuples,"
    " sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 1024)),"
    " bool_or(coalesce(s.null_frac, 0) > 0),"
    # Every key column has statistics, and none is of type name (its width is unreliable).
    " count(s.attname) = cardinality(ix.keys) AND NOT bool_or(a.atttypid = 'name'::regtype)"
    " FROM ix CROSS JOIN LATERAL unnest(ix.keys) AS k(attnum)"
    " JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum"
    " LEFT JOIN pg_stats s ON s.schemaname = ix.nspname AND s.tablename = ix.tbl"
    "  AND s.attname = a.attname"
    " GROUP BY ix.oid, ix.nspname, ix.tbl, ix.idx, ix.size, ix.ff, ix.reltuples, ix.keys"
    " ORDER BY ix.size DESC, 2, 4"
)


def _align(size: int) -> int:
    return (size + MAXALIGN - 1) // MAXALIGN * MAXALIGN


def _setting(cursor: Any, name: str) -> str:
    cursor.execute("SELECT current_setting(%s)", [name])
    return str(cursor.fetchone()[0])


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
