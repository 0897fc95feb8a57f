"""Monthly partitions of the large history tables: create ahead, archive old ones (issue 7.3).

A partition is `<table>_yYYYYmMM` holding one UTC month. Archiving one is four steps, each
safe to repeat, so an interrupted run is finished by running it again:

1. detach it from the parent (no new rows can arrive, queries no longer see it);
2. export it with COPY ... CSV (header), gzip, to the backup storage under
   `archives/<table>/<partition>.csv.gz` (sha256 and row count computed on the way);
3. verify: read the stored object back, check its sha256 and count its rows against the
   table, then write `<partition>.manifest.json` next to it;
4. drop the table, only when a verified manifest for exactly this row count exists.

Everything runs as the owner role (DDL); destructive steps need `execute=True`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from psycopg import sql

from dbops.backups.pgclient import source_from_settings

PARTITIONED_TABLES = ("completions",)
ARCHIVE_PREFIX = "archives"
# A partition whose table is smaller than this is counted exactly (a few ms); a larger one
# gets the planner's estimate. 8 MiB of completions is about 80,000 rows.
EXACT_BELOW_BYTES = 8 * 1024 * 1024


class PartitionError(RuntimeError):
    """A partition step failed: the message says which partition and what to do."""


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
    action: str  # detach, export, verify, drop, create, skip
    detail: str
    done: bool


def month_add(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def this_month(now: datetime | None = None) -> date:
    now = now or datetime.now(UTC)
    return date(now.year, now.month, 1)


def _name_re(table: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(table)}_y(\d{{4}})m(\d{{2}})$")


@dataclass
class Partitions:
    conn: psycopg.Connection[Any]
    table: str = "completions"
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
            match = pattern.match(name)
            month = date(int(match[1]), int(match[2]), 1) if match else None
            if month is None and not is_default:
                continue
            exact = heap < self.exact_below_bytes or estimate <= 0
            count = self._count(name) if exact else int(estimate)
            found.append(
                Partition(self.table, name, month, attached, count, exact, int(total), pretty)
            )
        return found

    def default_rows(self) -> int:
        default = next((p for p in self.list() if p.is_default), None)
        if default is None:
            return 0
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(default.name))
        return int(self.conn.execute(query).fetchone()[0])

    # --- create ahead ------------------------------------------------------------------

    def create(self, first: date, last: date, *, execute: bool = True) -> list[Step]:
        existing = {p.month for p in self.list() if p.month is not None}
        steps = []
        month = first
        while month <= last:
            name = f"{self.table}_y{month:%Y}m{month:%m}"
            if month in existing:
                steps.append(Step(name, "skip", "exists", True))
            else:
                if execute:
                    self._create_one(name, month)
                steps.append(Step(name, "create", f"{month:%Y-%m}", execute))
            month = month_add(month, 1)
        return steps

    def _create_one(self, name: str, month: date) -> None:
        start = datetime(month.year, month.month, 1, tzinfo=UTC)
        nxt = month_add(month, 1)
        end = datetime(nxt.year, nxt.month, 1, tzinfo=UTC)
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
                self.conn.execute(
                    sql.SQL("COMMENT ON TABLE {} IS {}").format(
                        sql.Identifier(name),
                        sql.Literal(f"{self.table} of {month:%Y-%m} (UTC), a monthly partition."),
                    )
                )
        except psycopg.errors.CheckViolation as err:
            raise PartitionError(
                f"cannot create {name}: the DEFAULT partition already holds rows of "
                f"{month:%Y-%m} ({err.diag.message_primary}). Move them out first: in one "
                f"transaction, copy those rows aside, delete them from the default "
                f"partition, create the partition, and insert them into {self.table} again"
            ) from err

    # --- archive -----------------------------------------------------------------------

    def due(self, keep_months: int, now: datetime | None = None) -> list[Partition]:
        """Monthly partitions that end before the retention window (oldest first)."""
        cutoff = month_add(this_month(now), -keep_months)
        return [p for p in self.list() if p.month is not None and p.month < cutoff]

    def archive(
        self,
        partition: Partition,
        *,
        execute: bool,
        progress: Callable[[str], None] | None = None,
    ) -> list[Step]:
        name = partition.name
        key = f"{ARCHIVE_PREFIX}/{self.table}/{name}"
        if not execute:
            return [
                Step(name, "detach", "from " + self.table, False)
                if partition.attached
                else Step(name, "detach", "already detached", True),
                Step(name, "export", f"to {key}.csv.gz", False),
                Step(name, "verify", f"sha256 and row count, then {key}.manifest.json", False),
                Step(name, "drop", "after the manifest is written", False),
            ]
        steps = []
        if partition.attached:
            with self.conn.transaction():
                self.conn.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                        sql.Identifier(self.table), sql.Identifier(name)
                    )
                )
        steps.append(
            Step(name, "detach", "detached" if partition.attached else "was detached", True)
        )
        rows, digest, size = self._export(name, f"{key}.csv.gz", progress)
        steps.append(Step(name, "export", f"{rows} rows, {size} bytes to {key}.csv.gz", True))
        self._verify(name, f"{key}.csv.gz", rows, digest)
        manifest = {
            "table": self.table,
            "partition": name,
            "month": f"{partition.month:%Y-%m}",
            "rows": rows,
            "sha256": digest,
            "bytes": size,
            "object": f"{key}.csv.gz",
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        storage = archive_storage()
        if storage.exists(f"{key}.manifest.json"):
            storage.delete(f"{key}.manifest.json")
        storage.save(f"{key}.manifest.json", File(io.BytesIO(json.dumps(manifest).encode())))
        steps.append(Step(name, "verify", f"sha256 {digest[:12]}..., {rows} rows", True))
        with self.conn.transaction():
            count = self._count(name)
            if count != rows:
                raise PartitionError(
                    f"{name} now has {count} rows but {rows} were archived; not dropped. "
                    "Something wrote to the detached table: run archive again"
                )
            self.conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
        steps.append(Step(name, "drop", "dropped", True))
        return steps

    def _count(self, name: str) -> int:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
        return int(self.conn.execute(query).fetchone()[0])

    def _export(
        self, name: str, key: str, progress: Callable[[str], None] | None
    ) -> tuple[int, str, int]:
        storage = archive_storage()
        digest = hashlib.sha256()
        rows = 0
        with tempfile.TemporaryFile() as spool:
            hashing = _HashingWriter(spool, digest)
            with gzip.GzipFile(fileobj=hashing, mode="wb", mtime=0) as gz:
                query = sql.SQL("COPY {} TO STDOUT WITH (FORMAT csv, HEADER)").format(
                    sql.Identifier(name)
                )
                with self.conn.cursor().copy(query) as copy:
                    for chunk in copy:
                        data = bytes(chunk)
                        rows += data.count(b"\n")  # approximate; exact count is verified
                        gz.write(data)
                        if progress is not None and rows % 100_000 < data.count(b"\n"):
                            progress(f"{name}: {rows} lines exported")
            size = spool.tell()
            spool.seek(0)
            if storage.exists(key):
                storage.delete(key)
            storage.save(key, File(spool))
        exact = self._count(name)
        return exact, digest.hexdigest(), size

    def _verify(self, name: str, key: str, rows: int, digest: str) -> None:
        storage = archive_storage()
        check = hashlib.sha256()
        with storage.open(key, "rb") as stored:
            for chunk in iter(lambda: stored.read(1 << 20), b""):
                check.update(chunk)
        if check.hexdigest() != digest:
            raise PartitionError(
                f"the archive of {name} at {key} does not match what was written "
                f"(sha256 {check.hexdigest()[:12]}... instead of {digest[:12]}...); the table "
                "was NOT dropped: run archive again"
            )
        with storage.open(key, "rb") as stored, gzip.open(stored, "rt", newline="") as text:
            stored_rows = sum(1 for _ in csv.reader(text)) - 1  # minus the header
        if stored_rows != rows:
            raise PartitionError(
                f"the archive of {name} at {key} holds {stored_rows} rows, the table {rows}; "
                "the table was NOT dropped: run archive again"
            )


class _HashingWriter(io.RawIOBase):
    def __init__(self, target: Any, digest: Any) -> None:
        self.target, self.digest = target, digest

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return self.target.write(data)


def archive_storage() -> Any:
    return storages["backups"]


def open_partitions(table: str = "completions") -> Partitions:
    """Connect as the owner role (DDL) with the project's SSL settings."""
    if table not in PARTITIONED_TABLES:
        raise PartitionError(
            f"{table} is not a partitioned table of this project "
            f"(known: {', '.join(PARTITIONED_TABLES)})"
        )
    target = source_from_settings()
    info = {**target.conninfo(), "application_name": "choregarden-partitions"}
    conn = psycopg.connect(**info, autocommit=True)
    return Partitions(conn, table)


def retention_months() -> int:
    return int(getattr(settings, "PARTITION_RETENTION_MONTHS", 24))


def as_dict(item: Any) -> dict[str, Any]:
    data = asdict(item)
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in data.items()}
