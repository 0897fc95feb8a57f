"""The monthly partitions of a history table in the database: list, create, months.

A partition is `<table>_yYYYYmMM` holding one UTC month; a table of that name that is not
attached is the leftover of an interrupted archive (see archive.py). Everything runs as
the owner role (DDL).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from django.conf import settings
from psycopg import sql

from dbops.connections.config import connect
from dbops.partitions import PartitionError

# A partition whose table is smaller than this is counted exactly (a few ms); a larger one
# gets the planner's estimate. 8 MiB of completions is about 80,000 rows.
EXACT_BELOW_BYTES = 8 * 1024 * 1024
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


def partitioned_tables() -> dict[str, str]:
    """Each monthly-partitioned table with its partition key (settings.PARTITIONED_TABLES)."""
    # The tables belong to the apps that own them: settings name them, read at call time.
    return dict(getattr(settings, "PARTITIONED_TABLES", {}))


def default_table() -> str:
    """The table the partition tools work on when none is named: the first one in settings."""
    return next(iter(partitioned_tables()), "")


@dataclass
class Partition:
    table: str
    name: str
    month: date | None  # None for the DEFAULT partition
    attached: bool
    rows: int  # exact for small partitions, else estimated (see Partitions.list)
    rows_exact: bool
    bytes: int
    size: str  # pg_size_pretty of bytes, for people

    @property
    def is_default(self) -> bool:
        return self.month is None


@dataclass
class Step:
    partition: str
    action: str  # create, skip; detach, export, verify, manifest, drop; load, attach
    detail: str
    done: bool
    rows: int | None = None
    object: str | None = None  # the storage object the step wrote or read


def parse_month(text: str) -> date:
    """Return the first day of month `text` (exactly YYYY-MM), or raise ValueError."""
    match = _MONTH.fullmatch(text)
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1900:
        raise ValueError(f"{text!r} is not a month: use YYYY-MM, e.g. 2024-01")
    return date(int(match[1]), int(match[2]), 1)


def month_add(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def this_month(now: datetime | None = None) -> date:
    now = now or datetime.now(UTC)
    return date(now.year, now.month, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The UTC instants where `month` starts and where the next one starts."""
    nxt = month_add(month, 1)
    return (
        datetime(month.year, month.month, 1, tzinfo=UTC),
        datetime(nxt.year, nxt.month, 1, tzinfo=UTC),
    )


def partition_name(table: str, month: date) -> str:
    return f"{table}_y{month:%Y}m{month:%m}"


def _name_re(table: str) -> re.Pattern[str]:
    # Also a PostgreSQL regular expression (the anchors are for it).
    return re.compile(rf"^{re.escape(table)}_y([0-9]{{4}})m([0-9]{{2}})$")


