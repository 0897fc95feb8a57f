"""The migration engine's Django side: settings, the files on disk, one locked run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db.backends.base.base import BaseDatabaseWrapper

from sqlmigrations.lib.committed import is_committed
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.files import MigrationFile, discover
from sqlmigrations.lib.history import HistoryRow, SchemaHistory
from sqlmigrations.lib.lock import advisory_lock, lock_key
from sqlmigrations.lib.placeholders import builtin_placeholders
from sqlmigrations.lib.preflight import MissingRole, missing_roles
from sqlmigrations.lib.validation import (
    Problem,
    applied_repeatables,
    applied_versions,
    misplaced_files,
    validate,
)
from sqlmigrations.lib.versions import Version
from sqlmigrations.session import require_session

DEFAULTS: dict[str, Any] = {
    "LOCATION": None,
    "UNDO_LOCATION": None,  # None: U files beside the V files (Flyway Teams' default)
    "SCHEMA": "public",
    "TABLE": "flyway_schema_history",
    "PLACEHOLDERS": {},
    "CHECK_CONVENTION": True,
    "OUT_OF_ORDER": False,
    # The connection alias that migrates (a role that may run DDL).
    "DATABASE": DEFAULT_DB_ALIAS,
    # Each file's lock waits (lib.lockwait, docs/migrations.md "Lock timeouts and retries").
    "LOCK_TIMEOUT": "5s",
    "LOCK_RETRIES": 5,
    "LOCK_RETRY_BACKOFF": "500ms",  # the first pause; it doubles up to the maximum
    "LOCK_RETRY_BACKOFF_MAX": "10s",
    "STATEMENT_TIMEOUT": "0",  # off
    # migrate prints the guide's and squawk's lint findings on the files it is about to
    # run (squawk when installed), as warnings (docs/migrations.md, "Lint").
    "LINT_AT_MIGRATE": True,
    # `migrate --rehearse` (sqlmigrations.rehearse): the dotted path of a context manager
    # `source(backup_name, say)` that restores a backup into a scratch database, yields
    # {"NAME": ..., "BACKUP": ...} and drops it (None: rehearsals are refused), and the
    # longest a file may hold a lock that stops writes there ("0": no limit).
    "REHEARSAL_SOURCE": None,
    "REHEARSAL_LOCK_BUDGET": "2s",
}


class MissingMigrationFile(SqlMigrationError):
    """A wrapper names a SQL file that is not on disk."""


def option(name: str) -> Any:
    """Read one SQL_MIGRATIONS option at call time, so override_settings works."""
    value = getattr(settings, "SQL_MIGRATIONS", {}).get(name, DEFAULTS[name])
    if name == "LOCATION" and value is None:
        return Path(settings.BASE_DIR) / "migrations_sql"
    if name == "UNDO_LOCATION" and value is not None:
        return Path(value)
    return value


def migration_alias(requested: str = DEFAULT_DB_ALIAS) -> str:
    """Return the alias to migrate with: SQL_MIGRATIONS["DATABASE"] unless another was asked for."""
    return str(option("DATABASE")) if requested == DEFAULT_DB_ALIAS else requested


_files_cache: dict[str, list[MigrationFile]] = {}
_by_script: dict[str, dict[str, MigrationFile]] = {}


def load_files(*, refresh: bool = False) -> list[MigrationFile]:
    """Return the migration files on disk, discovered once per run (or when refreshed)."""
    location = str(option("LOCATION"))
    undo = option("UNDO_LOCATION")
    key = f"{location}\0{undo or ''}"
    if refresh or key not in _files_cache:
        _files_cache[key] = discover(Path(location), undo_directory=undo)
        _by_script[key] = {mf.script: mf for mf in _files_cache[key]}
    return _files_cache[key]


def find_file(script: str) -> MigrationFile:
    # Every wrapper looks its file up when Django loads it: a dict keeps that linear.
    load_files()
    mf = _by_script[f"{option('LOCATION')}\0{option('UNDO_LOCATION') or ''}"].get(script)
    if mf is not None:
        return mf
    raise MissingMigrationFile(
        f"a Django migration wraps {script}, but there is no such file in "
        f"{option('LOCATION')}; restore the file or remove the wrapper",
        path=script,
    )


def undo_file_for(mf: MigrationFile) -> MigrationFile | None:
    """Return the U file with the same version as a V file, if there is one."""
    for candidate in load_files():
        if candidate.kind == "U" and candidate.name.version == mf.name.version:
            return candidate
    return None


def undo_file(script: str) -> tuple[MigrationFile | None, str | None]:
    """Return the undo file of a V file, or None and why it cannot be undone."""
    try:
        mf = find_file(script)
    except SqlMigrationError:
        where = Path(option("LOCATION")).name
        return None, f"is not in {where}/ (restore it from version control)"
    undo = undo_file_for(mf)
    if undo is None:
        folder = Path(option("UNDO_LOCATION") or option("LOCATION")).name
        name = f"U{mf.name.version}__{mf.name.raw_description}.sql"
        return None, f"has no undo file (write {folder}/{name} with the reverse SQL)"
    if mf.config.execute_in_transaction and not undo.config.execute_in_transaction:
        # Django opens the transaction of the V file's mode around the undo, where
        # DROP INDEX CONCURRENTLY and the like fail after the newer undos have committed.
        return None, (
            f"its undo file {undo.script} runs outside a transaction "
            "(executeInTransaction=false) while the V file runs in one, and the undo runs "
            "the way its V file does: make the undo transactional (e.g. DROP INDEX "
            "without CONCURRENTLY)"
        )
    return undo, None


def history_for(cursor: Any) -> SchemaHistory:
    return SchemaHistory(cursor, option("SCHEMA"), option("TABLE"))


@dataclass
class Run:
    """What one migrate run knows, read once under the lock."""

    applied: dict[Version, HistoryRow]
    placeholders: dict[str, str | None]
    rows: list[HistoryRow] = field(default_factory=list)

    def render(self, mf: MigrationFile) -> str:
        return mf.render(self.placeholders)


_current_run: ContextVar[Run | None] = ContextVar("sqlmigrations_run", default=None)


def placeholders_for(cursor: Any) -> dict[str, str | None]:
    cursor.execute("SELECT current_user, current_database()")
    user, database = cursor.fetchone()
    values: dict[str, str | None] = dict(
        builtin_placeholders(
            schema=option("SCHEMA"),
            user=user,
            database=database,
            table=option("TABLE"),
            filename="",
            environment=getattr(settings, "DJANGO_ENV", "default"),
        )
    )
    values.update(option("PLACEHOLDERS"))
    return values


def offline_placeholders() -> dict[str, str | None]:
    """Return placeholder values for linting without a database (user and database "lint")."""
    values: dict[str, str | None] = dict(
        builtin_placeholders(
            schema=option("SCHEMA"),
            user="lint",
            database="lint",
            table=option("TABLE"),
            filename="",
        )
    )
    values.update(option("PLACEHOLDERS"))
    return values


def snapshot(cursor: Any) -> Run:
    """Read the history and placeholder values (the table may not exist yet)."""
    rows = history_for(cursor).rows()
    return Run(applied=applied_versions(rows), placeholders=placeholders_for(cursor), rows=rows)


def active_run() -> Run | None:
    """Return the snapshot of the `migrate` run in progress, if any."""
    return _current_run.get()


def current_run(connection: BaseDatabaseWrapper) -> Run:
    """Return the locked run's snapshot, or a fresh one outside `migrate` (e.g. tests)."""
    run = _current_run.get()
    if run is not None:
        return run
    with connection.cursor() as cursor:
        history_for(cursor).ensure_table()
        return snapshot(cursor)


