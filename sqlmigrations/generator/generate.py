"""Write the next V{n} SQL migration, its U file and its Django wrapper from model changes.

The SQL is what Django's schema editor would run for the changes the autodetector finds
(`makemigrations` + `sqlmigrate`), after the safeguards (sqlmigrations.generator.safeguards)
made it safe while the previous release still runs, or refused it. The developer then
reviews the files like any hand-written migration.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

from django.apps import apps
from django.db import migrations
from django.db.backends.base.base import BaseDatabaseWrapper

from sqlmigrations import engine
from sqlmigrations.django_internals import (
    MigrationAutodetector,
    MigrationExecutor,
    MigrationLoader,
    MigrationQuestioner,
    MigrationWriter,
    ProjectState,
)
from sqlmigrations.generator import safeguards
from sqlmigrations.generator.generated import Generated
from sqlmigrations.generator.parts import Names, empty_part, render_parts
from sqlmigrations.lib.names import convention_problems, parse_name
from sqlmigrations.wrappers import find_wrappers

_SNAKE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
# flyway_schema_history.description holds 200 characters; index files add "_index_<k>".
MAX_NAME = 150
COMMAND = "manage.py makesqlmigration"


class GeneratorError(Exception):
    """Refuse to generate a migration; the message says why and what to do."""


class UnsafeMigration(GeneratorError):
    """The model changes would break the release still running; nothing is generated."""

    def __init__(self, app_label: str, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        super().__init__(
            f"refused: {count} with the model changes of app {app_label!r} (listed above); "
            "nothing was written: follow the steps given, or pass --allow-unsafe to write "
            "it anyway"
        )


def check_name(name: str, version: int) -> None:
    """Refuse a description that breaks the team's convention (snake_case) or Flyway's limits."""
    shown = repr(name) if len(name) <= 60 else f"{name[:60]!r}... ({len(name)} characters)"
    if _SNAKE.fullmatch(name):
        if len(name) > MAX_NAME:
            raise GeneratorError(
                f"migration name {shown} is too long: keep it to {MAX_NAME} characters "
                "(Flyway's history keeps 200 for the description, and index files add a "
                "suffix), saying what the migration does (e.g. add_due_time_to_tasks)"
            )
        return
    script = f"V{version}__{name}.sql"
    try:
        problems = convention_problems(parse_name(script))
    except Exception:  # noqa: BLE001 - any unparsable name gets the generic advice below
        problems = []
    # The advice ends the problem; the name itself may contain the same words.
    fix = next((p.rsplit(": rename it to ", 1)[1] for p in problems if ": rename it to " in p), "")
    fix = fix.removeprefix(f"V{version}__").removesuffix(".sql")
    suggestion = f"; e.g. {fix}" if fix and len(fix) <= MAX_NAME else ""
    raise GeneratorError(
        f"migration name {shown} is not snake_case: use lowercase letters, digits and single "
        f"underscores, saying what the migration does (e.g. add_due_time_to_tasks){suggestion}"
    )


def next_version() -> int:
    """Return the version after the highest V or U file on disk (1 for an empty folder)."""
    versions = [mf.name.version for mf in engine.load_files(refresh=True) if mf.name.version]
    return max((v.parts[0] for v in versions if v is not None), default=0) + 1


def detect_changes(app_label: str) -> tuple[list[Any], list[tuple[str, str]], MigrationLoader]:
    """Return the operations and outside dependencies for the app's model changes.

    Nothing is asked: Django's base questioner answers "no" to "was this renamed?" and
    gives no default to a new NOT NULL column; the safeguards then name the rename (a
    dropped column with a new one of the same type) or the missing default.
    """
    questioner = MigrationQuestioner(specified_apps={app_label})
    loader = MigrationLoader(None, ignore_no_migrations=True)
    conflicts = loader.detect_conflicts()
    if conflicts.get(app_label):
        raise GeneratorError(
            f"app {app_label!r} has conflicting migrations "
            f"({', '.join(conflicts[app_label])}); resolve them first"
        )
    autodetector = MigrationAutodetector(
        loader.project_state(), ProjectState.from_apps(apps), questioner
    )
    changes = autodetector.changes(
        graph=loader.graph, trim_to_apps={app_label}, convert_apps={app_label}
    )
    others = sorted(label for label in changes if label != app_label)
    if others:
        raise GeneratorError(
            f"the changes in {app_label!r} depend on unmigrated model changes in "
            f"{', '.join(others)}; run makesqlmigration for {', '.join(others)} first"
        )
    operations: list[Any] = []
    dependencies: list[tuple[str, str]] = []
    for migration in changes.get(app_label, []):
        operations.extend(migration.operations)
        for dep in migration.dependencies:
            dep = tuple(dep)
            if dep[0] != app_label and dep not in dependencies:
                dependencies.append(dep)  # type: ignore[arg-type]
    return operations, dependencies, loader


def wrapper_dependencies(
    loader: MigrationLoader, app_label: str, outside: list[tuple[str, str]]
) -> tuple[list[tuple[str, str]], str]:
    """Return the new wrapper's dependencies and the app migration to go back to ("zero").

    D1: the wrapper of V{n} depends on the wrapper of V{n-1}, in whatever app that is, and
    on the app's own latest migration, even when that is already an ancestor: Django
    counts an app's leaves within the app, so without it the app would have two.
    """
    wrappers = find_wrappers(loader)
    by_version = {}
    for w in wrappers:
        for script in w.scripts:
            name = parse_name(Path(script).name)
            if name.kind == "V" and name.version is not None:
                by_version[name.version] = w
    on_disk = [mf for mf in engine.load_files() if mf.kind == "V" and mf.name.version]
    latest = max(on_disk, key=lambda mf: mf.name.version, default=None)  # type: ignore[arg-type,return-value]
    if latest is not None and latest.name.version not in by_version:
        raise GeneratorError(
            f"{latest.script} has no wrapper migration (see `manage.py check`, "
            "sqlmigrations.E002): the new migration must depend on it; add its wrapper first"
        )
    deps: list[tuple[str, str]] = []
    if by_version:
        deps.append(by_version[max(by_version)].key)
    previous_app = "zero"
    for leaf in loader.graph.leaf_nodes(app_label):
        previous_app = leaf[1]
        if leaf not in deps:
            deps.append(leaf)
    for dep in outside:
        if dep not in deps:
            deps.append(dep)
    return deps, previous_app


def require_migrated(connection: BaseDatabaseWrapper) -> None:
    """Refuse to render against a database that lacks applied migrations."""
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        raise GeneratorError(
            f"{len(plan)} migration(s) are not applied to the database ({names}"
            f"{', ...' if len(plan) > 5 else ''}); run `manage.py migrate` first: the SQL is "
            "rendered against the migrated schema (constraint names come from its catalog)"
        )


def generate(
    app_label: str,
    name: str,
    *,
    connection: BaseDatabaseWrapper | None,
    empty: bool = False,
    allow_unsafe: bool = False,
    command: str = COMMAND,
    today: datetime.date | None = None,
) -> Generated | None:
    """Build the next migration for the app's model changes; None when there are none.

    Raises UnsafeMigration when the safeguards refuse a change (unless `allow_unsafe`).
    """
    try:
        app_config = apps.get_app_config(app_label)
    except LookupError:
        raise GeneratorError(
            f"no installed app with label {app_label!r}; use one of "
            f"{', '.join(sorted(c.label for c in apps.get_app_configs()))}"
        ) from None
    version = next_version()
    check_name(name, version)
    operations, outside, loader = detect_changes(app_label)
    if not operations and not empty:
        return None
    deps, back_to = wrapper_dependencies(loader, app_label, [] if empty else outside)
    names = Names(app_label, name, command, (today or datetime.date.today()).isoformat())
    notes: list[str] = []
    if empty:
        parts = [empty_part(version, names, back_to)]
    else:
        if connection is None:
            raise GeneratorError("a database connection is needed to render the SQL")
        require_migrated(connection)
        state = loader.project_state()
        planned = safeguards.plan(app_label, operations, state, connection)
        if planned.refusals and not allow_unsafe:
            raise UnsafeMigration(app_label, planned.refusals)
        notes += [f"{problem} (written anyway: --allow-unsafe)" for problem in planned.refusals]
        parts = render_parts(connection, state, planned, version, names, back_to, notes)
    for i, part in enumerate(parts):
        part_deps = deps if i == 0 else [(app_label, parts[i - 1].stem)]
        part.wrapper = render_wrapper(
            part.stem, app_label, part.script, part_deps, part.operations, names.date
        )
    location = Path(engine.option("LOCATION"))
    writer = MigrationWriter(migrations.Migration(parts[0].stem, app_label))
    try:
        wrapper_dir = Path(writer.basedir)
    except ValueError as err:
        raise GeneratorError(f"cannot place the wrapper for {app_config.label}: {err}") from None
    return Generated(
        app_label=app_label,
        parts=parts,
        location=location,
        undo_location=engine.option("UNDO_LOCATION") or location,
        wrapper_dir=wrapper_dir,
        notes=notes,
    )


def render_wrapper(
    stem: str,
    app_label: str,
    script: str,
    dependencies: list[tuple[str, str]],
    state_operations: list[Any],
    date: str,
) -> str:
    """Return the wrapper's source, written by Django's MigrationWriter."""
    from sqlmigrations.operations import RunSQLFile

    migration = migrations.Migration(stem, app_label)
    migration.dependencies = dependencies
    # Only an app's first migration is initial: `migrate --fake-initial` fakes an initial
    # migration whose tables exist, which for a later one would skip real changes.
    migration.initial = not any(dep[0] == app_label for dep in dependencies)
    migration.operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[RunSQLFile(script)], state_operations=state_operations
        )
    ]
    text = MigrationWriter(migration, include_header=False).as_string()
    text = text.replace(
        "class Migration(migrations.Migration):", "class Migration(SQLFileMigration):"
    )
    # The writer names the operation by its module path; the wrapper imports it by name.
    text = re.sub(r"(?:sqlmigrations\.operations\.)+RunSQLFile\(", "RunSQLFile(", text)
    text = text.replace("import sqlmigrations.operations\n", "")
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("from django.db import"))
    lines.insert(at + 1, "\nfrom sqlmigrations.operations import RunSQLFile, SQLFileMigration\n")
    header = f"# Generated by manage.py makesqlmigration on {date}: runs migrations_sql/{script}\n"
    return header + "".join(lines)
