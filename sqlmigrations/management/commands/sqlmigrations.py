"""`manage.py sqlmigrations info|validate|repair|baseline|lint`: Flyway's commands, and lint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from sqlmigrations import engine
from sqlmigrations.lib import info as infos
from sqlmigrations.lib import lint as linting
from sqlmigrations.lib.baseline import baseline
from sqlmigrations.lib.committed import committed_checksums
from sqlmigrations.lib.exceptions import InvalidMigrationName, SqlMigrationError
from sqlmigrations.lib.files import MigrationFile, discover, rendered
from sqlmigrations.lib.flywayconf import load_flyway_config
from sqlmigrations.lib.history import BASELINE_DESCRIPTION, HistoryRow
from sqlmigrations.lib.invalid_indexes import InvalidIndex, creators, invalid_indexes
from sqlmigrations.lib.lock import advisory_lock, lock_key
from sqlmigrations.lib.names import is_candidate, parse_name
from sqlmigrations.lib.repair import (
    MARK_DELETED,
    REALIGN,
    REMOVE_FAILED,
    UNMARK_DELETED,
    apply_repair,
    check_repair,
    plan_repair,
)
from sqlmigrations.lib.validation import Problem
from sqlmigrations.lib.versions import Version
from sqlmigrations.redact import redact

PROGRESS_FROM = 200  # files: lint reports progress on stderr from this many on


class Command(BaseCommand):
    help = "Inspect and maintain the SQL migrations and flyway_schema_history, as Flyway does."
    # These commands diagnose and fix broken migration sets: the checks must not stop them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

        def add(name: str, help: str) -> CommandParser:
            p = sub.add_parser(name, help=help, description=help)
            p.add_argument("--database", default=DEFAULT_DB_ALIAS, help="database alias")
            p.add_argument("--json", action="store_true", help="print JSON for machines")
            return p

        p = add("info", "List every migration file and history row with its Flyway state.")
        p.add_argument("--target", help="show versions above this one as 'Above Target'")
        add("validate", "Check the files against the history; list every problem; exit 1 if any.")
        p = add("repair", "Remove failed rows, mark missing files deleted, realign checksums.")
        p.add_argument("--dry-run", action="store_true", help="print the changes, make none")
        p = add("baseline", "Adopt a database whose schema exists: record version N as applied.")
        p.add_argument("--version", required=True, help="the version the schema is at, e.g. 4")
        p.add_argument("--description", default=BASELINE_DESCRIPTION)
        p = add(
            "lint", "Lint SQL files with squawk and the team's database guide; exit 1 on findings."
        )
        p.add_argument("files", nargs="*", help="files to lint (default: every migration)")
        p.add_argument(
            "--base", help="git ref of the committed files (default: merge base with main)"
        )
        p.add_argument("--no-db", action="store_true", help="skip the applied-file check")
        p.add_argument("--no-git", action="store_true", help="skip the committed-file check")
        p.add_argument("--progress", action="store_true", help="report progress on stderr")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] in ("repair", "baseline"):
            options["database"] = engine.migration_alias(options["database"])  # the owner role
        connection = connections[options["database"]]
        try:
            getattr(self, "_" + options["subcommand"])(connection, options)
        except SqlMigrationError as err:
            raise CommandError(str(err)) from err
        except DatabaseError as err:
            user = connection.settings_dict.get("USER")
            raise CommandError(
                f"{options['subcommand']} failed as database user {user!r}: "
                f"{redact(str(err)).strip()}; repair and baseline need the owner role "
                "(set MIGRATION_DATABASE_URL)"
            ) from err

    # -- info / validate: read-only, with whatever role the connection has --------------

    def _read(self, connection: BaseDatabaseWrapper) -> tuple[list[HistoryRow], dict[str, Any]]:
        try:
            with connection.cursor() as cursor:
                history = engine.history_for(cursor)
                return history.rows(), engine.placeholders_for(cursor)
        except DatabaseError as err:
            raise CommandError(f"cannot read the schema history: {redact(str(err))}") from err

    def _info(self, connection: BaseDatabaseWrapper, options: dict[str, Any]) -> None:
        files = engine.load_files(refresh=True)
        rows, values = self._read(connection)
        target = Version(options["target"]) if options["target"] else None
        found = infos.migration_infos(
            files, rows, values=values, out_of_order=engine.option("OUT_OF_ORDER"), target=target
        )
        version = infos.current_version(found)
        invalid = self._invalid_indexes(connection, files, values)
        if options["json"]:
            self._json(
                {
                    "schemaVersion": str(version) if version is not None else None,
                    "schemaName": engine.option("SCHEMA"),
                    "database": connection.settings_dict["NAME"],
                    "migrations": [i.as_json() for i in found],
                    "invalidIndexes": [
                        {**index.as_json(), "script": script} for index, script in invalid
                    ],
                }
            )
            return
        self.stdout.write(
            f"Schema version: {version if version is not None else '<< Empty Schema >>'}"
        )
        self.stdout.write(
            infos.ascii_table(infos.COLUMNS, infos.table_rows(found), "No migrations found")
        )
        for i in found:
            if i.checksum_matches is False and i.state not in (infos.State.DELETED,):
                self.stdout.write(
                    self.style.WARNING(
                        f"{i.script}: edited since it was applied (checksum differs); "
                        "run `manage.py sqlmigrations validate`"
                    )
                )
        for index, script in invalid:
            made = f", created by {script}" if script else ""
            self.stdout.write(
                self.style.ERROR(
                    f"Invalid index {index}{made}: queries cannot use it and "
                    "CREATE INDEX ... IF NOT EXISTS skips it; drop it with "
                    f"{index.drop} then build it again"
                    + (" (`manage.py sqlmigrations repair` removes a failed row)" if made else "")
                )
            )
        pending = sum(i.state is infos.State.PENDING for i in found)
        self.stdout.write(f"{len(found)} migrations, {pending} pending.")

    def _invalid_indexes(
        self, connection: BaseDatabaseWrapper, files: list[MigrationFile], values: dict[str, Any]
    ) -> list[tuple[InvalidIndex, str | None]]:
        """Return the database's invalid indexes, each with the V file that creates it."""
        with connection.cursor() as cursor:
            invalid = invalid_indexes(cursor)
        made = creators(rendered(files, values), invalid) if invalid else {}
        return [(index, made.get(index)) for index in invalid]

    def _validate(self, connection: BaseDatabaseWrapper, options: dict[str, Any]) -> None:
        files, problems = self._files_for_validation()
        rows, values = self._read(connection)
        count = 0
        if files is not None:
            problems += engine.file_problems(files, rows)
            # Flyway's DbValidate counts what `info` lists (MigrationInfoService.all()):
            # applied and pending migrations, not the undo files beside them.
            out_of_order = engine.option("OUT_OF_ORDER")
            count = len(
                infos.migration_infos(files, rows, values=values, out_of_order=out_of_order)
            )
        if options["json"]:
            self._json(
                {
                    "valid": not problems,
                    "migrations": count,
                    "problems": [
                        {"code": p.code, "file": p.script, "message": p.message} for p in problems
                    ],
                }
            )
        if problems:
            plural = "s" if len(problems) != 1 else ""
            raise CommandError(
                f"Validation failed: {len(problems)} problem{plural}"
                + ("" if options["json"] else ":\n" + "\n".join(f"  - {p}" for p in problems))
            )
        if not options["json"]:
            self.stdout.write(
                f"Successfully validated {count} migrations (as `info` lists them): no problems."
            )

    def _files_for_validation(self) -> tuple[list[MigrationFile] | None, list[Problem]]:
        """Load the files; on bad names, report each of them and validate the rest."""
        try:
            return engine.load_files(refresh=True), []
        except InvalidMigrationName:
            pass
        except SqlMigrationError as err:  # duplicates, encodings: nothing sound to check
            return None, [Problem("files", err.path, err.detail)]
        location = Path(engine.option("LOCATION"))
        problems = []
        for folder in (location, engine.option("UNDO_LOCATION")):
            if folder is None or not Path(folder).is_dir():
                continue
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file() and is_candidate(path.name):
                    rel = path.relative_to(folder).as_posix()
                    try:
                        parse_name(path.name, path=rel)
                    except InvalidMigrationName as err:
                        problems.append(Problem("name", rel, err.detail))
        try:
            undo = engine.option("UNDO_LOCATION")
            return discover(location, strict=False, undo_directory=undo), problems
        except SqlMigrationError as err:
            return None, [*problems, Problem("files", err.path, err.detail)]

    # -- repair / baseline: owner role, advisory lock, one transaction ----------------------

    def _locked(self, connection: BaseDatabaseWrapper, options: dict[str, Any]) -> Any:
        connection.ensure_connection()
        cursor = connection.cursor()
        history = engine.history_for(cursor)
        lock = advisory_lock(
            cursor,
            lock_key(history.quoted_name),
            on_wait=lambda: self.stderr.write("Waiting for a migration run to release the lock..."),
        )
        return cursor, history, lock

    def _repair(self, connection: BaseDatabaseWrapper, options: dict[str, Any]) -> None:
        files = engine.load_files(refresh=True)
        cursor, history, lock = self._locked(connection, options)
        with cursor, lock, transaction.atomic(using=options["database"]):
            rows = history.rows()
            values = engine.placeholders_for(cursor)
            actions = plan_repair(
                files, rows, values=values, out_of_order=engine.option("OUT_OF_ORDER")
            )
            check_repair(cursor, files, actions, values)
            if not options["dry_run"]:
                apply_repair(history, actions)
        if options["json"]:
            self._json({"dryRun": options["dry_run"], "actions": [a.as_json() for a in actions]})
            return
        prefix = "Would repair" if options["dry_run"] else "Repaired"
        for action in actions:
            self.stdout.write(f"{prefix}: {action}")
        if not actions:
            self.stdout.write(f"Nothing to repair in {history.quoted_name}.")
            return
        kinds = (REMOVE_FAILED, MARK_DELETED, REALIGN, UNMARK_DELETED)
        count = {k: sum(a.action == k for a in actions) for k in kinds}
        summary = (
            f"{count[REMOVE_FAILED]} failed rows removed, {count[MARK_DELETED]} missing "
            f"migrations marked deleted, {count[REALIGN]} rows realigned, "
            f"{count[UNMARK_DELETED]} restored files un-marked"
        )
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {summary} if run without --dry-run; nothing changed.")
        else:
            self.stdout.write(f"Done: {summary} in {history.quoted_name}.")

    def _baseline(self, connection: BaseDatabaseWrapper, options: dict[str, Any]) -> None:
        version = Version(options["version"])
        files = engine.load_files(refresh=True)
        cursor, history, lock = self._locked(connection, options)
        with cursor, lock, transaction.atomic(using=options["database"]):
            values = engine.placeholders_for(cursor)
            rendered = [
                (mf, mf.render(values))
                for mf in files
                if mf.kind == "V" and mf.name.version is not None and mf.name.version <= version
            ]
            created = baseline(history, version, options["description"], rendered)
        if options["json"]:
            self._json({"baselineVersion": str(version), "created": created})
            return
        if not created:
            self.stdout.write(f"Already baselined at version {version}; nothing to do.")
            return
        self.stdout.write(
            f"Baselined {history.quoted_name} at version {version}. `migrate` now records the "
            f"wrappers of versions up to {version} as applied without running them, and "
            "applies later versions."
        )

    # -- lint ------------------------------------------------------------------------------

    def _lint(self, connection: BaseDatabaseWrapper, options: dict[str, Any]) -> None:
        location = Path(engine.option("LOCATION")).resolve()
        files = engine.load_files(refresh=True)
        targets = self._lint_targets(files, location, options["files"])
        show = options["progress"] or len(targets) >= PROGRESS_FROM
        progress = (lambda text: self.stderr.write(f"lint: {text}")) if show else None
        rows: list[HistoryRow] = []
        values = self._offline_values()
        if not options["no_db"]:
            try:
                rows, values = self._read(connection)
            except CommandError as err:
                self.stderr.write(f"lint: skipping the applied-file check: {err}")
        committed: dict[str, int] = {}
        if not options["no_git"]:
            _, committed = committed_checksums(location, targets, options["base"])
        findings = linting.lint(
            files,
            targets,
            values=values,
            rows=rows,
            committed=committed,
            progress=progress,
            flyway=load_flyway_config(Path(settings.BASE_DIR)),
        )
        if options["json"]:
            self._json({"files": len(targets), "findings": [f.as_json() for f in findings]})
        else:
            for finding in findings:
                self.stdout.write(str(finding))
        if findings:
            raise CommandError(f"lint: {len(findings)} findings in {len(targets)} files")
        if not options["json"]:
            self.stdout.write(f"Linted {len(targets)} files: no findings.")

    def _lint_targets(self, files: list[Any], location: Path, paths: list[str]) -> list[Any]:
        if not paths:
            return list(files)
        by_path = {mf.path.resolve(): mf for mf in files}
        targets = []
        for raw in paths:
            mf = by_path.get(Path(raw).resolve())
            if mf is None:
                raise CommandError(
                    f"{raw}: not a migration file under {location} (V/U/R{{...}}__name.sql)"
                )
            targets.append(mf)
        return targets

    def _offline_values(self) -> dict[str, Any]:
        return linting.offline_values(
            engine.option("SCHEMA"), engine.option("TABLE"), engine.option("PLACEHOLDERS")
        )

    def _json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str))
