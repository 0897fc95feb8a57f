"""`migrate` with the SQL migration engine: owner role, lock, validation, repeatables."""

from __future__ import annotations

import time
from importlib import import_module
from typing import Any

from django.apps import apps
from django.core.management.base import CommandError, no_translations
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db import connections, migrations
from django.db.migrations.exceptions import InconsistentMigrationHistory, IrreversibleError
from django.utils.module_loading import module_has_submodule

from dbops.connections.errors import connect_or_explain, use_migration_role, without_pool
from sqlmigrations import engine
from sqlmigrations.backwards import blockers, refusal, requested_plan
from sqlmigrations.executor import SQLMigrationExecutor, post_migrate_apps
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.executor import MigrationFailed, locate
from sqlmigrations.lib.history import TYPE_SQL
from sqlmigrations.lib.validation import baseline_version
from sqlmigrations.operations import (
    LazyApps,
    RunSQLFile,
    SQLFileMigration,
    defer_rendering,
    recorded_only,
)
from sqlmigrations.wrappers import one_disk_load


class Command(DjangoMigrate):
    help = (
        "Apply migrations_sql/ files (through their Django wrappers) and Django's own "
        "migrations, validated first, under Flyway's advisory lock."
    )
    files_read = False  # whether execute() read the SQL files for this run

    def execute(self, *args: Any, **options: Any) -> Any:
        # Before the system checks: they read the history through this connection, as the
        # role that migrates, so a file `repair` marked deleted is judged as validate does.
        alias = options["database"]
        use_migration_role(alias)
        without_pool(alias)
        connect_or_explain(alias)
        # Read the files once for the run, before the checks (each wrapper looks its file
        # up as it loads), so the locked run need not read them again: it read them before
        # taking the lock too. When they cannot be read, it reads them and says why.
        try:
            engine.load_files(refresh=True)
            self.files_read = True
        except SqlMigrationError:
            self.files_read = False
        # The checks read the migration files; the executor reuses what they read.
        with one_disk_load():
            return super().execute(*args, **options)

    @no_translations
    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[options["database"]]
        try:
            if options["plan"]:
                super().handle(*args, **options)
                refused = self._undo_refusal(connection, options)
                if refused:
                    self.stdout.write(
                        self.style.WARNING(
                            f"migrate would refuse this plan, nothing would be undone: {refused}"
                        )
                    )
                return
            with engine.locked_run(
                connection, on_wait=self._waiting, refresh=not self.files_read
            ) as run:
                problems = engine.validate_database(connection, run.rows)
                if problems:
                    raise CommandError(
                        f"Validation failed, nothing was applied ({len(problems)} problem"
                        f"{'s' if len(problems) != 1 else ''}):\n"
                        + "\n".join(f"  - {p}" for p in problems)
                    )
                refused = self._undo_refusal(connection, options)
                if refused:
                    raise CommandError(f"backward migration refused, nothing was undone: {refused}")
                if not self._migrate_plain(connection, run, options):
                    super().handle(*args, **options)
                if not options["app_label"]:
                    applied = engine.apply_repeatables(connection)
                    for script in applied:
                        if options["verbosity"] >= 1:
                            self.stdout.write(f"  Applying repeatable {script}... OK")
        except InconsistentMigrationHistory as err:
            raise CommandError(
                f"{err} django_migrations disagrees with the migration files: compare "
                "`manage.py showmigrations` with `manage.py sqlmigrations info`, and record "
                "a missing wrapper with `manage.py migrate <app> <name> --fake` only if "
                "`sqlmigrations info` shows its file as applied; nothing was applied."
            ) from err
        except MigrationFailed as err:
            # The file's transaction is rolled back by now: find the failing statement's line.
            connection.ensure_connection()
            located = str(locate(connection.connection, err))
            raise CommandError(located + self._after_baseline(connection, err)) from err
        except SqlMigrationError as err:
            raise CommandError(str(err)) from err
        except IrreversibleError as err:
            raise CommandError(str(err)) from err

    @staticmethod
    def _after_baseline(connection: Any, err: MigrationFailed) -> str:
        """Say so when the failing file is the first above a baseline: the baseline, not
        the file, may be wrong (baseline checks objects, not columns or data)."""
        if err.undo:
            return ""
        with connection.cursor() as cursor:
            rows = engine.history_for(cursor).rows()
        floor = baseline_version(rows)
        version = err.mf.name.version
        if floor is None or version is None or version <= floor:
            return ""
        if any(
            r.type == TYPE_SQL and r.success and (r.parsed_version or floor) > floor for r in rows
        ):
            return ""
        return (
            f"\nThis database was baselined at version {floor} (`sqlmigrations baseline`), "
            f"and {err.mf.script} is the first file above it: if the error names something an "
            f"earlier file makes, the schema was not at version {floor}; compare it with "
            "`manage.py schemadrift` before you change the file."
        )

    @staticmethod
    def _undo_refusal(connection: Any, options: dict[str, Any]) -> str | None:
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

    @staticmethod
    def describe_operation(operation: Any, backwards: bool) -> tuple[str, bool]:
        """For --plan: name the SQL file a wrapper runs (or its undo file) and its state."""
        if isinstance(operation, migrations.SeparateDatabaseAndState):
            files = [op for op in operation.database_operations if isinstance(op, RunSQLFile)]
            if files:
                parts, is_error = [], False
                for op in files:
                    if not backwards:
                        parts.append(f"Run {op.script}")
                        continue
                    undo, reason = engine.undo_file(op.script)
                    if undo is None:
                        parts.append(f"IRREVERSIBLE: {op.script} {reason}")
                        is_error = True
                    else:
                        parts.append(f"Run {undo.script} (undo of {op.script})")
                states = [state_op.describe() for state_op in operation.state_operations]
                if states:
                    parts.append("state: " + "; ".join(states))
                return " — ".join(parts), is_error
        return DjangoMigrate.describe_operation(operation, backwards)

    def _migrate_plain(self, connection: Any, run: engine.Run, options: dict[str, Any]) -> bool:
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
        self.verbosity, self.interactive = options["verbosity"], options["interactive"]
        for app_config in apps.get_app_configs():  # as Django's migrate: signal receivers
            if module_has_submodule(app_config.module, "management"):
                import_module(".management", app_config.name)
        connection.prepare_database()
        executor = SQLMigrationExecutor(connection, self.migration_progress_callback)
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
        engine.require_roles(connection, run, self._files_to_run(plan, run))
        verbosity, interactive, alias = self.verbosity, self.interactive, connection.alias
        if verbosity >= 1:
            labels = ", ".join(sorted({app_label for app_label, _ in targets})) or "(none)"
            self.stdout.write(self.style.MIGRATE_HEADING("Operations to perform:"))
            self.stdout.write(self.style.MIGRATE_LABEL("  Apply all migrations: ") + labels)
        if not plan:
            emit_pre_migrate_signal(verbosity, interactive, alias, stdout=self.stdout, plan=[])
            if verbosity >= 1:
                self.stdout.write(self.style.MIGRATE_HEADING("Running migrations:"))
                self.stdout.write("  No migrations to apply.")
            emit_post_migrate_signal(verbosity, interactive, alias, stdout=self.stdout, plan=[])
            return True
        state = executor._create_project_state(with_applied_migrations=True)
        before = state.clone()  # not rendered yet: cloning copies model states only
        emit_pre_migrate_signal(
            verbosity,
            interactive,
            alias,
            stdout=self.stdout,
            apps=LazyApps(lambda: before.apps),
            plan=plan,
        )
        if verbosity >= 1:
            self.stdout.write(self.style.MIGRATE_HEADING("Running migrations:"))
        after = executor.migrate(targets, plan=plan, state=defer_rendering(state))
        emit_post_migrate_signal(
            verbosity,
            interactive,
            alias,
            stdout=self.stdout,
            apps=LazyApps(lambda: post_migrate_apps(after)),
            plan=plan,
        )
        return True

    def migration_progress_callback(
        self, action: str, migration: Any = None, fake: bool = False
    ) -> None:
        """Say "Adopting" for a wrapper whose file the history already holds: only Django's
        row is written for it, no SQL runs."""
        run = engine.active_run()
        if action == "apply_start" and not fake and self.verbosity >= 1 and run is not None:
            reason = recorded_only(migration, run)
            if reason:
                self.start = time.monotonic()
                self.stdout.write(
                    f"  Adopting {migration} ({reason}: recorded for Django, no SQL run)...",
                    ending="",
                )
                self.stdout.flush()
                return
        super().migration_progress_callback(action, migration, fake)

    @staticmethod
    def _files_to_run(plan: list[tuple[Any, bool]], run: engine.Run) -> list[Any]:
        """Return the SQL files this forward plan runs, then the repeatables that run after."""
        files = [
            engine.find_file(script)
            for migration, _ in plan
            if isinstance(migration, SQLFileMigration) and recorded_only(migration, run) is None
            for script in migration.sql_scripts
        ]
        return files + [mf for mf, _ in engine.pending_repeatables(run.rows, run.placeholders)]

    def _waiting(self) -> None:
        self.stdout.write("Another migration run holds the lock; waiting for it to finish...")