@dataclass
class Partitions:
    conn: psycopg.Connection[Any]
    table: str = field(default_factory=default_table)
    exact_below_bytes: int = EXACT_BELOW_BYTES

    def list(self) -> list[Partition]:
        """Attached partitions and detached leftovers of an interrupted archive."""
        pattern = _name_re(self.table)
        # reltuples is -1 until a table is first analysed and stale after it grows, so
        # the estimate scales it by the pages the table has now (as the planner does),
        # and falls back to the statistics' live-row counter when it was never analysed.
        rows = self.conn.execute(
            """
            SELECT c.relname, i.inhparent IS NOT NULL,
                   pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT',
                   pg_relation_size(c.oid),
                   CASE WHEN c.reltuples >= 0 AND c.relpages > 0
                        THEN c.reltuples / c.relpages * (pg_relation_size(c.oid)
                             / current_setting('block_size')::bigint)
                        ELSE coalesce(s.n_live_tup, 0) END::bigint,
                   pg_total_relation_size(c.oid),
                   pg_size_pretty(pg_total_relation_size(c.oid))
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
            LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = %s::regclass
            LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
            WHERE c.relkind = 'r' AND (i.inhparent IS NOT NULL OR c.relname ~ %s)
            ORDER BY c.relname
            """,
            [self.table, pattern.pattern],
        ).fetchall()
        found = []
        for name, attached, is_default, heap, estimate, total, pretty in rows:
            match = pattern.fullmatch(name)
            month = date(int(match[1]), int(match[2]), 1) if match else None
            if month is None and not is_default:
                continue
            exact = heap < self.exact_below_bytes or estimate <= 0
            count = self.count(name) if exact else int(estimate)
            found.append(
                Partition(self.table, name, month, attached, count, exact, int(total), pretty)
            )
        return found

    def default_rows(self) -> int:
        default = next((p for p in self.list() if p.is_default), None)
        if default is None:
            return 0
        return self.count(default.name)

    def create(self, first: date, last: date, *, execute: bool = True) -> list[Step]:
        existing = {p.month for p in self.list() if p.month is not None}
        steps = []
        month = first
        while month <= last:
            name = partition_name(self.table, month)
            if month in existing:
                steps.append(Step(name, "skip", "exists", True))
            else:
                if execute:
                    self._create_one(name, month)
                steps.append(Step(name, "create", f"{month:%Y-%m}", execute))
            month = month_add(month, 1)
        return steps

    def _create_one(self, name: str, month: date) -> None:
        start, end = month_bounds(month)
        try:
            with self.conn.transaction():
                self.conn.execute(
                    sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                        sql.Identifier(name),
                        sql.Identifier(self.table),
                        sql.Literal(start),
                        sql.Literal(end),
                    )
                )
                self.comment(name, f"{self.table} of {month:%Y-%m} (UTC), a monthly partition.")
        except psycopg.errors.CheckViolation as err:
            raise PartitionError(
                f"cannot create {name}: the DEFAULT partition already holds rows of "
                f"{month:%Y-%m} ({err.diag.message_primary}). Move them out first: in one "
                f"transaction, copy those rows aside, delete them from the default "
                f"partition, create the partition, and insert them into {self.table} again"
            ) from err

    def comment(self, name: str, text: str) -> None:
        query = sql.SQL("COMMENT ON TABLE {} IS {}")
        self.conn.execute(query.format(sql.Identifier(name), sql.Literal(text)))

    def due(self, keep_months: int, now: datetime | None = None) -> list[Partition]:
        """Monthly partitions that end before the retention window (oldest first)."""
        cutoff = month_add(this_month(now), -keep_months)
        return [p for p in self.list() if p.month is not None and p.month < cutoff]

    def find(self, month: date) -> Partition | None:
        """The month's partition, attached or the detached leftover of an archive."""
        return next((p for p in self.list() if p.month == month), None)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Refuse unless no other archive or restore of this table runs; hold that till the end."""
        key = sql.Literal(f"choregarden-partitions:{self.table}")
        query = sql.SQL("SELECT pg_try_advisory_lock(hashtext({}))").format(key)
        row = self.conn.execute(query).fetchone()
        if not (row and row[0]):
            raise PartitionError(
                f"another `partitions archive` or `restore` of {self.table} is running "
                "(it holds the advisory lock): nothing was changed; run again when it is done"
            )
        try:
            yield
        finally:
            self.conn.execute(sql.SQL("SELECT pg_advisory_unlock(hashtext({}))").format(key))

    def month_of(self, name: str) -> date | None:
        """The month a partition name stands for, or None for any other name."""
        match = _name_re(self.table).fullmatch(name)
        return date(int(match[1]), int(match[2]), 1) if match else None

    @property
    def key(self) -> str:
        """The partition key column."""
        return partitioned_tables()[self.table]

    def rows_of_month(self, month: date, table: str | None = None) -> int:
        """Rows of `month` in `table` (default: the parent, its partition or DEFAULT one)."""
        start, end = month_bounds(month)
        query = sql.SQL("SELECT count(*) FROM {} WHERE {} >= %s AND {} < %s").format(
            sql.Identifier(table or self.table), sql.Identifier(self.key), sql.Identifier(self.key)
        )
        row = self.conn.execute(query, [start, end]).fetchone()
        return int(row[0]) if row else 0

    def count(self, name: str) -> int:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
        row = self.conn.execute(query).fetchone()
        return int(row[0]) if row else 0


def open_partitions(table: str | None = None) -> Partitions:
    """Connect as the owner role (DDL) with the project's SSL settings."""
    table = table or default_table()
    known = partitioned_tables()
    if table not in known:
        raise PartitionError(
            f"{table or 'no table'} is not a partitioned table of this project "
            f"(known: {', '.join(known) or 'none'}): name it and its partition key in "
            "settings.PARTITIONED_TABLES"
        )
    return Partitions(connect("owner", application_name="choregarden-partitions"), table)


def retention_months() -> int:
    return int(getattr(settings, "PARTITION_RETENTION_MONTHS", 24))


def as_dict(item: Any) -> dict[str, Any]:
    data = asdict(item)
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in data.items()}
