"""Apply one file on a Django connection, and collect what a `migrate` run applied.

Django's executor and the one-round-trip path (sqlmigrations.executor) both run a
wrapper's file through `apply_file`, the repeatables run through `apply_repeatables`, so
how a file is applied (lib.executor.apply_file) and what the run reports are decided once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from django.db.backends.base.base import BaseDatabaseWrapper

from sqlmigrations import engine
from sqlmigrations.django_internals import in_atomic_block
from sqlmigrations.lib import executor
from sqlmigrations.lib.executor import Applied
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.lockwait import LockGuard, LockLimits, parse_count, parse_duration
from sqlmigrations.lib.validation import baseline_version


@dataclass
class MigrateResult:
    """What one `migrate` run applied, in order; complete up to a failure."""

    files: list[Applied] = field(default_factory=list)
    repeatables: list[Applied] = field(default_factory=list)
    django_migrations: list[str] = field(default_factory=list)
    # Files of the wrapper being applied: they count once Django reports it applied,
    # because a wrapper's transaction may still roll back after its file ran.
    _running: list[Applied] = field(default_factory=list, repr=False)

    @property
    def nothing_to_do(self) -> bool:
        return not (self.files or self.repeatables or self.django_migrations)

    @property
    def scripts(self) -> list[str]:
        """Return the scripts applied: the wrappers' files, then the repeatables."""
        return [a.script for a in self.files] + [a.script for a in self.repeatables]

    def file_applied(self, applied: Applied) -> None:
        """Note a wrapper's file as applied, pending its wrapper's commit."""
        self._running.append(applied)

    def migration_started(self) -> None:
        """Forget files of a wrapper that did not finish (its transaction rolled back)."""
        self._running = []

    def migration_applied(self, migration: Any) -> None:
        """Count a migration Django reports applied: a wrapper's files, or Django's own."""
        if getattr(migration, "sql_scripts", None):
            self.files += self._running
        else:
            self.django_migrations.append(f"{migration.app_label}.{migration.name}")
        self._running = []

    def as_json(self) -> dict[str, Any]:
        return {
            "files": [a.as_json() for a in self.files],
            "repeatables": [a.as_json() for a in self.repeatables],
            "django_migrations": list(self.django_migrations),
            "nothing_to_do": self.nothing_to_do,
        }


_collecting: ContextVar[MigrateResult | None] = ContextVar("sqlmigrations_result", default=None)


@contextmanager
def collecting(result: MigrateResult) -> Iterator[MigrateResult]:
    """Add every file applied in this block to `result`."""
    token = _collecting.set(result)
    try:
        yield result
    finally:
        _collecting.reset(token)


def active_result() -> MigrateResult | None:
    """Return the result of the `migrate` run in progress, if any."""
    return _collecting.get()


def lock_limits(**options: Any) -> LockLimits:
    """Read the lock-wait settings (SQL_MIGRATIONS) and `migrate`'s options into limits.

    Raises ValueError naming the setting when a value is not a duration or a count.
    """

    def duration(name: str) -> int:
        return parse_duration(str(engine.option(name)), what=f"SQL_MIGRATIONS['{name}']")

    return LockLimits(
        lock_timeout_ms=duration("LOCK_TIMEOUT"),
        statement_timeout_ms=duration("STATEMENT_TIMEOUT"),
        retries=parse_count(
            str(engine.option("LOCK_RETRIES")), what="SQL_MIGRATIONS['LOCK_RETRIES']"
        ),
        backoff_ms=duration("LOCK_RETRY_BACKOFF"),
        backoff_max_ms=duration("LOCK_RETRY_BACKOFF_MAX"),
        wait_for_blockers_s=options.get("wait_for_blockers"),
        terminate_idle_after_s=options.get("terminate_blockers_older_than"),
    )


@dataclass(frozen=True)
class LockWaits:
    """The lock limits of a `migrate` run and where it says that a try timed out."""

    limits: LockLimits
    say: Callable[[str], None]


_lock_waits: ContextVar[LockWaits | None] = ContextVar("sqlmigrations_locks", default=None)


@contextmanager
def lock_waits(limits: LockLimits, say: Callable[[str], None]) -> Iterator[None]:
    """Apply every file in this block with these limits, saying each timed-out try."""
    token = _lock_waits.set(LockWaits(limits, say))
    try:
        yield
    finally:
        _lock_waits.reset(token)


def lock_guard(connection: BaseDatabaseWrapper) -> LockGuard:
    """Return the guard a file applied on this connection runs under (lib.lockwait).

    Outside `migrate` (tests, the admin) the settings' limits apply and tries are logged.
    The watcher connects as this connection does (the migrating role), only when a try
    has waited a moment.
    """
    waits = _lock_waits.get()
    guard = LockGuard(lock_limits()) if waits is None else LockGuard(waits.limits, say=waits.say)
    connection.ensure_connection()
    raw = connection.connection
    pid = getattr(getattr(raw, "info", None), "backend_pid", None)

    def connect() -> psycopg.Connection[Any]:
        # Through the backend, as the migrating connection logs in (a secret's password is
        # put in at connect time), but never from a pool: this connection is closed after.
        settings = dict(connection.settings_dict)
        settings["OPTIONS"] = {k: v for k, v in settings["OPTIONS"].items() if k != "pool"}
        backend = type(connection)(settings, connection.alias)
        params = backend.get_connection_params()
        params["application_name"] = "sqlmigrations lock watcher"
        raw = backend.get_new_connection(params)
        raw.autocommit = True
        return raw  # type: ignore[no-any-return]

    in_transaction = not connection.get_autocommit() or in_atomic_block(connection)
    return replace(guard, pid=pid, connect=connect, in_transaction=in_transaction)


def apply_file(connection: BaseDatabaseWrapper, mf: MigrationFile, *, also: str = "") -> Applied:
    """Apply a wrapper's V file with the run's snapshot, then run `also` (see
    lib.executor.apply_file); a file below the baseline or already run by Flyway only
    records."""
    run = engine.current_run(connection)
    with connection.cursor() as cursor:
        applied = executor.apply_file(
            cursor,
            engine.history_for(cursor),
            mf,
            run.render(mf),
            existing=run.applied.get(mf.name.version),  # type: ignore[arg-type]
            baseline=baseline_version(run.rows),
            also=also,
            guard=lock_guard(connection),
        )
    result = _collecting.get()
    if result is not None:
        result.file_applied(applied)
    return applied


def apply_repeatables(connection: BaseDatabaseWrapper) -> list[Applied]:
    """Apply each R file that is new or changed since it last ran, one transaction each."""
    result = _collecting.get()
    done: list[Applied] = []
    guard = lock_guard(connection)
    with connection.cursor() as cursor:
        history = engine.history_for(cursor)
        values = engine.placeholders_for(cursor)
        for mf, checksum in engine.pending_repeatables(history.rows(), values):
            applied = executor.apply_file(
                cursor, history, mf, mf.render(values), checksum=checksum, guard=guard
            )
            done.append(applied)
            if result is not None:
                result.repeatables.append(applied)
    return done


def undo_file(
    connection: BaseDatabaseWrapper, v_file: MigrationFile, u_file: MigrationFile, also: str = ""
) -> Applied:
    """Run a V file's undo file and remove its history row, then run `also` (Django's
    record of the wrapper), all committed together (see lib.executor.undo_file)."""
    text = engine.current_run(connection).render(u_file)
    with connection.cursor() as cursor:
        return executor.undo_file(
            cursor,
            engine.history_for(cursor),
            v_file,
            u_file,
            text,
            also,
            guard=lock_guard(connection),
        )
