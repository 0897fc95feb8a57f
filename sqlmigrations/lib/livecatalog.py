"""What migrate's large-table check asks the live catalog: sizes, columns, casts, checks.

Read through a DB-API cursor (%s parameters), each answer cached for the run: a file
that alters one table ten times asks for its size once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlmigrations.lib.exceptions import SqlMigrationError

_SIZE = re.compile(r"^\s*(?P<n>\d+)\s*(?P<unit>B|kB|KB|MB|GB|TB)?\s*$")
_UNITS = {None: 1, "B": 1, "kB": 1024, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_NOT_NULL_CHECK = re.compile(r'^CHECK \(\((?P<col>"(?:[^"]|"")+"|\w+) IS NOT NULL\)\)$')


def parse_size(value: Any, setting: str) -> int:
    """Read a size setting: an int of bytes or "64MB" (kB, MB, GB, TB: powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise SqlMigrationError(
            f'{value!r} is not a size: use bytes or a number with kB, MB, GB or TB (e.g. "64MB")',
            path=setting,
        )
    return int(match["n"]) * _UNITS[match["unit"]]


@dataclass(frozen=True)
class Limits:
    """A table is large from `rows` rows or `size` bytes (total, with indexes and TOAST)."""

    rows: int
    size: int


@dataclass(frozen=True)
class TableSize:
    rows: int
    size: int
    estimated: bool  # rows from pg_class.reltuples (else a bounded count)
    capped: bool = False  # the count stopped at the limit: more rows than `rows - 1`

    def describe(self) -> str:
        if self.capped:
            rows = f"more than {self.rows - 1:,}"
        else:
            rows = f"~{self.rows:,}" if self.estimated else f"{self.rows:,}"
        return f"{rows} rows, {_human(self.size)}"


def is_large(size: TableSize | None, limits: Limits) -> bool:
    return size is not None and (size.rows >= limits.rows or size.size >= limits.size)


class Catalog:
    """Cached look-ups in the live catalog, through a DB-API cursor (%s parameters)."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self._cache: dict[tuple[Any, ...], Any] = {}

    def _one(self, query: str, params: tuple[Any, ...]) -> Any:
        key = (query, params)
        if key not in self._cache:
            self.cursor.execute(query, list(params))
            self._cache[key] = self.cursor.fetchone()
        return self._cache[key]

    def oid(self, table: str) -> int | None:
        row = self._one("SELECT to_regclass(%s)::oid", (table,))
        return row[0] if row else None

    def column(self, table: str, column: str) -> tuple[int, int, bool] | None:
        """Return (type oid, typmod, NOT NULL) of an existing column."""
        return self._one(
            "SELECT atttypid::int, atttypmod, attnotnull FROM pg_catalog.pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attname = %s AND attnum > 0 "
            "AND NOT attisdropped",
            (table, column),
        )

    def type_oid(self, name: str) -> int | None:
        # The name is quoted from the parse tree, so to_regtype never fails to read it.
        row = self._one("SELECT to_regtype(%s)::oid", (name,))
        return row[0] if row else None

    def binary_coercible(self, source: int, target: int) -> bool:
        row = self._one(
            "SELECT castmethod = 'b' FROM pg_catalog.pg_cast "
            "WHERE castsource = %s AND casttarget = %s",
            (source, target),
        )
        return bool(row and row[0])

    def volatile(self, function: str) -> bool:
        """A function of that name that is volatile, or none of that name (unknown)."""
        row = self._one(
            "SELECT count(*), count(*) FILTER (WHERE provolatile = 'v') "
            "FROM pg_catalog.pg_proc WHERE proname = %s",
            (function,),
        )
        return not row or row[0] == 0 or row[1] > 0

    def valid_not_null_check(self, table: str, column: str) -> bool:
        self.cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint "
            "WHERE conrelid = to_regclass(%s) AND contype = 'c' AND convalidated",
            [table],
        )
        for (definition,) in self.cursor.fetchall():
            match = _NOT_NULL_CHECK.match(definition)
            if match and unquote(match["col"]) == column:
                return True
        return False

    def size(self, table: str, limits: Limits) -> TableSize | None:
        """Return the table's size; a never-analyzed table's rows are counted up to the limit."""
        row = self._one(
            "SELECT reltuples::bigint, pg_total_relation_size(oid) FROM pg_catalog.pg_class "
            "WHERE oid = to_regclass(%s)",
            (table,),
        )
        if row is None:
            return None
        rows, size = int(row[0]), int(row[1])
        if rows >= 0:
            return TableSize(rows, size, True)
        # reltuples is -1 until the first VACUUM or ANALYZE: count, but no further than
        # the limit (the table's name comes from the catalog, quoted by regclass).
        counted = self._one(
            f"SELECT count(*) FROM (SELECT 1 FROM {self._regclass(table)} LIMIT %s) AS s",
            (limits.rows + 1,),
        )
        rows = int(counted[0])
        return TableSize(rows, size, False, capped=rows > limits.rows)

    def _regclass(self, table: str) -> str:
        return str(self._one("SELECT to_regclass(%s)::text", (table,))[0])


def unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _human(size: int) -> str:
    for unit, factor in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("kB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"
