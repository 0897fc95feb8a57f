"""Flyway's info, validate, repair and baseline, and lint: functions that return results.

The `sqlmigrations` command formats these results for people or as JSON; the admin and
the deploy handler read them too. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from sqlmigrations import engine, largetables
from sqlmigrations.dberrors import database_error_line
from sqlmigrations.lib import info as infos
from sqlmigrations.lib import lint as linting
from sqlmigrations.lib.baseline import baseline as write_baseline
from sqlmigrations.lib.committed import committed_checksums
from sqlmigrations.lib.exceptions import InvalidMigrationName, SqlMigrationError
from sqlmigrations.lib.files import MigrationFile, discover, rendered, scan_names
from sqlmigrations.lib.flywayconf import load_flyway_config
from sqlmigrations.lib.history import BASELINE_DESCRIPTION, HistoryRow, SchemaHistory
from sqlmigrations.lib.invalid_indexes import InvalidIndex, creators, invalid_indexes
from sqlmigrations.lib.repair import (
    MARK_DELETED,
    REALIGN,
    REMOVE_FAILED,
    UNMARK_DELETED,
    RepairAction,
    apply_repair,
    check_repair,
    plan_repair,
)
from sqlmigrations.lib.validation import Problem, applied_versions
from sqlmigrations.lib.versions import Version

OnWait = Callable[[], None] | None


class NotAMigrationFile(SqlMigrationError):
    """A file given to lint is not a migration file of the project."""


@dataclass
class InfoResult:
    """What `info` shows: every file and history row with its Flyway state."""

    schema: str
    database: str
    migrations: list[infos.MigrationInfo]
    invalid_indexes: list[tuple[InvalidIndex, str | None]]  # with the V file creating it

    @property
    def schema_version(self) -> Version | None:
        return infos.current_version(self.migrations)

    @property
    def pending(self) -> int:
        return sum(i.state is infos.State.PENDING for i in self.migrations)

    @property
    def edited(self) -> list[infos.MigrationInfo]:
        """Return the applied files whose checksum differs from their row's."""
        return [
            i
            for i in self.migrations
            if i.checksum_matches is False and i.state is not infos.State.DELETED
        ]

    def as_json(self) -> dict[str, Any]:
        version = self.schema_version
        return {
            "schemaVersion": str(version) if version is not None else None,
            "schemaName": self.schema,
            "database": self.database,
            "migrations": [i.as_json() for i in self.migrations],
            "invalidIndexes": [
                {**index.as_json(), "script": script} for index, script in self.invalid_indexes
            ],
        }


@dataclass
class ValidateResult:
    """What `validate` found: every problem, and how many migrations `info` lists."""

    migrations: int
    problems: list[Problem]

    @property
    def valid(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "migrations": self.migrations,
            "problems": [
                {"code": p.code, "file": p.script, "message": p.message} for p in self.problems
            ],
        }


@dataclass
class RepairResult:
    """The changes `repair` made to the history (or would make, on a dry run)."""

    table: str
    dry_run: bool
    actions: list[RepairAction]

    def count(self, kind: str) -> int:
        return sum(a.action == kind for a in self.actions)

    @property
    def summary(self) -> str:
        return (
            f"{self.count(REMOVE_FAILED)} failed rows removed, {self.count(MARK_DELETED)} "
            f"missing migrations marked deleted, {self.count(REALIGN)} rows realigned, "
            f"{self.count(UNMARK_DELETED)} restored files un-marked"
        )

    def as_json(self) -> dict[str, Any]:
        return {"dryRun": self.dry_run, "actions": [a.as_json() for a in self.actions]}


@dataclass
class BaselineResult:
    """Whether `baseline` wrote the baseline row (False: the same one was there)."""

    table: str
    version: Version
    created: bool

    def as_json(self) -> dict[str, Any]:
        return {"baselineVersion": str(self.version), "created": self.created}


@dataclass
class LintResult:
    """The findings of lint over its target files."""

    files: int
    findings: list[linting.Finding]
    skipped: list[str] = field(default_factory=list)  # checks left out, and why

    def as_json(self) -> dict[str, Any]:
        return {"files": self.files, "findings": [f.as_json() for f in self.findings]}


def read_history(connection: BaseDatabaseWrapper) -> tuple[list[HistoryRow], dict[str, Any]]:
    """Return the history rows and the placeholder values, with the connection's role."""
    with connection.cursor() as cursor:
        return engine.history_for(cursor).rows(), engine.placeholders_for(cursor)


def info(connection: BaseDatabaseWrapper, *, target: Version | None = None) -> InfoResult:
    """List every migration file and history row with its Flyway state (reads only)."""
    files = engine.load_files(refresh=True)
    rows, values = read_history(connection)
    found = infos.migration_infos(
        files, rows, values=values, out_of_order=engine.option("OUT_OF_ORDER"), target=target
    )
    with connection.cursor() as cursor:
        invalid = invalid_indexes(cursor)
    made = creators(rendered(files, values), invalid) if invalid else {}
    return InfoResult(
        schema=engine.option("SCHEMA"),
        database=str(connection.settings_dict["NAME"]),
        migrations=found,
        invalid_indexes=[(index, made.get(index)) for index in invalid],
    )


