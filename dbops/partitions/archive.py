"""Archive monthly partitions: pre-check, then detach, export, verify, drop.

`plan` is the pre-check and the dry run: it reads the database and the storage, changes
nothing, and refuses (PartitionError) with the reason when a month cannot be archived.
`run_month` then does what the plan says:

1. detach the partition from its parent (a transaction of its own; a kill after it leaves
   a detached table that still holds every row, which the next run finishes);
2. in one transaction holding the detached table in SHARE mode (nobody changes it),
   count and hash its rows; when they are exactly what live parts of the archive hold
   (an earlier run was killed after writing its manifest), read those back and go to 5;
3. export it (COPY ... CSV HEADER, gzipped) to a new write-once part, and read the part
   back: sha256, header and row count;
4. write the next manifest version: every earlier part and the new one;
5. drop the table, and commit.

A kill anywhere leaves the partition attached, or detached with all its rows. A part that
a killed run wrote but did not list stays in storage, unlisted, and is never restored.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from django.core.files.storage import FileSystemStorage, Storage
from psycopg import sql

from dbops.partitions import PartitionError
from dbops.partitions.content import Content, columns, measure
from dbops.partitions.manifest import (
    MonthArchive,
    Part,
    check_present,
    read_month,
    utc_now,
    write_manifest,
)
from dbops.partitions.store import new_part_key, verify_part, write_once
from dbops.partitions.tables import (
    Partition,
    Partitions,
    Step,
    as_dict,
    month_add,
    this_month,
)
from sqlmigrations.redact import redact

# DETACH takes an ACCESS EXCLUSIVE lock on the parent: wait this long for the
# application's queries, then give up rather than queue every later query behind us.
LOCK_TIMEOUT = "10s"
PROGRESS_EVERY = 100_000  # lines of CSV


@dataclass
class MonthPlan:
    """What archiving one partition will do, as found by the pre-check."""

    partition: Partition
    archive: MonthArchive
    rows: int
    archived_as: list[Part]  # live parts that already hold exactly these rows
    steps: list[Step]


def matching(live: list[Part], content: Content) -> list[Part]:
    """The live parts whose rows are exactly `content`: one of them, or all together."""
    for part in live:
        if part.content == content:
            return [part]
    if live and all(p.content for p in live):
        total = sum((p.content for p in live if p.content), Content(0, 0, 0))
        if total == content:
            return list(live)
    return []


def _check_writable(storage: Storage, archive: MonthArchive) -> None:
    if not isinstance(storage, FileSystemStorage):
        return  # S3 says so only when written to; a refused PUT changes nothing there
    folder = Path(storage.path(archive.folder))
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise PartitionError(
            f"cannot write archives to {folder} (BACKUP_DIR): it is not a folder this user "
            "may write to; nothing was changed"
        )


def _listing(archive: MonthArchive, key: str, listed: list[Part | None], extra: int) -> str:
    """What a manifest lists, for people: parts, rows archived, parts restored since."""
    live = sum(p.rows for p in listed if p is not None and p.live) + extra
    restored = sum(1 for p in listed if p is not None and not p.live)
    since = f" ({restored} restored into the table since)" if restored else ""
    return f"{key}: {len(listed)} part(s){since}, {live} rows archived"


def plan_month(parts: Partitions, storage: Storage, partition: Partition) -> MonthPlan:
    """Pre-check one partition and say what archiving it would do; change nothing."""
    assert partition.month is not None
    archive = read_month(storage, parts.table, partition.month)
    check_present(storage, archive)
    _check_writable(storage, archive)
    name, live = partition.name, archive.live_parts
    if live:  # the table may be what they hold already: only its content hash can tell
        with parts.conn.transaction():
            content = measure(parts.conn, name, columns(parts.conn, name))
        done, rows = matching(live, content), content.rows
    else:
        done, rows = [], parts.count(name)
    steps = [
        Step(name, "detach", f"from {parts.table}", False, rows)
        if partition.attached
        else Step(name, "detach", "was detached (an interrupted archive)", True, rows)
    ]
    if done:
        names = ", ".join(p.name for p in done)
        steps.append(Step(name, "verify", f"already archived in {names}: read back", False, rows))
    else:
        listing = _listing(archive, archive.next_manifest, [*archive.parts, None], rows)
        steps += [
            Step(name, "export", f"{rows} rows to a new part in {archive.folder}/", False, rows),
            Step(name, "verify", "read the part back: sha256, header, rows", False, rows),
            Step(name, "manifest", listing, False, rows),
        ]
    steps.append(Step(name, "drop", f"{name}, once the archive holds its rows", False, rows))
    return MonthPlan(partition, archive, rows, done, steps)


def plan(parts: Partitions, storage: Storage, due: list[Partition]) -> list[MonthPlan]:
    """Pre-check every due partition; refuse at the first that cannot be archived."""
    return [plan_month(parts, storage, partition) for partition in due]


@dataclass
class ArchiveResult:
    """What `partitions archive` did (or, without execute, would do)."""

    keep_months: int
    execute: bool
    plans: list[MonthPlan]
    steps: list[Step]

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.plans)

    def as_json(self) -> dict[str, Any]:
        return {
            "execute": self.execute,
            "keep_months": self.keep_months,
            "steps": [as_dict(s) for s in self.steps],
        }


def due(parts: Partitions, keep_months: int, month: date | None = None) -> list[Partition]:
    """Return the partitions past the retention, or the one month asked for (refused if kept)."""
    if month is None:
        return parts.due(keep_months)
    cutoff = month_add(this_month(), -keep_months)
    if month >= cutoff:
        raise PartitionError(
            f"{month:%Y-%m} is within the {keep_months}-month retention (months before "
            f"{cutoff:%Y-%m} are archived): pass a smaller --keep-months to archive it"
        )
    found = parts.find(month)
    if found is None:
        raise PartitionError(
            f"there is no partition of {month:%Y-%m} to archive; its archive, if any: "
            f"`partitions restore {month:%Y-%m} --dry-run`"
        )
    return [found]


def archive_months(
    parts: Partitions,
    storage: Storage,
    keep_months: int,
    month: date | None = None,
    *,
    execute: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ArchiveResult:
    """Archive the due partitions, each checked first (without execute: only the checks)."""
    plans = plan(parts, storage, due(parts, keep_months, month))  # refuses before any change
    steps: list[Step] = []
    for month_plan in plans:
        if execute:
            steps += run_month(parts, storage, month_plan, progress=progress)
        else:
            steps += month_plan.steps
    return ArchiveResult(keep_months, execute, plans, steps)


def _locked(name: str, err: psycopg.errors.LockNotAvailable, after: str) -> PartitionError:
    return PartitionError(
        f"{name} or its parent is in use (no lock within {LOCK_TIMEOUT}: "
        f"{err.diag.message_primary}); {after}; run again at a quieter time"
    )


def run_month(
    parts: Partitions,
    storage: Storage,
    month: MonthPlan,
    progress: Callable[[str], None] | None = None,
) -> list[Step]:
    """Archive one planned partition (see the module's docstring); return the steps done."""
    conn, name = parts.conn, month.partition.name
    steps = []
    if month.partition.attached:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(LOCK_TIMEOUT))
                conn.execute(
                    sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                        sql.Identifier(parts.table), sql.Identifier(name)
                    )
                )
                parts.comment(
                    name,
                    f"Detached from {parts.table} by `partitions archive` at {utc_now()}; "
                    "its rows are archived only once a manifest lists them and this table "
                    "is gone. Run `manage.py partitions archive --execute` to finish.",
                )
        except psycopg.errors.LockNotAvailable as err:
            raise _locked(name, err, "nothing was changed") from err
        steps.append(Step(name, "detach", f"from {parts.table}", True, month.rows))
    else:
        steps.append(Step(name, "detach", "was detached (an interrupted archive)", True))
    try:
        with conn.transaction():
            steps += _archive_detached(parts, storage, month, progress)
    except psycopg.errors.LockNotAvailable as err:
        raise _locked(name, err, f"{name} stays detached with all its rows") from err
    except (OSError, BotoCoreError, ClientError) as err:
        raise PartitionError(
            redact(
                f"the archive storage failed while archiving {name} ({err}): {name} stays "
                "detached with all its rows; run again once the storage works"
            )
        ) from err
    rows = steps[-1].rows
    steps[0].rows = rows
    steps.append(Step(name, "drop", "dropped: its rows are in the archive", True, rows))
    return steps


