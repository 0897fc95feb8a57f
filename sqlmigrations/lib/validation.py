"""Validate migration files against the history, as Flyway's validate does, and more (D3)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.history import TYPE_BASELINE, TYPE_DELETE, TYPE_SQL, HistoryRow
from sqlmigrations.lib.sequence import (
    Committed,
    Problem,
    Recorded,
    above_all,
    sequence_problems,
)
from sqlmigrations.lib.versions import Version

__all__ = ["Problem", "applied_versions", "baseline_version", "misplaced_files", "validate"]


def applied_versions(rows: Iterable[HistoryRow]) -> dict[Version, HistoryRow]:
    """Return the latest successful row per version, leaving out versions marked deleted."""
    return Recorded.of(rows).applied


def baseline_version(rows: Iterable[HistoryRow]) -> Version | None:
    versions = [r.parsed_version for r in rows if r.type == TYPE_BASELINE and r.version]
    return max((v for v in versions if v is not None), default=None)


def validate(
    files: list[MigrationFile],
    rows: list[HistoryRow],
    *,
    check_convention: bool = True,
    out_of_order: bool = False,
    committed: Committed | None = None,
) -> list[Problem]:
    """Return every problem at once: edited, missing, failed, ignored, bad names, gaps."""
    recorded = Recorded.of(rows)
    applied = applied_versions(rows)
    names = [(f.script, f.name) for f in files]
    problems = sequence_problems(names, recorded, committed=committed) if check_convention else []
    by_version = {f.name.version: f for f in files if f.kind == "V"}
    baseline = baseline_version(rows)
    for row in rows:
        if not row.success and row.type != TYPE_DELETE:
            problems.append(
                Problem(
                    "failed",
                    row.script,
                    f"the history records a failed run of version {row.version or '-'} "
                    f"(installed_rank {row.installed_rank}); undo what it left behind, then "
                    "run `manage.py sqlmigrations repair` to remove the failed row",
                )
            )
    latest_file = max(by_version, default=None)
    for version, row in applied.items():
        if row.type != TYPE_SQL:
            continue
        f = by_version.get(version)
        if f is None:
            if latest_file is not None and version > latest_file:
                continue  # "future": applied by a newer checkout; Flyway ignores it by default
            problems.append(
                Problem(
                    "missing",
                    row.script,
                    f"version {row.version} was applied but {row.script} is not on disk; "
                    "restore the file from version control (`git log --diff-filter=D "
                    "--name-only` names the commit that deleted it), or run `manage.py "
                    "sqlmigrations repair` to mark it deleted if it was removed on purpose",
                )
            )
            continue
        if f.checksum != row.checksum:
            problems.append(
                Problem(
                    "edited",
                    f.script,
                    f"edited since it was applied (checksum {f.checksum} on disk, "
                    f"{row.checksum} applied on {row.installed_on:%Y-%m-%d %H:%M}); applied "
                    "files must never change: revert the edit and put the change in a new "
                    "migration (or, if the edit is intentional and harmless, run "
                    "`manage.py sqlmigrations repair` to realign the checksum)",
                )
            )
        elif f.name.description != row.description:
            problems.append(
                Problem(
                    "description",
                    f.script,
                    f"renamed since it was applied (history says {row.description!r}); "
                    "revert the rename or run `manage.py sqlmigrations repair`",
                )
            )
    latest_applied = max(applied, default=None)
    for version, f in by_version.items():
        if version in applied:
            continue
        marker = recorded.deleted.get(version)  # type: ignore[arg-type]
        if marker is not None:
            problems.append(_restored(f, marker))
            continue
        if baseline is not None and version <= baseline:
            continue
        if latest_applied is not None and version < latest_applied and not out_of_order:
            rename = f"V{above_all(recorded.known | set(by_version))}__{f.name.raw_description}.sql"
            problems.append(
                Problem(
                    "ignored",
                    f.script,
                    f"not applied, but version {latest_applied} already is: it would never "
                    f"run; rename it to {rename} (and its wrapper), above every version",
                )
            )
    on_disk = {f.name.description for f in files if f.kind == "R"}
    for description, row in applied_repeatables(rows).items():
        if description not in on_disk:
            problems.append(
                Problem(
                    "missing",
                    row.script,
                    "repeatable migration was applied but is not on disk; restore it "
                    "or run `manage.py sqlmigrations repair` to mark it deleted",
                )
            )
    return problems


def _restored(f: MigrationFile, marker: HistoryRow) -> Problem:
    """Advise on a file that `repair` marked deleted and that is back on disk."""
    marked = (
        f"the history marks version {marker.version} deleted (installed_rank "
        f"{marker.installed_rank}, by `repair` when the file was missing), but the file is "
        "back; its SQL already ran, and a new version would run it again"
    )
    if marker.checksum == f.checksum:
        return Problem(
            "deleted",
            f.script,
            f"{marked}: run `manage.py sqlmigrations repair` to un-mark it (repair checks "
            "that what it creates is in the database)",
        )
    return Problem(
        "deleted",
        f.script,
        f"{marked}, with other content (checksum {f.checksum} on disk, {marker.checksum} "
        "applied): restore the text that was applied, then run `manage.py sqlmigrations "
        "repair` to un-mark it; put a change in a new migration",
    )


def applied_repeatables(rows: Iterable[HistoryRow]) -> dict[str, HistoryRow]:
    """Return the latest successful row per repeatable description, unless marked deleted."""
    result: dict[str, HistoryRow] = {}
    for row in rows:
        if row.version is not None or not row.success:
            continue
        if row.type == TYPE_DELETE:
            result.pop(row.description, None)
        elif row.type == TYPE_SQL:
            result[row.description] = row
    return result


def misplaced_files(
    files: Iterable[MigrationFile], location: Path, undo_location: Path | None
) -> list[Problem]:
    """With undo files kept apart: a U file in the Flyway location, or a V or R file in the
    undo folder, where Flyway never looks."""
    if undo_location is None:
        return []
    undo_root = Path(undo_location).resolve()
    problems = []
    for f in files:
        in_undo = f.path.resolve().is_relative_to(undo_root)
        if f.kind == "U" and not in_undo:
            problems.append(
                Problem(
                    "misplaced",
                    f.script,
                    f"an undo file in {Path(location).name}/, which Flyway reads: Flyway "
                    "Community cannot parse a U file name and, with validateMigrationNaming "
                    f"(flyway.toml), refuses the whole folder; move it to {undo_root.name}/ "
                    "(SQL_MIGRATIONS['UNDO_LOCATION'])",
                )
            )
        elif f.kind != "U" and in_undo:
            problems.append(
                Problem(
                    "misplaced",
                    f.script,
                    f"a {'repeatable' if f.kind == 'R' else 'versioned'} migration in "
                    f"{undo_root.name}/, which holds undo files only and which Flyway does "
                    f"not read; move it to {Path(location).name}/",
                )
            )
    return problems