def validate(connection: BaseDatabaseWrapper) -> ValidateResult:
    """Check the files against the history and list every problem; change nothing."""
    files, problems = _files_for_validation()
    if files is None:
        read_history(connection)  # an unreadable history is still the first thing to say
        return ValidateResult(0, problems)
    checked = engine.read_and_validate(connection, files)
    with connection.cursor() as cursor:
        values = engine.placeholders_for(cursor)
    # Flyway's DbValidate counts what `info` lists (MigrationInfoService.all()): applied
    # and pending migrations, not the undo files beside them.
    count = len(
        infos.migration_infos(
            files, checked.rows, values=values, out_of_order=engine.option("OUT_OF_ORDER")
        )
    )
    return ValidateResult(count, problems + checked.problems)


def _files_for_validation() -> tuple[list[MigrationFile] | None, list[Problem]]:
    """Load the files; on bad names, report each of them and validate the rest."""
    try:
        return engine.load_files(refresh=True), []
    except InvalidMigrationName:
        pass
    except SqlMigrationError as err:  # duplicates, encodings: nothing sound to check
        return None, [Problem("files", err.path, err.detail)]
    location = Path(engine.option("LOCATION"))
    undo = engine.option("UNDO_LOCATION")
    problems = [
        Problem("name", err.path, err.detail)
        for folder in (location, undo)
        if folder is not None
        for err in scan_names(folder)[1]
    ]
    try:
        return discover(location, strict=False, undo_directory=undo), problems
    except SqlMigrationError as err:
        return None, [*problems, Problem("files", err.path, err.detail)]


@contextmanager
def _changing_history(
    connection: BaseDatabaseWrapper, on_wait: OnWait
) -> Iterator[tuple[list[MigrationFile], Any, SchemaHistory, dict[str, Any]]]:
    """Read the files, then hold the advisory lock and one transaction for a change."""
    files = engine.load_files(refresh=True)
    with (
        engine.migration_lock(connection, on_wait=on_wait) as (cursor, history),
        transaction.atomic(using=connection.alias),
    ):
        yield files, cursor, history, engine.placeholders_for(cursor)


def repair(
    connection: BaseDatabaseWrapper, *, dry_run: bool = False, on_wait: OnWait = None
) -> RepairResult:
    """Remove failed rows, mark missing files deleted, realign checksums, under the lock."""
    with _changing_history(connection, on_wait) as (files, cursor, history, values):
        actions = plan_repair(
            files, history.rows(), values=values, out_of_order=engine.option("OUT_OF_ORDER")
        )
        check_repair(cursor, files, actions, values)
        if not dry_run:
            apply_repair(history, actions)
    return RepairResult(history.quoted_name, dry_run, actions)


def baseline(
    connection: BaseDatabaseWrapper,
    version: Version,
    description: str = BASELINE_DESCRIPTION,
    *,
    on_wait: OnWait = None,
) -> BaselineResult:
    """Record `version` as the schema's baseline, checking its objects exist, under the lock."""
    with _changing_history(connection, on_wait) as (files, _, history, values):
        upto = [
            (mf, mf.render(values))
            for mf in files
            if mf.kind == "V" and mf.name.version is not None and mf.name.version <= version
        ]
        created = write_baseline(history, version, description, upto)
    return BaselineResult(history.quoted_name, version, created)


def lint(
    connection: BaseDatabaseWrapper | None,
    paths: Sequence[str] = (),
    *,
    base: str | None = None,
    git: bool = True,
    progress: Callable[[str], None] | None = None,
) -> LintResult:
    """Lint the given files (default: every migration) with squawk and the team's guide.

    With a connection, applied files that were edited are findings too; a database that
    cannot be read only leaves that check out (the result says why).
    """
    location = Path(engine.option("LOCATION")).resolve()
    files = engine.load_files(refresh=True)
    targets = lint_targets(files, location, paths)
    rows: list[HistoryRow] = []
    values: dict[str, Any] = engine.offline_placeholders()
    skipped = []
    if connection is not None:
        try:
            rows, values = read_history(connection)
        except DatabaseError as err:
            line = database_error_line(err, "reading the schema history", connection.alias)
            skipped.append(f"the applied-file check: {line}")
    committed: dict[str, int] = {}
    if git:
        _, committed = committed_checksums(location, targets, base)
    findings = linting.lint(
        files,
        targets,
        values=values,
        rows=rows,
        committed=committed,
        progress=progress,
        flyway=load_flyway_config(Path(settings.BASE_DIR)),
    )
    # What migrate would refuse: with the live sizes when the history could be read.
    live = connection if connection is not None and not skipped else None
    extra, left_out = largetables.lint_findings(live, targets, values, set(applied_versions(rows)))
    findings = linting.merge_operation_findings(findings, extra)
    return LintResult(len(targets), findings, skipped + left_out)


def lint_targets(
    files: list[MigrationFile], location: Path, paths: Sequence[str]
) -> list[MigrationFile]:
    """Return the migration files named by `paths` (all of them when none is given)."""
    if not paths:
        return list(files)
    by_path = {mf.path.resolve(): mf for mf in files}
    targets = []
    for raw in paths:
        mf = by_path.get(Path(raw).resolve())
        if mf is None:
            raise NotAMigrationFile(
                f"not a migration file under {location} (V/U/R{{...}}__name.sql)", path=raw
            )
        targets.append(mf)
    return targets
