"""`makesqlmigration`: the next V{n} SQL file, its U file and wrapper, from model changes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.questioner import (
    InteractiveMigrationQuestioner,
    NonInteractiveMigrationQuestioner,
)

from dbops import processes
from dbops.connections import use_migration_role
from dbops.sqlmigrations.exceptions import SqlMigrationError
from dbops.sqlmigrations.generate import GeneratorError, generate


class Command(BaseCommand):
    help = (
        "Write migrations_sql/V{n}__<name>.sql (the SQL Django's schema editor would run for "
        "the app's model changes), U{n}__<name>.sql (its reverse) and the Django wrapper."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("app_label", help="The app whose model changes to migrate.")
        parser.add_argument("name", help="snake_case description, e.g. add_due_time_to_tasks.")
        parser.add_argument(
            "--empty", action="store_true", help="Write empty SQL files and a bare wrapper."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would be written; write nothing."
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Never prompt (a question the autodetector must ask then fails).",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, choices=tuple(connections))

    def handle(self, *args: Any, **options: Any) -> None:
        app_label, name = options["app_label"], options["name"]
        if options["interactive"] and sys.stdin.isatty():
            questioner: Any = InteractiveMigrationQuestioner(
                specified_apps={app_label}, dry_run=options["dry_run"], prompt_output=self.stderr
            )
        else:
            questioner = NonInteractiveMigrationQuestioner(
                specified_apps={app_label},
                dry_run=options["dry_run"],
                verbosity=options["verbosity"],
                log=self.stderr.write,
            )
        connection = None
        if not options["empty"]:
            use_migration_role(options["database"])
            connection = connections[options["database"]]
        try:
            result = generate(
                app_label,
                name,
                connection=connection,
                questioner=questioner,
                empty=options["empty"],
            )
        except (GeneratorError, SqlMigrationError) as err:
            raise CommandError(str(err)) from err
        if result is None:
            self.stdout.write(f"No changes detected in app '{app_label}'; nothing written.")
            return
        for note in result.notes:
            self.stderr.write(self.style.WARNING(f"Warning: {note}"))
        paths = [result.sql_path, result.undo_path, result.wrapper_path]
        if options["dry_run"]:
            for path, text in zip(
                paths, (result.sql, result.undo_sql, result.wrapper), strict=True
            ):
                self.stdout.write(self.style.MIGRATE_HEADING(f"Would write {_shown(path)}:"))
                self.stdout.write(text)
            return
        try:
            written = result.write()
        except GeneratorError as err:
            raise CommandError(str(err)) from err
        format_python(result.wrapper_path)
        for path in written:
            self.stdout.write(f"  {_shown(path)}")
        self.stdout.write(
            f"Done! Wrote V{result.version}__{result.name}: review the SQL, then run "
            "`manage.py migrate`."
        )


def format_python(path: Path) -> None:
    """Format a written wrapper with the project's ruff settings, as makemigrations runs black."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).is_file():
        return  # no formatter installed: the file is valid Python either way
    base = Path(settings.BASE_DIR)
    config = base / "pyproject.toml"
    options = ["--config", str(config)] if config.is_file() else []
    for args in (["check", "--fix", "--select", "I", "-q"], ["format", "-q"]):
        # From BASE_DIR, so that ruff sorts the project's own packages as first-party.
        command = [ruff, *args, *options, str(path.resolve())]
        processes.run(command, capture_output=True, check=False, cwd=base)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