def validate_database(connection: BaseDatabaseWrapper, rows: list[HistoryRow]) -> list[Problem]:
    return file_problems(load_files(), rows)


@dataclass
class Validation:
    """The history as read and every problem of the files against it."""

    rows: list[HistoryRow]
    problems: list[Problem]


def read_and_validate(
    connection: BaseDatabaseWrapper, files: list[MigrationFile] | None = None
) -> Validation:
    """Read the history, then validate the files (read afresh unless given); change nothing."""
    files = load_files(refresh=True) if files is None else files
    with connection.cursor() as cursor:
        rows = history_for(cursor).rows()
    return Validation(rows, file_problems(files, rows))


def file_problems(files: list[MigrationFile], rows: list[HistoryRow]) -> list[Problem]:
    """Return every problem of the files against the history: what `validate`, `migrate`
    and the admin report (the system check shares the names and gaps part)."""
    location = Path(option("LOCATION"))
    return layout_problems(files) + validate(
        files,
        rows,
        check_convention=option("CHECK_CONVENTION"),
        out_of_order=option("OUT_OF_ORDER"),
        committed=lambda script: is_committed(location / script),
    )


def layout_problems(files: list[MigrationFile]) -> list[Problem]:
    """Report files in the wrong one of the two locations (see misplaced_files)."""
    return misplaced_files(files, option("LOCATION"), option("UNDO_LOCATION"))