def _archive_detached(
    parts: Partitions, storage: Storage, month: MonthPlan, progress: Callable[[str], None] | None
) -> list[Step]:
    conn, name = parts.conn, month.partition.name
    conn.execute(
        sql.SQL(
            "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = 0; "
            "SET LOCAL idle_in_transaction_session_timeout = 0"
        ).format(LOCK_TIMEOUT)
    )
    conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.Identifier(name)))
    # Read again under the lock: another run may have written since the plan.
    archive = read_month(storage, parts.table, month.archive.month)
    check_present(storage, archive)
    cols = columns(conn, name)
    content = measure(conn, name, cols)
    done = matching(archive.live_parts, content)
    steps = []
    if done:
        for part in done:
            verify_part(storage, part, archive.where(part.key))
        names = ", ".join(p.name for p in done)
        detail = f"already archived in {names}: read back, sha256 and rows match"
        steps.append(Step(name, "verify", detail, True, content.rows))
    else:
        part = _export(conn, storage, archive, name, cols, content, progress)
        steps.append(
            Step(name, "export", f"{part.rows} rows, {part.bytes} bytes", True, part.rows, part.key)
        )
        verify_part(storage, part, archive.where(part.key))
        detail = f"sha256 {part.sha256[:12]}..., {part.rows} rows"
        steps.append(Step(name, "verify", detail, True, part.rows, part.key))
        key = write_manifest(storage, archive, [*archive.parts, part])
        detail = _listing(archive, key, [*archive.parts, part], 0)
        steps.append(Step(name, "manifest", detail, True, part.rows, key))
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    return steps


