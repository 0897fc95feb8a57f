"""`manage.py sqlmigrations info|validate|repair|baseline|lint`: Flyway's commands, and lint."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from sqlmigrations import engine, maintenance
from sqlmigrations.lib import info as infos
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.history import BASELINE_DESCRIPTION
from sqlmigrations.lib.versions import Version
from sqlmigrations.management.base import DatabaseCommand

PROGRESS_FROM = 200  # files: lint reports progress on stderr from this many on


class Command(DatabaseCommand):
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
        alias = options["database"]
        if options["subcommand"] in ("repair", "baseline"):
            alias = engine.migration_alias(alias)  # they change the history: the owner role
        try:
            getattr(self, "_" + options["subcommand"])(connections[alias], options)
        except SqlMigrationError as err:
            raise CommandError(str(err)) from err

    def _info(self, connection: BaseDatabaseWrapper, options: dict[str, Any]) -> None:
        target = Version(options["target"]) if options["target"] else None
        result = maintenance.info(connection, target=target)
        if options["json"]:
            self._json(result.as_json())
            return
        version = result.schema_version
        self.stdout.write(
            f"Schema version: {version if version is not None else '<< Empty Schema >>'}"
        )
        rows = infos.table_rows(result.migrations)
        self.stdout.write(infos.ascii_table(infos.COLUMNS, rows, "No migrations found"))
        for i in result.edited:
            self.stdout.write(
                self.style.WARNING(
                    f"{i.script}: edited since it was applied (checksum differs); "
                    "run `manage.py sqlmigrations validate`"
                )
            )
        for index, script in result.invalid_indexes:
            made = f", created by {script}" if script else ""
            self.stdout.write(
                self.style.ERROR(
                    f"Invalid index {index}{made}: queries cannot use it and "
                    "CREATE INDEX ... IF NOT EXISTS skips it; drop it with "
                    f"{index.drop} then build it again"
                    + (" (`manage.py sqlmigrations repair` removes a failed row)" if made else "")
                )
            )
        self.stdout.write(f"{len(result.migrations)} migrations, {result.pending} pending.")

    def _validate(self, connection: BaseDatabaseWrapper, options: dict[str, Any]) -> None:
        result = maintenance.validate(connection)
        if options["json"]:
            self._json(result.as_json())
        if result.problems:
            count = len(result.problems)
            listed = "\n".join(f"  - {p}" for p in result.problems)
            raise CommandError(
                f"Validation failed: {count} problem{'s' if count != 1 else ''}"
                + ("" if options["json"] else f":\n{listed}")
            )
        if not options["json"]:
            self.stdout.write(
                f"Successfully validated {result.migrations} migrations (as `info` lists them): "
                "no problems."
            )

    # repair and baseline change the history: as the owner role, under the advisory lock.

    def _repair(self, connection: BaseDatabaseWrapper, options: dict[str, Any]) -> None:
        result = maintenance.repair(connection, dry_run=options["dry_run"], on_wait=self._waiting)
        if options["json"]:
            self._json(result.as_json())
            return
        prefix = "Would repair" if result.dry_run else "Repaired"
        for action in result.actions:
            self.stdout.write(f"{prefix}: {action}")
        if not result.actions:
            self.stdout.write(f"Nothing to repair in {result.table}.")
        elif result.dry_run:
            self.stdout.write(
                f"Dry run: {result.summary} if run without --dry-run; nothing changed."
            )
        else:
            self.stdout.write(f"Done: {result.summary} in {result.table}.")

    def _baseline(self, connection: BaseDatabaseWrapper, options: dict[str, Any]) -> None:
        version = Version(options["version"])
        result = maintenance.baseline(
            connection, version, options["description"], on_wait=self._waiting
        )
        if options["json"]:
            self._json(result.as_json())
        elif not result.created:
            self.stdout.write(f"Already baselined at version {version}; nothing to do.")
        else:
            self.stdout.write(
                f"Baselined {result.table} at version {version}. `migrate` now records the "
                f"wrappers of versions up to {version} as applied without running them, and "
                "applies later versions."
            )

    def _lint(self, connection: BaseDatabaseWrapper, options: dict[str, Any]) -> None:
        def progress(text: str) -> None:
            self.stderr.write(f"lint: {text}")

        show = options["progress"] or len(options["files"] or engine.load_files()) >= PROGRESS_FROM
        result = maintenance.lint(
            None if options["no_db"] else connection,
            options["files"],
            base=options["base"],
            git=not options["no_git"],
            progress=progress if show else None,
        )
        for skipped in result.skipped:
            self.stderr.write(f"lint: skipping {skipped}")
        if options["json"]:
            self._json(result.as_json())
        else:
            for finding in result.findings:
                self.stdout.write(str(finding))
        if result.findings:
            raise CommandError(f"lint: {len(result.findings)} findings in {result.files} files")
        if not options["json"]:
            self.stdout.write(f"Linted {result.files} files: no findings.")

    def _waiting(self) -> None:
        self.stderr.write("Waiting for a migration run to release the lock...")

    def _json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str))
