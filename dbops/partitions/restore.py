"""Restore an archived month: pre-check, then load its parts in one transaction.

`plan` is the pre-check (and, reading every part back, the dry run): the month's
manifest must be valid and every part it lists present with its size; the target must
hold no rows of the month. The target is the month's partition (created and attached
when absent), or `into` a table of its own (created like the parent when absent, without
the foreign keys, so rows whose household is gone since can still be looked at).

`run` does it in one transaction: create the table when needed; COPY each live part in,
checking its sha256, header and row count as it streams; compare the loaded rows' count
and content hash with the manifest's; attach a new partition; commit. Any failure rolls
everything back. After a restore into the partition, the next manifest version marks
the parts as restored, so a later archive of the month writes a new part instead of
taking the rows for archived already.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from django.core.files.storage import Storage
from psycopg import sql

from dbops.partitions import ManifestError, PartitionError
from dbops.partitions.archive import LOCK_TIMEOUT
from dbops.partitions.content import Content, columns, measure
from dbops.partitions.manifest import (
    MonthArchive,
    Part,
    check_present,
    read_month,
    utc_now,
    write_manifest,
)
from dbops.partitions.store import PartStream, verify_part
from dbops.partitions.tables import Partitions, Step, month_bounds, partition_name
from sqlmigrations.redact import redact

# How the target is reached: a new or an empty attached partition, a new or existing table.
NEW_PARTITION, EMPTY_PARTITION, NEW_TABLE, TABLE = (
    "new partition",
    "partition",
    "new table",
    "table",
)


@dataclass
class RestorePlan:
    archive: MonthArchive
    parts: list[Part]
    target: str
    mode: str
    steps: list[Step]

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    @property
    def into_partition(self) -> bool:
        return self.mode in (NEW_PARTITION, EMPTY_PARTITION)


def _relation(conn: psycopg.Connection[Any], name: str) -> tuple[str, bool] | None:
    """(relkind, is a partition) of `name` in the current schema, or None."""
    row = conn.execute(
        "SELECT c.relkind::text, c.relispartition FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace AND n.nspname = current_schema() WHERE c.relname = %s",
        [name],
    ).fetchone()
    return (str(row[0]), bool(row[1])) if row else None


def _way_out(table: str, month: date) -> str:
    return f"--into {table}_{month:%Y_%m}_restored"


def _target(parts: Partitions, month: date, into: str | None, need: set[str]) -> tuple[str, str]:
    """Check the target; return (table, mode). Refuse when it holds rows of the month."""
    table, conn = parts.table, parts.conn
    if into is None:
        name = partition_name(table, month)
        found = parts.find(month)
        if found is not None and not found.attached:
            raise PartitionError(
                f"{name} is the detached leftover of an interrupted archive: finish it with "
                f"`partitions archive --month {month:%Y-%m} --execute` first (nothing was changed)"
            )
        present = parts.rows_of_month(month)
        if present:
            where = "its partition" if found is not None else "the DEFAULT partition"
            raise PartitionError(
                f"{table} already holds {present} rows of {month:%Y-%m} (in {where}); the "
                f"archive's would mix with them: restore into a table of its own with "
                f"{_way_out(table, month)} and compare (nothing was changed)"
            )
        return name, EMPTY_PARTITION if found is not None else NEW_PARTITION
    if into == table or into == f"{table}_default" or parts.month_of(into) is not None:
        raise PartitionError(
            f"--into {into}: that is {table} or one of its partitions; leave out --into to "
            f"restore into the month's partition, or name a table of its own"
        )
    relation = _relation(conn, into)
    if relation is None:
        return into, NEW_TABLE
    if relation != ("r", False):
        raise PartitionError(f"--into {into}: that is not a plain table; name another one")
    missing = sorted(need - set(columns(conn, into)))
    if missing:
        raise PartitionError(
            f"--into {into}: the table has no column(s) {', '.join(missing)} that the archive "
            "holds; name a new table and it is created like the parent"
        )
    present = parts.rows_of_month(month, into)
    if present:
        raise PartitionError(
            f"--into {into}: the table already holds {present} rows of {month:%Y-%m}; name "
            "a new table, or empty that one first (nothing was changed)"
        )
    return into, TABLE


def plan(
    parts: Partitions, storage: Storage, month: date, into: str | None, *, read_back: bool
) -> RestorePlan:
    """Pre-check a restore of `month`; with `read_back`, verify every part (the dry run)."""
    archive = read_month(storage, parts.table, month)
    if not archive.parts:
        unlisted = (
            f" ({len(archive.unlisted)} object(s) of interrupted runs are not an archive)"
            if archive.unlisted
            else ""
        )
        raise PartitionError(
            f"there is no archive of {parts.table} {month:%Y-%m} in {archive.location}"
            f"{unlisted}; nothing was changed"
        )
    live = archive.live_parts
    if not live:
        raise PartitionError(
            f"every part of {month:%Y-%m} was restored into {parts.table} already (the last "
            f"at {max(p.restored_at or '' for p in archive.parts)}): its rows are in the table"
        )
    check_present(storage, archive)
    need = {c for p in live for c in p.columns}
    target, mode = _target(parts, month, into, need)
    steps = []
    if mode in (NEW_PARTITION, NEW_TABLE):
        steps.append(Step(target, "create", f"like {parts.table}", False))
    for part in live:
        if read_back:
            verify_part(storage, part, archive.where(part.key))
        detail = f"{part.name}: {part.rows} rows" + (", sha256 and rows match" if read_back else "")
        steps.append(Step(target, "load", detail, False, part.rows, part.key))
    if mode == NEW_PARTITION:
        steps.append(Step(target, "attach", f"to {parts.table} for {month:%Y-%m}", False))
    if mode in (NEW_PARTITION, EMPTY_PARTITION):
        steps.append(Step(target, "manifest", f"{archive.next_manifest}: parts restored", False))
    return RestorePlan(archive, live, target, mode, steps)


def _fail(err: psycopg.Error, restore: RestorePlan, table: str) -> PartitionError:
    month = restore.archive.month
    diag = err.diag.message_detail or err.diag.message_primary or str(err)
    if isinstance(err, psycopg.errors.ForeignKeyViolation):
        problem = "rows of the archive refer to rows that are gone since"
        out = f"restore them into a table of their own with {_way_out(table, month)}"
    elif isinstance(err, psycopg.errors.UniqueViolation):
        problem = "a row of the archive is there twice, or already in the table"
        out = f"restore into a table of its own with {_way_out(table, month)} and compare"
    else:
        problem = "the database refused the rows"
        out = "see the detail"
    return PartitionError(redact(f"{problem} ({diag}): nothing was restored (rolled back); {out}"))


def _load(parts: Partitions, storage: Storage, restore: RestorePlan) -> list[Step]:
    conn, target, table = parts.conn, restore.target, parts.table
    quoted = sql.Identifier(target)
    steps = []
    if restore.mode in (NEW_PARTITION, NEW_TABLE):
        # A table of its own gets no defaults: they would tie it to the parent's sequence.
        like = "INCLUDING ALL" + ("" if restore.into_partition else " EXCLUDING DEFAULTS")
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} " + like + ")").format(quoted, sql.Identifier(table))
        )
        steps.append(Step(target, "create", f"like {table}", True))
    for part in restore.parts:
        stream = PartStream(storage, part, restore.archive.where(part.key))
        missing = sorted(set(stream.columns) - set(columns(conn, target)))
        if missing:
            raise ManifestError(
                f"{restore.archive.where(part.key)} holds column(s) {', '.join(missing)} that "
                f"{target} has not: nothing was restored; name a new table, e.g. "
                f"{_way_out(table, restore.archive.month)}"
            )
        query = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
            quoted, sql.SQL(", ").join(sql.Identifier(c) for c in stream.columns)
        )
        with conn.cursor() as cursor:
            with cursor.copy(query) as copy:
                for chunk in stream.chunks():
                    copy.write(chunk)
            loaded = cursor.rowcount
        stream.finish(loaded)
        detail = f"{part.name}: {loaded} rows, sha256 and rows match"
        steps.append(Step(target, "load", detail, True, loaded, part.key))
    _check_loaded(parts, restore)
    if restore.mode == NEW_PARTITION:
        _attach(parts, restore)
        steps.append(Step(target, "attach", f"to {table} for {restore.archive.month:%Y-%m}", True))
    parts.comment(
        target,
        f"{table} of {restore.archive.month:%Y-%m} (UTC), "
        + ("a monthly partition, " if restore.into_partition else "")
        + f"restored from the archive at {utc_now()}.",
    )
    return steps


def _check_loaded(parts: Partitions, restore: RestorePlan) -> None:
    """The month's rows in the target are the manifest's: count, and content where recorded."""
    month = restore.archive.month
    within = (parts.key, *month_bounds(month))
    shapes = {p.columns for p in restore.parts}
    if len(shapes) == 1 and all(p.content for p in restore.parts):
        (cols,) = shapes
        found = measure(parts.conn, restore.target, cols, within)
        expected = sum((p.content for p in restore.parts if p.content), Content(0, 0, 0))
    else:  # parts of different columns, or of an earlier release: count only
        found = Content(parts.rows_of_month(month, restore.target), 0, 0)
        expected = Content(restore.rows, 0, 0)
    if found != expected:
        raise ManifestError(
            f"{restore.target} holds {found.rows} rows of {month:%Y-%m} after loading, with "
            f"content hash {found.digest} where the manifest says {expected.rows} rows, "
            f"{expected.digest}: nothing was restored (rolled back)"
        )


def _attach(parts: Partitions, restore: RestorePlan) -> None:
    start, end = month_bounds(restore.archive.month)
    target, check = sql.Identifier(restore.target), sql.Identifier(f"{restore.target}_month")
    key = sql.Identifier(parts.key)
    # A matching CHECK lets ATTACH skip its scan of the rows just loaded.
    conn = parts.conn
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} >= {} AND {} < {})").format(
            target, check, key, sql.Literal(start), key, sql.Literal(end)
        )
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(parts.table), target, sql.Literal(start), sql.Literal(end)
        )
    )
    conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(target, check))


def run(parts: Partitions, storage: Storage, restore: RestorePlan) -> list[Step]:
    """Load the planned parts in one transaction; then mark them restored in the manifest."""
    conn = parts.conn
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL(
                    "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = 0; "
                    "SET LOCAL idle_in_transaction_session_timeout = 0"
                ).format(LOCK_TIMEOUT)
            )
            # Again, inside the transaction: rows may have arrived since the plan.
            if restore.mode in (EMPTY_PARTITION, TABLE):
                present = parts.rows_of_month(restore.archive.month, restore.target)
                if present:
                    raise PartitionError(
                        f"{restore.target} received {present} rows of "
                        f"{restore.archive.month:%Y-%m} meanwhile: nothing was restored"
                    )
            steps = _load(parts, storage, restore)
    except psycopg.errors.LockNotAvailable as err:
        raise PartitionError(
            f"{parts.table} is in use (no lock within {LOCK_TIMEOUT}): nothing was restored; "
            "run again at a quieter time"
        ) from err
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as err:
        raise _fail(err, restore, parts.table) from err
    except (OSError, BotoCoreError, ClientError) as err:
        raise PartitionError(
            redact(f"the archive storage failed ({err}): nothing was restored (rolled back)")
        ) from err
    if restore.into_partition:
        now = utc_now()
        restored = {p.key for p in restore.parts}
        listed = [
            replace(p, restored_at=now) if p.key in restored else p for p in restore.archive.parts
        ]
        try:
            key = write_manifest(storage, restore.archive, listed)
        except PartitionError as err:
            raise PartitionError(
                f"restored {restore.rows} rows into {restore.target}, but the manifest could "
                f"not record it ({err}): the parts still count as archived, so archive the "
                "month again only with exactly these rows"
            ) from err
        steps.append(Step(restore.target, "manifest", f"{key}: parts restored", True))
    return steps
