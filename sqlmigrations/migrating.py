"""What `manage.py migrate` does with the engine: lock, validate, apply, report the result.

`migrate` is the body of the migrate command: under Flyway's advisory lock it validates
the files against the history, refuses a backward step it cannot undo, applies the
wrappers (a plain run through the one-round-trip executor, anything else through
Django's own migrate command) and the repeatables, and returns what it applied.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.module_loading import module_has_submodule

from sqlmigrations import applying, engine, largetables
from sqlmigrations.applying import MigrateResult, collecting
from sqlmigrations.backwards import blockers, refusal, requested_plan
from sqlmigrations.django_internals import (
    emit_post_migrate_signal,
    emit_pre_migrate_signal,
    post_migrate_apps,
    project_state,
)
from sqlmigrations.executor import SQLMigrationExecutor
from sqlmigrations.lib import dangerous
from sqlmigrations.lib import lint as linting
from sqlmigrations.lib.executor import MigrationFailed
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.flywayconf import load_flyway_config
from sqlmigrations.lib.history import TYPE_SQL
from sqlmigrations.lib.lint import Finding
from sqlmigrations.lib.squawk import SquawkError, squawk_binary
from sqlmigrations.lib.validation import baseline_version
from sqlmigrations.operations import (
    LazyApps,
    SQLFileMigration,
    defer_rendering,
    recorded_only,
    rendered,
)


def migrate(
    command: DjangoMigrate, options: dict[str, Any], result: MigrateResult | None = None
) -> MigrateResult:
    """Run `migrate` with these options and return what it applied.

    `command` is the migrate command writing the progress lines; `result`, when given, is
    filled as the run goes, so that a caller still has what applied before a failure.
    """
    result = MigrateResult() if result is None else result
    connection = connections[options["database"]]
    with collecting(result):
        if options["plan"]:
            DjangoMigrate.handle(command, **options)
            refused = undo_refusal(connection, options)
            if refused:
                command.stdout.write(
                    command.style.WARNING(
                        f"migrate would refuse this plan, nothing would be undone: {refused}"
                    )
                )
            return result
        # The command read the files before its checks: the run need not read them again.
        refresh = not getattr(command, "files_read", False)
        with engine.locked_run(
            connection, on_wait=lambda: _waiting(command), refresh=refresh
        ) as run:
            problems = engine.validate_database(connection, run.rows)
            if problems:
                raise CommandError(
                    f"Validation failed, nothing was applied ({len(problems)} problem"
                    f"{'s' if len(problems) != 1 else ''}):\n"
                    + "\n".join(f"  - {p}" for p in problems)
                )
            refused = undo_refusal(connection, options)
            if refused:
                raise CommandError(f"backward migration refused, nothing was undone: {refused}")
            if not migrate_plain(command, connection, run, options):
                # The same checks before any file runs as a plain run has (the roles the
                # files name, dangerous operations on large tables), for `migrate <app>
                # [<name>]` and the other runs Django's own migrate takes.
                if not (options["fake"] or options["fake_initial"]):
                    plan = requested_plan(
                        connection, options["app_label"], options["migration_name"]
                    )
                    forward = [(m, b) for m, b in plan or [] if not b]
                    files = files_to_run(forward, run, repeatables=not options["app_label"])
                    check_before_running(command, connection, run, files, options["verbosity"])
                DjangoMigrate.handle(command, **options)
            if not options["app_label"]:
                for applied in applying.apply_repeatables(connection):
                    if options["verbosity"] >= 1:
                        # As Django's line for a migration: the time from verbosity 2.
                        took = f" ({applied.seconds:.3f}s)" if options["verbosity"] > 1 else ""
                        command.stdout.write(f"  Applying repeatable {applied.script}... OK{took}")
    return result


def _waiting(command: BaseCommand) -> None:
    command.stdout.write("Another migration run holds the lock; waiting for it to finish...")


def after_baseline(connection: BaseDatabaseWrapper, err: MigrationFailed) -> str:
    """Say so when the failing file is the first above a baseline: the baseline, not the
    file, may be wrong (baseline checks objects, not columns or data)."""
    if err.undo:
        return ""
    with connection.cursor() as cursor:
        rows = engine.history_for(cursor).rows()
    floor = baseline_version(rows)
    version = err.mf.name.version
    if floor is None or version is None or version <= floor:
        return ""
    if any(r.type == TYPE_SQL and r.success and (r.parsed_version or floor) > floor for r in rows):
        return ""
    return (
        f"\nThis database was baselined at version {floor} (`sqlmigrations baseline`), "
        f"and {err.mf.script} is the first file above it: if the error names something an "
        f"earlier file makes, the schema was not at version {floor}; compare it with "
        "`manage.py schemadrift` before you change the file."
    )


def undo_refusal(connection: BaseDatabaseWrapper, options: dict[str, Any]) -> str | None:
    """Say why the backward steps of this run cannot all be undone, or None."""
    if options["fake"] or not options["app_label"]:
        return None  # --fake undoes nothing; without an app, migrate only goes forwards
    plan = requested_plan(connection, options["app_label"], options["migration_name"])
    if not plan:
        return None
    with connection.cursor() as cursor:
        values = engine.placeholders_for(cursor)
    found = blockers(plan, values)
    return refusal(plan, found) if found else None


def migrate_plain(
    command: DjangoMigrate,
    connection: BaseDatabaseWrapper,
    run: engine.Run,
    options: dict[str, Any],
) -> bool:
    """Run a plain `migrate` (every app, forwards, no flags) without Django's overheads.

    This is Django's `migrate` but for three costs that grow with the number of
    wrappers: it renders the historical models before (for pre_migrate) and after (for
    post_migrate) only if a receiver looks at them; it applies each plain wrapper in one
    round trip (SQLMigrationExecutor); and with nothing pending it neither renders the
    models nor runs the autodetector, and sends pre_migrate and post_migrate with the
    project's own apps, as `flush` does. Returns False, having done nothing, for any
    other run: Django's own `migrate` takes it.
    """
    if options["app_label"] or options["run_syncdb"] or options["prune"]:
        return False
    if options["check_unapplied"] or options["fake"] or options["fake_initial"]:
        return False
    command.verbosity, command.interactive = options["verbosity"], options["interactive"]
    for app_config in apps.get_app_configs():  # as Django's migrate: signal receivers
        if module_has_submodule(app_config.module, "management"):
            import_module(".management", app_config.name)
    connection.prepare_database()
    executor = SQLMigrationExecutor(connection, command.migration_progress_callback)
    executor.loader.check_consistent_history(connection)
    if executor.loader.detect_conflicts():
        return False
    targets = executor.loader.graph.leaf_nodes()
    plan = executor.migration_plan(targets)
    if any(backwards for _, backwards in plan):
        return False
    pending_file = any(
        mf.kind == "V" and mf.name.version not in run.applied for mf in engine.load_files()
    )
    if pending_file and not plan:
        return False  # a file without a wrapper: Django's migrate and the check say so
    check_before_running(command, connection, run, files_to_run(plan, run), command.verbosity)
    verbosity, interactive, alias = command.verbosity, command.interactive, connection.alias
    stdout, style = command.stdout, command.style
    if verbosity >= 1:
        labels = ", ".join(sorted({app_label for app_label, _ in targets})) or "(none)"
        stdout.write(style.MIGRATE_HEADING("Operations to perform:"))
        stdout.write(style.MIGRATE_LABEL("  Apply all migrations: ") + labels)
    if not plan:
        emit_pre_migrate_signal(verbosity, interactive, alias, stdout=stdout, plan=[])
        if verbosity >= 1:
            stdout.write(style.MIGRATE_HEADING("Running migrations:"))
            stdout.write("  No migrations to apply.")
        emit_post_migrate_signal(verbosity, interactive, alias, stdout=stdout, plan=[])
        return True
    state = project_state(executor)
    before = state.clone()  # not rendered yet: cloning copies model states only
    emit_pre_migrate_signal(
        verbosity, interactive, alias, stdout=stdout, apps=LazyApps(lambda: before.apps), plan=plan
    )
    if verbosity >= 1:
        stdout.write(style.MIGRATE_HEADING("Running migrations:"))
    after = executor.migrate(targets, plan=plan, state=defer_rendering(state))
    emit_post_migrate_signal(
        verbosity,
        interactive,
        alias,
        stdout=stdout,
        apps=LazyApps(lambda: post_migrate_apps(after, rendered)),
        plan=plan,
    )
    return True


def check_before_running(
    command: BaseCommand,
    connection: BaseDatabaseWrapper,
    run: engine.Run,
    pending: list[MigrationFile],
    verbosity: int,
) -> None:
    """Refuse the run before its first file when a file names a missing role or would lock
    or rewrite a large table (docs/migrations.md, "Large tables"); the whole pending set is
    checked, in order. Acknowledged operations are listed."""
    engine.require_roles(connection, run, pending)
    allowed = largetables.require_safe_operations(
        connection, [(mf, run.render(mf)) for mf in pending]
    )
    if verbosity >= 1 and pending and engine.option("LINT_AT_MIGRATE"):
        for finding in pending_lint(run, pending):
            # On stdout with the run's other lines: stderr's first line is an error's reason.
            command.stdout.write(f"  lint warning: {finding}")
    if verbosity >= 1:
        for op, ack in allowed:
            command.stdout.write(f"  Acknowledged {op.rule} at {op.script}:{op.line}: {ack.reason}")


def pending_lint(run: engine.Run, pending: list[MigrationFile]) -> list[Finding]:
    """The guide's and squawk's findings on the files about to run, as `sqlmigrations lint`
    gives them, less what the large-table check already refused or let through. squawk runs
    when it is installed (a development tool: a deploy image may not have it)."""
    try:
        squawk_binary()
    except SquawkError:
        with_squawk = False
    else:
        with_squawk = True
    findings = linting.lint(
        engine.load_files(),
        pending,
        values=run.placeholders,
        rows=run.rows,
        flyway=load_flyway_config(Path(settings.BASE_DIR)),
        squawk=with_squawk,
    )
    return [f for f in findings if f.rule not in dangerous.RULES]


def files_to_run(
    plan: list[tuple[Any, bool]], run: engine.Run, *, repeatables: bool = True
) -> list[MigrationFile]:
    """Return the SQL files this forward plan runs, then the repeatables that run after
    (a run without an app label only: `migrate <app>` applies none)."""
    files = [
        engine.find_file(script)
        for migration, _ in plan
        if isinstance(migration, SQLFileMigration) and recorded_only(migration, run) is None
        for script in migration.sql_scripts
    ]
    if not repeatables:
        return files
    return files + [mf for mf, _ in engine.pending_repeatables(run.rows, run.placeholders)]
