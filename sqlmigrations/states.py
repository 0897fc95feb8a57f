"""The migration history as admins read it: each file and history row with a plain state.

Flyway's `info` states (sqlmigrations.lib.info) are precise but many; the admin groups
them into the five an admin acts on (applied, pending, failed, edited since applied,
missing from disk) and shows Flyway's own state next to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connections

from sqlmigrations import engine, maintenance
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.info import MigrationInfo, State, current_version, migration_infos
from sqlmigrations.lib.validation import Problem

APPLIED, PENDING, FAILED, EDITED, MISSING = (
    "applied",
    "pending",
    "failed",
    "edited since applied",
    "missing from disk",
)
NOT_APPLIED = {
    State.PENDING,
    State.IGNORED,
    State.ABOVE_TARGET,
    State.BELOW_BASELINE,
    State.BASELINE_IGNORED,
    State.OUTDATED,
}
MISSING_STATES = {State.MISSING_SUCCESS, State.FUTURE_SUCCESS}


def label(info: MigrationInfo) -> str:
    """Return the admin's state for one line of `info`."""
    if info.state.failed:
        return FAILED
    if info.state in MISSING_STATES:
        return MISSING
    if info.state in NOT_APPLIED:
        return PENDING
    edited = info.file is not None and info.row is not None and info.checksum_matches is False
    if edited and info.state not in (State.DELETED, State.UNDONE, State.SUPERSEDED):
        return EDITED
    return APPLIED


@dataclass(frozen=True)
class Overview:
    """Everything the migration-history pages show, read once."""

    infos: list[MigrationInfo]
    schema_version: str | None
    files: list[MigrationFile]

    def by_rank(self) -> dict[int, MigrationInfo]:
        return {i.row.installed_rank: i for i in self.infos if i.row is not None}

    def counts(self) -> dict[str, int]:
        result = dict.fromkeys((APPLIED, PENDING, FAILED, EDITED, MISSING), 0)
        for info in self.infos:
            result[label(info)] += 1
        return result


def read_overview(using: str = "default") -> Overview:
    """Read the files on disk and the history table (it only reads)."""
    files = engine.load_files(refresh=True)
    rows, values = maintenance.read_history(connections[using])
    infos = migration_infos(files, rows, values=values, out_of_order=engine.option("OUT_OF_ORDER"))
    version = current_version(infos)
    return Overview(infos, str(version) if version is not None else None, files)


def validate(using: str = "default") -> list[Problem]:
    """Run the same validation as `migrate` and `sqlmigrations validate`; change nothing."""
    return engine.read_and_validate(connections[using]).problems


def find_file(script: str) -> MigrationFile | None:
    return next((f for f in engine.load_files() if f.script == script), None)