@contextmanager
def migration_lock(
    connection: BaseDatabaseWrapper, *, on_wait: Callable[[], None] | None = None
) -> Iterator[tuple[Any, SchemaHistory]]:
    """Hold Flyway's advisory lock on the history table; yield the cursor and the history.

    Refused (SessionRequired) on a connection through a transaction pooler.
    """
    require_session(connection)
    with connection.cursor() as cursor:
        history = history_for(cursor)
        with advisory_lock(cursor, lock_key(history.quoted_name), on_wait=on_wait):
            yield cursor, history


@contextmanager
def locked_run(
    connection: BaseDatabaseWrapper,
    *,
    on_wait: Callable[[], None] | None = None,
    refresh: bool = True,
) -> Iterator[Run]:
    """Hold Flyway's advisory lock, make sure the history exists, and snapshot it.

    The files are read first unless `refresh` is False: the caller read them already.
    """
    if refresh:
        load_files(refresh=True)
    with migration_lock(connection, on_wait=on_wait) as (cursor, history):
        if not history.has_table():
            with _atomic(connection):
                history.ensure_table()
        run = snapshot(cursor)
        token = _current_run.set(run)
        try:
            yield run
        finally:
            _current_run.reset(token)


@contextmanager
def _atomic(connection: BaseDatabaseWrapper) -> Iterator[None]:
    from django.db import transaction

    with transaction.atomic(using=connection.alias):
        yield


def pending_repeatables(
    rows: list[HistoryRow], values: dict[str, str | None]
) -> list[tuple[MigrationFile, int]]:
    """Return each R file that is new or changed since it last ran, with its checksum."""
    latest = applied_repeatables(rows)
    pending = []
    for mf in load_files():
        if mf.kind != "R":
            continue
        checksum = mf.effective_checksum(values)
        row = latest.get(mf.name.description)
        if row is None or row.checksum != checksum:
            pending.append((mf, checksum))
    return pending


def require_roles(connection: BaseDatabaseWrapper, run: Run, files: list[MigrationFile]) -> None:
    """Refuse, before anything runs, when the files about to run name a missing role."""
    with connection.cursor() as cursor:
        missing = missing_roles(cursor, [(mf, run.render(mf)) for mf in files], run.placeholders)
    if not missing:
        return
    app_user = settings.DATABASES.get("default", {}).get("USER")
    lines = []
    for ref in missing:
        through = (
            f" through the placeholder {ref.placeholder} (SQL_MIGRATIONS['PLACEHOLDERS'])"
            if ref.placeholder
            else ""
        )
        lines.append(f'{ref.script}, line {ref.line}: role "{ref.role}"{through}')
    fix = (
        "create the roles first: `manage.py dbroles provision` creates the application role "
        "(DATABASE_URL's user) and its privileges, as the owner or with `--url` of an admin"
    )
    if any(ref.role != app_user for ref in missing):
        fix += (
            "; a role that is not the application role needs `CREATE ROLE` by an admin, or "
            "a placeholder value that names an existing role"
        )
    one = len(missing) == 1
    raise MissingRole(
        f"{len(missing)} role{'' if one else 's'} named by pending migrations "
        f"{'does' if one else 'do'} not exist in this cluster, so nothing was applied:\n"
        + "\n".join(f"  - {line}" for line in lines)
        + f"\n{fix}.",
        path=missing[0].script,
        line=missing[0].line,
    )
