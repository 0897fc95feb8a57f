"""`migrate` with the SQL migration engine: owner role, lock, validation, repeatables."""

from __future__ import annotations

import argparse
import time
from typing import Any

from django.core.management.base import CommandError, no_translations
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections, migrations

from sqlmigrations import applying, engine, migrating, rehearse
from sqlmigrations.applying import MigrateResult
from sqlmigrations.django_internals import InconsistentMigrationHistory, IrreversibleError
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.executor import MigrationFailed, locate
from sqlmigrations.lib.lockwait import parse_duration
from sqlmigrations.management.base import DatabaseCommand
from sqlmigrations.operations import RunSQLFile, recorded_only
from sqlmigrations.rollback import undo_reason
from sqlmigrations.session import SessionRequired, refuse_pooler_by_settings
from sqlmigrations.wrappers import one_disk_load


class Command(DatabaseCommand, DjangoMigrate):
    help = (
        "Apply migrations_sql/ files (through their Django wrappers) and Django's own "
        "migrations, validated first, under Flyway's advisory lock."
    )
    files_read = False  # whether execute() read the SQL files for this run
    # Called with (action, migration) around each migration: `--rehearse` measures there.
    progress_hook: Any = None
    mid_line = False  # an "Applying ..." line waits for its " OK"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.result = MigrateResult()

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--wait-for-blockers",
            type=_seconds,
            metavar="N",
            help="keep retrying a file whose lock waits time out until N seconds after its "
            "first try, past SQL_MIGRATIONS['LOCK_RETRIES'] (docs/migrations.md)",
        )
        parser.add_argument(
            "--terminate-blockers-older-than",
            type=_seconds,
            metavar="S",
            help="end the sessions that block a file and have sat idle in a transaction for "
            "S seconds or more (pg_terminate_backend); off by default, owner role only",
        )
        parser.add_argument(
            "--rehearse",
            action="store_true",
            help="apply the pending files to a scratch database restored from a backup and "
            "report each one's time, locks, rewrites and rows; the live database is not "
            'touched (docs/migrations.md, "Rehearse on a copy")',
        )
        copy_from = parser.add_mutually_exclusive_group()
        copy_from.add_argument(
            "--from-backup",
            metavar="NAME",
            help="with --rehearse: the backup to restore (`backup list`), default latest",
        )
        copy_from.add_argument(
            "--from-snapshot",
            metavar="SNAPSHOT",
            help="with --rehearse on RDS: clone this snapshot of RDS_INSTANCE_ID (or `latest`) "
            "into a new instance of the same class instead, deleted afterwards",
        )
        parser.add_argument(
            "--lock-budget",
            type=_duration,
            metavar="DURATION",
            help="with --rehearse: fail when a file holds a lock that stops writes longer "
            "(e.g. 2s, 500ms; 0 is off); default SQL_MIGRATIONS['REHEARSAL_LOCK_BUDGET']",
        )
        parser.add_argument(
            "--json", action="store_true", help="with --rehearse: print the report as JSON"
        )

    def execute(self, *args: Any, **options: Any) -> Any:
        refused = rehearse.refused_options(options)
        if refused:
            raise CommandError(refused, returncode=2)
        # Before the system checks: they read the history through this connection, as the
        # role that migrates, so a file `repair` marked deleted is judged as validate does.
        alias = options["database"] = engine.migration_alias(options["database"])
        # A pooler the settings name is refused before anything connects.
        try:
            refuse_pooler_by_settings(connections[alias])
        except SessionRequired as err:
            raise CommandError(str(err)) from err
        # Connect now: an unreachable database fails before any work, in one line.
        connections[alias].ensure_connection()
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
        # What this run applied, filled as it goes: callers (the deploy handler) read it,
        # also after a failure.
        self.result = MigrateResult()
        if options.get("rehearse"):
            rehearse.rehearse(self, options)
            return
        connection = connections[options["database"]]
        try:
            limits = applying.lock_limits(**options)
        except ValueError as err:
            raise CommandError(f"{err}; fix the setting.", returncode=2) from err
        if limits.terminate_idle_after_s is not None:
            _require_owner(connection)
        try:
            with applying.lock_waits(limits, self._say):
                migrating.migrate(self, options, self.result)
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
            raise CommandError(located + migrating.after_baseline(connection, err)) from err
        except SqlMigrationError as err:
            raise CommandError(str(err)) from err
        except IrreversibleError as err:
            raise CommandError(str(err)) from err

    def _say(self, message: str) -> None:
        """Write a lock-wait line at once: a deploy's log shows why the run waits."""
        if self.mid_line:
            self.stdout.write("")  # end the "Applying ..." line; " OK" comes on its own
            self.mid_line = False
        self.stdout.write(self.style.WARNING(message))
        self.stdout.flush()

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
                    undo, reason = undo_reason(op.script, None)
                    if undo is None or reason:
                        parts.append(f"IRREVERSIBLE: {op.script} {reason}")
                        is_error = True
                    else:
                        parts.append(f"Run {undo.script} (undo of {op.script})")
                states = [state_op.describe() for state_op in operation.state_operations]
                if states:
                    parts.append("state: " + "; ".join(states))
                return " — ".join(parts), is_error
        return DjangoMigrate.describe_operation(operation, backwards)

    def migration_progress_callback(
        self, action: str, migration: Any = None, fake: bool = False
    ) -> None:
        """Say "Adopting" for a wrapper whose file the history already holds: only Django's
        row is written for it, no SQL runs. Count what applied in the run's result."""
        if self.progress_hook is not None:
            self.progress_hook(action, migration)
        if not fake:
            if action == "apply_start":
                self.result.migration_started()
            elif action == "apply_success":
                self.result.migration_applied(migration)
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
        self.mid_line = action in ("apply_start", "unapply_start") and self.verbosity >= 1


def _seconds(raw: str) -> float:
    """argparse type of the lock-wait options: seconds, a number 0 or more."""
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds (e.g. 30)")
    return value


def _duration(raw: str) -> str:
    """argparse type of --lock-budget: a duration as the lock settings take it (5s, 500ms)."""
    try:
        parse_duration(raw, what="--lock-budget")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return raw


def _require_owner(connection: Any) -> None:
    """Refuse --terminate-blockers-older-than unless migrate runs as the database's owner
    (or a superuser): ending other sessions is the owner's call, not any role's."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user::text, pg_get_userbyid(d.datdba)::text, r.rolsuper "
            "FROM pg_database d, pg_roles r "
            "WHERE d.datname = current_database() AND r.rolname = current_user"
        )
        user, owner, superuser = cursor.fetchone()
    if user != owner and not superuser:
        raise CommandError(
            f"--terminate-blockers-older-than needs the database's owner role ({owner}), "
            f"but migrate connects as {user}: set MIGRATION_DATABASE_URL to the owner role "
            "or leave the option out; nothing was applied."
        )