class _HashingWriter(io.RawIOBase):
    def __init__(self, target: Any, digest: Any) -> None:
        self.target, self.digest = target, digest

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return int(self.target.write(data))


def _export(
    conn: psycopg.Connection[Any],
    storage: Storage,
    archive: MonthArchive,
    name: str,
    cols: tuple[str, ...],
    content: Content,
    progress: Callable[[str], None] | None,
) -> Part:
    key = new_part_key(archive.table, archive.month, datetime.now(UTC))
    digest = hashlib.sha256()
    lines = 0
    with tempfile.TemporaryFile() as spool:
        hashing = _HashingWriter(spool, digest)
        # Level 6, gzip's own default: level 9 takes twice as long for 3 % less.
        with gzip.GzipFile(fileobj=hashing, mode="wb", compresslevel=6, mtime=0) as gz:
            query = sql.SQL("COPY {} ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(
                sql.Identifier(name), sql.SQL(", ").join(sql.Identifier(c) for c in cols)
            )
            with conn.cursor().copy(query) as copy:
                for chunk in copy:
                    data = bytes(chunk)
                    gz.write(data)
                    before, lines = lines, lines + data.count(b"\n")
                    if progress is not None and lines // PROGRESS_EVERY > before // PROGRESS_EVERY:
                        progress(f"{name}: {lines} lines exported")
        size = spool.tell()
        spool.seek(0)
        write_once(storage, key, spool, size, "application/gzip")
    return Part(
        key=key,
        rows=content.rows,
        bytes=size,
        sha256=digest.hexdigest(),
        exported_at=utc_now(),
        source=name,
        columns=cols,
        content=content,
    )
