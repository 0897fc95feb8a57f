"""Validate migration files against the history, as Flyway's validate does, and more (D3)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dbops.sqlmigrations.files import MigrationFile
from dbops.sqlmigrations.history import TYPE_BASELINE, TYPE_DELETE, TYPE_SQL, HistoryRow
from dbops.sqlmigrations.names import convention_problems
from dbops.sqlmigrations.versions import Version


@dataclass(frozen=True)
class Problem:
    """One validation failure, naming the file (or history row) and the fix."""

    code: str  # edited, missing, failed, ignored, convention, gap, description, type
    script: str
    message: str

    def __str__(self) -> str:
        return f"{self.script}: {self.message}"


def applied_versions(rows: Iterable[HistoryRow]) -> dict[Version, HistoryRow]:
    """Return the latest successful row per version, leaving out versions marked deleted."""
    result: dict[Version, HistoryRow] = {}
    for row in rows:
        version = row.parsed_version
        if version is None:
            continue
        if row.type == TYPE_DELETE and row.success:
            result.pop(version, None)
        elif row.success:
            result[version] = row
    return result


def baseline_version(rows: Iterable[HistoryRow]) -> Version | None:
    versions = [r.parsed_version for r in rows if r.type == TYPE_BASELINE and r.version]
    return max((v for v in versions if v is not None), default=None)


def convention(
    files: Iterable[MigrationFile], deleted: Iterable[int] = (), applied: Iterable[Version] = ()
) -> list[Problem]:
    """Check the team's convention: integer versions, no gaps, snake_case descriptions.

    `deleted` are versions the history marks deleted (`repair` of a file removed on
    purpose): the gap they leave is not a problem. `applied` are the versions the history
    holds: an applied file keeps its version, so a gap before it is never closed by
    renaming it, and a gap of applied files is reported as missing files instead.
    """
    problems: list[Problem] = []
    removed = set(deleted)
    ran = set(applied)
    versioned = [f for f in files if f.kind == "V" and f.name.version is not None]
    for f in versioned:
        for message in convention_problems(f.name, path=f.script):
            problems.append(Problem("convention", f.script, message.removeprefix(f"{f.script}: ")))
    previous: MigrationFile | None = None
    for f in versioned:
        assert f.name.version is not None
        parts = f.name.version.parts
        if previous is not None and previous.name.version is not None and len(parts) == 1:
            before = previous.name.version.parts
            gap = [n for n in range(before[0] + 1, parts[0]) if n not in removed]
            if len(before) == 1 and parts[0] > before[0] and gap:
                missing = ", ".join(f"V{n}" for n in gap[:5])
                if all(Version(str(n)) in ran for n in gap):
                    pass  # applied, then deleted: reported as "missing" with the fix
                elif f.name.version in ran:
                    problems.append(
                        Problem(
                            "gap",
                            f.script,
                            f"version {parts[0]} follows {previous.script} but {missing} "
                            f"is missing; {f.script} is already applied, so it keeps its "
                            f"version: restore the deleted {missing} file and its wrapper "
                            "from version control",
                        )
                    )
                else:
                    problems.append(
                        Problem(
                            "gap",
                            f.script,
                            f"version {parts[0]} follows {previous.script} but {missing} "
                            "is missing: versions are sequential integers; rename this file "
                            f"to V{before[0] + 1}__{f.name.raw_description}.sql (and its "
                            "wrapper), or restore the missing file if it was deleted",
                        )
                    )
        previous = f
    return problems


def validate(
    files: list[MigrationFile],
    rows: list[HistoryRow],
    *,
    check_convention: bool = True,
    out_of_order: bool = False,
) -> list[Problem]:
    """Return every problem at once: edited, missing, failed, ignored, bad names."""
    deleted = [
        r.parsed_version.parts[0]
        for r in rows
        if r.type == TYPE_DELETE and r.parsed_version is not None
    ]
    applied = applied_versions(rows)
    problems = convention(files, deleted, applied) if check_convention else []
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
        if version in applied or (baseline is not None and version <= baseline):
            continue
        if latest_applied is not None and version < latest_applied and not out_of_order:
            problems.append(
                Problem(
                    "ignored",
                    f.script,
                    f"not applied, but version {latest_applied} already is: it would never "
                    f"run; give it a version above {latest_applied}",
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
