"""A table's row count and order-independent content hash, for archives and restores.

The hash is the one `backup verify` uses (dbops.backups.fingerprint): the sums of the two
64-bit halves of each row's md5, here over a given list of columns. Sums add up, so the
content of a month archived in several parts is the sum of theirs, whatever the order of
the rows, and a table can be recognised as exactly what one or all parts hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

_DIGEST = re.compile(r"(-?[0-9]{1,40}):(-?[0-9]{1,40})")
# The text form of a row must not depend on the session (SET LOCAL: a transaction's only).
SESSION = (
    "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "
    "SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3; "
    "SET LOCAL bytea_output = 'hex'"
)
_HASH = """
SELECT count(*),
       coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0),
       coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)
FROM (SELECT md5(ROW({columns})::text) AS h FROM ONLY {table} {where}) AS rows
"""


@dataclass(frozen=True)
class Content:
    """Rows, and the two sums of their md5 halves."""

    rows: int
    low: int
    high: int

    def __add__(self, other: Content) -> Content:
        return Content(self.rows + other.rows, self.low + other.low, self.high + other.high)

    @property
    def digest(self) -> str:
        return f"{self.low}:{self.high}"

    @classmethod
    def parse(cls, rows: int, digest: str) -> Content:
        """The content a manifest records; ValueError when `digest` is not LOW:HIGH."""
        match = _DIGEST.fullmatch(digest)
        if not match:
            raise ValueError(f"{digest!r} is not a content hash (two integers, LOW:HIGH)")
        return cls(rows, int(match[1]), int(match[2]))


EMPTY = Content(0, 0, 0)


def columns(conn: psycopg.Connection[Any], table: str) -> tuple[str, ...]:
    """The table's columns in their order (what COPY writes and reads)."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        [sql.Identifier(table).as_string(conn)],
    ).fetchall()
    return tuple(str(r[0]) for r in rows)


def measure(
    conn: psycopg.Connection[Any],
    table: str,
    cols: tuple[str, ...],
    within: tuple[str, datetime, datetime] | None = None,
) -> Content:
    """Count and hash `table`'s rows over `cols` (only those of a key range, `within`).

    Runs in the caller's transaction, which must be open (the session settings are local).
    """
    conn.execute(SESSION)
    where, params = sql.SQL(""), []
    if within is not None:
        key, start, end = within
        where = sql.SQL("WHERE {} >= %s AND {} < %s").format(
            sql.Identifier(key), sql.Identifier(key)
        )
        params = [start, end]
    query = sql.SQL(_HASH).format(
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        table=sql.Identifier(table),
        where=where,
    )
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return Content(int(row[0]), int(row[1]), int(row[2]))
