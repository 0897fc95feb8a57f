"""Repair the schema history as Flyway's `repair` does (DbRepair + JdbcTableSchemaHistory).

In Flyway's order: remove failed rows; mark applied migrations whose file is gone as
deleted (a new row of type DELETE, as Flyway writes it; "future" rows, applied by a newer
checkout, are left alone, as Flyway's default ignoreMigrationPatterns "*:future" does);
realign the checksum, description and type of applied files that were edited on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.files import MigrationFile, rendered
from sqlmigrations.lib.history import TYPE_DELETE, HistoryRow, SchemaHistory
from sqlmigrations.lib.info import SYNTHETIC_TYPES, State, migration_infos
from sqlmigrations.lib.invalid_indexes import creators, invalid_indexes
from sqlmigrations.lib.names import versioned_name
from sqlmigrations.lib.objects import absent_objects, created_objects
from sqlmigrations.lib.sequence import Recorded

REMOVE_FAILED = "remove-failed"
MARK_DELETED = "mark-deleted"
REALIGN = "realign"
UNMARK_DELETED = "unmark-deleted"


class RepairRefused(SqlMigrationError):
    """A repair would leave the database worse off; nothing was changed."""


@dataclass(frozen=True)
class RepairAction:
    """One change repair makes to the history, with what it says about it."""

    action: str  # remove-failed, mark-deleted, realign, unmark-deleted
    row: HistoryRow
    checksum: int | None = None  # realign: the file's values
    description: str | None = None
    type: str | None = None
    file: MigrationFile | None = None  # unmark-deleted: the file that is back

    def __str__(self) -> str:
        what = f"version {self.row.version}" if self.row.version else "repeatable"
        where = f"{self.row.script} ({what}, installed_rank {self.row.installed_rank})"
        if self.action == REMOVE_FAILED:
            return f"{where}: removed the failed row"
        if self.action == MARK_DELETED:
            return (
                f"{where}: file is missing; marked as deleted (a DELETE row); remove what it "
                "created from the database or move it into another migration"
            )
        if self.action == UNMARK_DELETED:
            return (
                f"{where}: the file is back as it was applied; un-marked as deleted (removed "
                "the DELETE row): applied again, its SQL not run"
            )
        changes = []
        if self.checksum != self.row.checksum:
            changes.append(f"checksum {self.row.checksum} -> {self.checksum}")
        if self.description != self.row.description:
            changes.append(f"description {self.row.description!r} -> {self.description!r}")
        if self.type != self.row.type:
            changes.append(f"type {self.row.type} -> {self.type}")
        return f"{where}: realigned with the file: " + ", ".join(changes)

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "script": self.row.script,
            "version": self.row.version,
            "installedRank": self.row.installed_rank,
            "message": str(self),
        }


def plan_repair(
    files: list[MigrationFile],
    rows: list[HistoryRow],
    *,
    values: Mapping[str, Any] | None = None,
    out_of_order: bool = False,
) -> list[RepairAction]:
    """Return what repair would change, in the order Flyway makes the changes."""
    actions = [RepairAction(REMOVE_FAILED, r) for r in rows if not r.success]
    remaining = [r for r in rows if r.success]
    infos = migration_infos(files, remaining, values=values, out_of_order=out_of_order)
    for info in infos:
        row = info.row
        if row is None or info.type in SYNTHETIC_TYPES:
            continue
        if info.state in (State.MISSING_SUCCESS, State.MISSING_FAILED):
            actions.append(RepairAction(MARK_DELETED, row))
    for info in infos:
        row, mf = info.row, info.file
        if row is None or mf is None or info.type in SYNTHETIC_TYPES:
            continue
        if info.state in (State.UNDONE, State.IGNORED, State.DELETED):
            continue
        if mf.kind == "V":
            needed = (
                not info.checksum_matches
                or mf.name.description != row.description
                or row.type != "SQL"
            )
        else:
            # Repeatables: only when the row holds the placeholder-replaced checksum while
            # the file's raw one differs (checksumMatchesWithoutBeingIdentical); an edited
            # repeatable is simply outdated and runs again on the next migrate.
            needed = bool(info.checksum_matches) and row.checksum != mf.checksum
        if needed:
            actions.append(RepairAction(REALIGN, row, mf.checksum, mf.name.description, "SQL"))
    # Beyond Flyway: a file marked deleted that is back unchanged is applied again, rather
    # than run again under a new version (Flyway would call it Ignored, or run it again).
    deleted = Recorded.of(remaining).deleted
    for mf in files:
        marker = deleted.get(mf.name.version) if mf.kind == "V" else None  # type: ignore[arg-type]
        if marker is not None and marker.checksum == mf.checksum:
            actions.append(RepairAction(UNMARK_DELETED, marker, file=mf))
    return actions


def check_repair(
    cursor: Any,
    files: list[MigrationFile],
    actions: list[RepairAction],
    values: Mapping[str, Any],
) -> None:
    """Refuse, before the first change, a repair that would do the wrong thing.

    Removing the failed row of a file that left an invalid index behind lets `migrate`
    run the file again, and `CREATE INDEX CONCURRENTLY IF NOT EXISTS` then reports
    success while keeping the invalid index. Un-marking a restored file whose objects
    are gone would record as applied what the database does not have.
    """
    reasons = _unmark_problems(cursor, actions, values)
    failed = [a for a in actions if a.action == REMOVE_FAILED and a.row.version]
    versions = {a.row.parsed_version for a in failed}
    sources = [mf for mf in files if mf.kind == "V" and mf.name.version in versions]
    made = creators(rendered(sources, values), invalid_indexes(cursor)) if failed else {}
    for action in failed:
        left = [index for index, script in made.items() if _same_version(script, action.row)]
        if left:
            reasons.append(
                f"{action.row.script} (version {action.row.version}, installed_rank "
                f"{action.row.installed_rank}): its failed run left the invalid index "
                + ", ".join(str(i) for i in left)
                + "; with the row removed, `migrate` runs the file again and IF NOT EXISTS "
                "keeps the invalid index: drop it first ("
                + " ".join(i.drop for i in left)
                + "), then run repair again"
            )
    if reasons:
        raise RepairRefused(
            "repair refused, nothing was repaired: " + "; ".join(reasons),
            path=reasons[0].split(" ", 1)[0],
        )


def _unmark_problems(
    cursor: Any, actions: list[RepairAction], values: Mapping[str, Any]
) -> list[str]:
    """Say which restored files cannot be un-marked: what they create is gone."""
    reasons = []
    for action in actions:
        if action.action != UNMARK_DELETED or action.file is None:
            continue
        mf = action.file
        absent = absent_objects(cursor, created_objects(mf, mf.render(values)))
        if absent:
            reasons.append(
                f"{mf.script} (version {mf.name.version}, marked deleted at installed_rank "
                f"{action.row.installed_rank}) is back, but what it creates is not in the "
                f"database: {', '.join(str(o) for o in absent)}; un-marking it would record "
                "it as applied without them: delete the file again and put what is still "
                "needed in a new migration"
            )
    return reasons


def _same_version(script: str, row: HistoryRow) -> bool:
    name = versioned_name(script)
    return name is not None and name.version == row.parsed_version


def apply_repair(history: SchemaHistory, actions: list[RepairAction]) -> None:
    """Make the planned changes; the caller holds the lock and the transaction."""
    for action in actions:
        row = action.row
        if action.action == REMOVE_FAILED:
            history.delete(row.installed_rank)
        elif action.action == MARK_DELETED:
            # JdbcTableSchemaHistory.delete(): the applied row's values, type DELETE,
            # execution_time 0, the next installed_rank, installed_by the current user.
            history.insert(
                version=row.version,
                description=row.description,
                type=TYPE_DELETE,
                script=row.script,
                checksum=row.checksum,
                execution_time=0,
                success=row.success,
            )
        elif action.action == UNMARK_DELETED:
            history.delete(row.installed_rank)
        else:
            _realign(history, action)


def _realign(history: SchemaHistory, action: RepairAction) -> None:
    # Database.getUpdateStatement(): description, type and checksum; script is kept.
    query = sql.SQL(
        "UPDATE {} SET description = %s, type = %s, checksum = %s WHERE installed_rank = %s"
    ).format(history.ident)
    raw = getattr(history.cursor, "cursor", history.cursor)
    history.cursor.execute(
        query.as_string(raw.connection),
        [(action.description or "")[:200], action.type, action.checksum, action.row.installed_rank],
    )
