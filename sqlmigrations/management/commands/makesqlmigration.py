"""`makesqlmigration`: the next V{n} SQL file, its U file and wrapper, from model changes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from sqlmigrations import engine
from sqlmigrations.generator.generate import GeneratorError, UnsafeMigration, generate
from sqlmigrations.generator.generated import FileExists, Generated
from sqlmigrations.generator.rendering import RenderError
from sqlmigrations.lib import processes
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Write migrations_sql/V{n}__<name>.sql (the SQL Django's schema editor would run for "
        "the app's model changes, made safe while the previous release runs), its undo file "
        "and the Django wrapper; refuse, writing nothing, what cannot be made safe."
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
            "--allow-unsafe",
            action="store_true",
            help="Write changes the safeguards or lint refuse (renames, drops, type changes), "
            "with a warning in the SQL file's header; the undo file is still written.",
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Accepted for scripts; the command never prompts.",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, choices=tuple(connections))

    def handle(self, *args: Any, **options: Any) -> None:
        app_label, name = options["app_label"], options["name"]
        allow_unsafe = options["allow_unsafe"]
        connection = None
        if not options["empty"]:
            connection = connections[engine.migration_alias(options["database"])]
        try:
            result = generate(
                app_label,
                name,
                connection=connection,
                empty=options["empty"],
                allow_unsafe=allow_unsafe,
            )
            findings = [] if result is None else result.lint()
        except UnsafeMigration as err:
            for problem in err.problems:
                self.stderr.write(problem)
            raise CommandError(str(err)) from err
        except (GeneratorError, RenderError, SqlMigrationError) as err:
            raise CommandError(str(err)) from err
        if result is None:
            self.stdout.write(f"No changes detected in app '{app_label}'; nothing written.")
            return
        for note in result.notes:
            self.stderr.write(self.style.WARNING(f"Warning: {note}"))
        for finding in findings:
            self.stderr.write(self.style.WARNING(str(finding)) if allow_unsafe else str(finding))
        if findings and not allow_unsafe:
            count = f"{len(findings)} problem{'s' if len(findings) > 1 else ''}"
            raise CommandError(
                f"lint found {count} in the generated files (listed above); nothing was "
                "written: do what each finding says, or pass --allow-unsafe to write the "
                "files anyway"
            )
        if options["dry_run"]:
            self._show(result)
            return
        try:
            written = result.write()
        except FileExists as err:
            raise CommandError(str(err)) from err
        except OSError as err:
            raise CommandError(
                f"could not write {err.filename}: {err.strerror}; nothing was written"
            ) from err
        for path, _ in result.wrapper_files():
            format_python(path)
        for path in written:
            self.stdout.write(f"  {_shown(path)}")
        stems = ", ".join(part.stem for part in result.parts)
        kept = f" with {len(findings)} lint findings (--allow-unsafe)" if findings else ""
        self.stdout.write(
            f"Done! Wrote {stems}{kept}: review the SQL, then run `manage.py migrate`."
        )

    def _show(self, result: Generated) -> None:
        for path, text in result.files() + result.wrapper_files():
            self.stdout.write(self.style.MIGRATE_HEADING(f"Would write {_shown(path)}:"))
            self.stdout.write(text)


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
