"""Apply one migration file and record it in the history (D3).

`apply_file` is the one place that decides how a file runs: in a transaction or not (its
script config), its history row, its timing and its error, which names the line. Both
ways `migrate` applies a wrapper (Django's executor and the one-round-trip path), the
repeatables and the undo files come through here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlmigrations.lib.exceptions import SqlMigrationError, line_at
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.history import TYPE_BASELINE, TYPE_SQL, HistoryRow, SchemaHistory
from sqlmigrations.lib.invalid_indexes import require_no_invalid_index
from sqlmigrations.lib.lockwait import GaveUp, LockGuard, is_concurrent, with_retries
from sqlmigrations.lib.statements import split_statements
from sqlmigrations.lib.validation import applied_versions
from sqlmigrations.lib.versions import Version

# applied: the file ran; adopted: the history already held it (the Flyway CLI ran it);
# baselined: a baseline row stands in for it; undone: its undo file ran.
Outcome = Literal["applied", "adopted", "baselined", "undone"]


@dataclass(frozen=True)
class Applied:
    """What applying one file did, and how long it took."""

    script: str
    version: str | None
    outcome: Outcome
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "script": self.script,
            "version": self.version,
            "outcome": self.outcome,
            "ms": round(self.seconds * 1000),
        }


class MigrationFailed(SqlMigrationError):
    """A migration file's SQL failed on the server."""

    # What the caller needs to locate the failing statement after the rollback.
    mf: MigrationFile
    sql: str
    error: BaseException
    transactional: bool
    elapsed: float = 0.0
    undo: bool = False
    gave_up: GaveUp | None = None  # the tries ran out on lock timeouts


class ChecksumMismatch(SqlMigrationError):
    """The history holds this version with another checksum."""


def _diag(error: BaseException) -> Any:
    """psycopg's diagnostics, also through Django's wrapper exceptions (which chain them)."""
    while error is not None:
        diag = getattr(error, "diag", None)
        if diag is not None:
            return diag
        error = error.__cause__  # type: ignore[assignment]
    return None


def _error_line(sql: str, error: BaseException, lead: int = 0) -> int | None:
    # PostgreSQL reports the position of parse and many semantic errors as a 1-based
    # character offset into the whole query string; the file went over in one piece,
    # after `lead` characters that set its timeouts.
    position = getattr(_diag(error), "statement_position", None)
    if not position or int(position) <= lead:
        return None
    return sql[: int(position) - lead - 1].count("\n") + 1


def failure(
    mf: MigrationFile,
    sql: str,
    error: BaseException,
    transactional: bool,
    *,
    line: int | None = None,
    elapsed: float = 0.0,
    undo: bool = False,
    lead: int = 0,
    gave_up: GaveUp | None = None,
) -> MigrationFailed:
    """Describe a failed file: where, PostgreSQL's message, and what state it left."""
    diag = _diag(error)
    primary = getattr(diag, "message_primary", None) or str(error).strip().splitlines()[0]
    severity = getattr(diag, "severity", None) or "ERROR"
    line = line or _error_line(sql, error, lead)
    extra = "".join(
        f"\n  {label}: {value}"
        for label, value in (
            ("DETAIL", getattr(diag, "message_detail", None)),
            ("HINT", getattr(diag, "message_hint", None)),
            ("SQLSTATE", getattr(diag, "sqlstate", None)),
        )
        if value
    )
    if undo and transactional and gave_up is not None:
        outcome = (
            "Nothing of the undo file was applied: each try was rolled back, so no lock is "
            "held, and its migration stays applied in both histories. Migrations undone "
            "before it in this run stay undone (each is its own transaction)."
        )
    elif undo:
        outcome = (
            "The undo file was rolled back entirely; its migration stays applied in both "
            "histories: fix the undo file and run migrate again."
            if transactional
            else "The undo file ran outside a transaction (executeInTransaction=false), so "
            "statements before the failure stay applied while its migration stays recorded "
            "as applied: finish or revert what ran, then run migrate again."
        )
    elif transactional and gave_up is not None:
        outcome = (
            "Nothing of the file was applied and nothing was recorded for it: each try was "
            "rolled back, so no lock is held. Files applied before it in this run stay "
            "applied (each file is its own transaction)."
        )
    elif transactional:
        outcome = (
            "The file was rolled back entirely and nothing was recorded for it; fix it "
            "and run migrate again."
        )
    else:
        outcome = (
            "The file ran outside a transaction (executeInTransaction=false), so statements "
            "before the failure stay applied; a failed row was recorded: clean up, then run "
            "`manage.py sqlmigrations repair` and migrate again."
        )
    if gave_up is not None:
        outcome = (
            f"{gave_up.describe()}\n{outcome}\nEnd or wait for the blocking sessions, then "
            "run migrate again: `--wait-for-blockers N` keeps trying for N seconds, "
            "`--terminate-blockers-older-than S` ends blockers idle in a transaction for S "
            'seconds (docs/migrations.md, "Lock timeouts and retries").'
        )
    where = f", line {line}" if line else ""
    failed = MigrationFailed(
        f"migration failed{where}: {severity}: {primary}{extra}\n{outcome}",
        path=mf.script,
        line=line,
    )
    failed.mf, failed.sql, failed.error = mf, sql, error
    failed.transactional, failed.elapsed, failed.undo = transactional, elapsed, undo
    failed.gave_up = gave_up
    return failed


def locate(connection: Any, failed: MigrationFailed) -> MigrationFailed:
    """Find the line of the statement that failed, by replaying a rolled-back file.

    Call this after the file's transaction was rolled back, with a raw psycopg connection
    in autocommit mode. Only transactional files are replayed (a non-transactional one
    may have left changes behind), inside one transaction that is always rolled back and
    with a statement timeout of twice the failed run, so the replay cannot hang a deploy.
    Returns `failed` unchanged if it already has a line or the replay cannot tell.
    """
    if failed.line or not failed.transactional or failed.gave_up is not None:
        return failed  # a replay of a lock timeout would only wait for the lock again
    statements = split_statements(failed.sql)
    sqlstate = getattr(_diag(failed.error), "sqlstate", None)
    if not statements or sqlstate is None:
        return failed
    line = None
    if len(statements) == 1:
        line = line_at(failed.sql, statements[0][0])
    else:
        budget_ms = max(1000, int(failed.elapsed * 2000))
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            try:
                cursor.execute(f"SET LOCAL statement_timeout = {budget_ms}")
                for offset, text in statements:
                    try:
                        cursor.execute(text)
                    except Exception as error:  # noqa: BLE001 - any failure ends the replay
                        if getattr(_diag(error), "sqlstate", None) == sqlstate:
                            line = line_at(failed.sql, offset)
                        break
            finally:
                cursor.execute("ROLLBACK")
    if line is None:
        return failed
    return failure(
        failed.mf,
        failed.sql,
        failed.error,
        failed.transactional,
        line=line,
        elapsed=failed.elapsed,
        undo=failed.undo,
    )


def find_applied(history: SchemaHistory, mf: MigrationFile) -> HistoryRow | None:
    """Return the successful history row for this file's version, if any."""
    assert mf.name.version is not None
    return applied_versions(history.rows()).get(mf.name.version)


def apply_file(
    cursor: Any,
    history: SchemaHistory,
    mf: MigrationFile,
    sql: str,
    *,
    existing: HistoryRow | None = None,
    baseline: Version | None = None,
    checksum: int | None = None,
    also: str = "",
    guard: LockGuard | None = None,
) -> Applied:
    """Run a V or R file and record it; adopt a V file the history already holds.

    `existing` is the history's successful row for a V file's version, read under the
    lock; `baseline` the version of the baseline row, if any: a file at or below it only
    records. `checksum` is an R file's effective checksum (placeholders replaced). `also`
    is SQL to run once the file is recorded or adopted (Django's own record of its
    wrapper): for a transactional file it goes in the same query string, so on a
    connection in autocommit mode the file, both rows and the commit cost one round trip.
    `guard` bounds the file's lock waits and retries it (lib.lockwait); None: no bound.
    """
    started = time.perf_counter()
    version = str(mf.name.version) if mf.name.version is not None else None
    if mf.kind == "V":
        if below_baseline(mf, existing, baseline):
            # `sqlmigrations baseline` says the schema already has it: record only.
            if also:
                cursor.execute(also)
            return Applied(mf.script, version, "baselined", time.perf_counter() - started)
        if existing is not None:
            if existing.checksum != mf.checksum:
                raise ChecksumMismatch(
                    f"version {existing.version} is already in the history with checksum "
                    f"{existing.checksum}, but the file's checksum is {mf.checksum}: the file "
                    "differs from what ran; restore the applied file or run "
                    "`manage.py sqlmigrations repair` if the edit is intentional",
                    path=mf.script,
                )
            if also:
                cursor.execute(also)
            return Applied(mf.script, version, "adopted", time.perf_counter() - started)
    row = _row(mf, mf.checksum if checksum is None else checksum)
    if mf.config.execute_in_transaction:
        # The file and its history row go over in one round trip; the row comes after the
        # file, so PostgreSQL's error positions still point into the file. Outside a
        # transaction the server runs a multi-statement string as one implicit transaction.
        insert = history.insert_after(**row, success=True)
        body = f"{sql}\n;\n{insert};\n{also}" if also else f"{sql}\n;\n{insert}"
        _run_transactional(cursor, mf, sql, body, started, guard=guard)
        return Applied(mf.script, version, "applied", time.perf_counter() - started)
    # Only a build outside a transaction (CONCURRENTLY) can leave an invalid index behind;
    # a transactional file's failure rolls its index back.
    require_no_invalid_index(cursor, mf, sql)

    def failed_row() -> None:
        _record(history, row, started, success=False)

    _run_statements(
        cursor,
        mf,
        sql,
        started,
        on_failure=failed_row,
        guard=guard.for_file(mf.config) if guard is not None else None,
    )
    _record(history, row, started, success=True)
    if also:
        cursor.execute(also)
    return Applied(mf.script, version, "applied", time.perf_counter() - started)


def below_baseline(
    mf: MigrationFile, existing: HistoryRow | None, baseline: Version | None
) -> bool:
    """Tell whether a baseline row at or above this file's version stands in for it."""
    version = mf.name.version
    if version is None or baseline is None or version > baseline:
        return False
    return existing is None or existing.type == TYPE_BASELINE


def _run_statements(
    cursor: Any,
    mf: MigrationFile,
    sql: str,
    started: float,
    *,
    on_failure: Callable[[], None] | None = None,
    undo: bool = False,
    guard: LockGuard | None = None,
) -> None:
    """Send a non-transactional file statement by statement, as Flyway does.

    PostgreSQL runs a multi-statement query string as one implicit transaction, where
    CREATE INDEX CONCURRENTLY, VACUUM or ALTER TYPE ... ADD VALUE would fail; sending them
    one by one also names the line. With a `guard`, each statement waits for a lock at
    most lock_timeout and is tried again on a timeout (it ran in autocommit: nothing of it
    is held), except one that builds or drops an index CONCURRENTLY (lib.lockwait).
    """
    saved = _set_session_timeouts(cursor, guard) if guard is not None else None
    try:
        for offset, statement in split_statements(sql):
            line = line_at(sql, offset)
            try:
                if guard is None:
                    cursor.execute(statement)
                elif is_concurrent(statement):
                    _concurrently(cursor, guard, statement, mf.config.statement_timeout_ms or 0)
                else:
                    with_retries(
                        guard, f"{mf.script}, line {line}", lambda s=statement: cursor.execute(s)
                    )
            except GaveUp as gave_up:
                if on_failure is not None:
                    on_failure()
                elapsed = time.perf_counter() - started
                raise failure(
                    mf,
                    sql,
                    gave_up.error,
                    False,
                    line=line,
                    elapsed=elapsed,
                    undo=undo,
                    gave_up=gave_up,
                ) from gave_up.error
            except Exception as error:
                if on_failure is not None:
                    on_failure()
                elapsed = time.perf_counter() - started
                raise failure(
                    mf, sql, error, False, line=line, elapsed=elapsed, undo=undo
                ) from error
    finally:
        if saved is not None:
            _restore_session_timeouts(cursor, saved)


def _run_transactional(
    cursor: Any,
    mf: MigrationFile,
    sql: str,
    body: str,
    started: float,
    *,
    guard: LockGuard | None,
    undo: bool = False,
) -> None:
    """Send a transactional file's `body` (its SQL and history changes) as one query
    string; with a `guard`, after a line that bounds its waits, and again on a lock
    timeout. `sql` is the file's text, which the error's line points into."""
    lead = ""
    try:
        if guard is None:
            cursor.execute(body)
        else:
            bound = guard.for_file(mf.config)
            lead = _local_timeouts(bound)
            query = lead + body
            with_retries(bound, mf.script, lambda: _try_transactional(cursor, bound, query))
    except GaveUp as gave_up:
        elapsed = time.perf_counter() - started
        raise failure(
            mf, sql, gave_up.error, True, elapsed=elapsed, undo=undo, gave_up=gave_up
        ) from gave_up.error
    except Exception as error:
        elapsed = time.perf_counter() - started
        raise failure(mf, sql, error, True, elapsed=elapsed, undo=undo, lead=len(lead)) from error


def _local_timeouts(guard: LockGuard) -> str:
    """Return the first line of a transactional file's query string: its timeouts, for its
    transaction only (set_config(..., true) is SET LOCAL, also in an implicit transaction)."""
    limits = guard.limits
    return (
        f"SELECT set_config('lock_timeout', '{int(limits.lock_timeout_ms)}ms', true), "
        f"set_config('statement_timeout', '{int(limits.statement_timeout_ms)}ms', true);\n"
    )


_SAVEPOINT = "sqlmigrations_lock_wait"


def _try_transactional(cursor: Any, guard: LockGuard, query: str) -> None:
    """One try of a transactional file. In autocommit the server runs the query string as
    one implicit transaction, which a failure rolls back with its locks. Inside the
    caller's transaction a savepoint does that: ROLLBACK TO SAVEPOINT releases the locks
    taken after it (tests/sqlmigrations/test_lock_timeout.py checks it)."""
    if not guard.in_transaction:
        cursor.execute(query)
        return
    cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        cursor.execute(query)
    except Exception:
        cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        raise
    cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")


def _set_session_timeouts(cursor: Any, guard: LockGuard) -> tuple[str, str]:
    """Set the file's timeouts for the session; return the values to restore after it."""
    limits = guard.limits
    cursor.execute(
        "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'), "
        "set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
        [f"{limits.lock_timeout_ms}ms", f"{limits.statement_timeout_ms}ms"],
    )
    lock_timeout, statement_timeout, _, _ = cursor.fetchone()
    return lock_timeout, statement_timeout


def _restore_session_timeouts(cursor: Any, saved: tuple[str, str]) -> None:
    # After a failure the connection may be gone: the failure is what to report then.
    with contextlib.suppress(Exception):
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, false), "
            "set_config('statement_timeout', %s, false)",
            list(saved),
        )


def _concurrently(cursor: Any, guard: LockGuard, statement: str, statement_timeout: int) -> None:
    """Run a CONCURRENTLY statement once, without lock_timeout and with the statement
    timeout only of its file's directive: its lock blocks neither reads nor writes, and
    a build cut short would leave an invalid index that a retry cannot repair."""
    cursor.execute(
        "SELECT set_config('lock_timeout', '0', false), set_config('statement_timeout', %s, false)",
        [f"{statement_timeout}ms"],
    )
    try:
        cursor.execute(statement)
    finally:
        limits = guard.limits
        _restore_session_timeouts(
            cursor, (f"{limits.lock_timeout_ms}ms", f"{limits.statement_timeout_ms}ms")
        )


def _record(history: SchemaHistory, row: dict[str, Any], started: float, *, success: bool) -> None:
    history.insert(
        **row, execution_time=int((time.perf_counter() - started) * 1000), success=success
    )


def _row(mf: MigrationFile, checksum: int) -> dict[str, Any]:
    """Return the history columns that describe a file."""
    return {
        "version": str(mf.name.version) if mf.name.version is not None else None,
        "description": mf.name.description,
        "type": TYPE_SQL,
        "script": mf.script,
        "checksum": checksum,
    }


def undo_file(
    cursor: Any,
    history: SchemaHistory,
    v_file: MigrationFile,
    u_file: MigrationFile,
    sql: str,
    also: str = "",
    guard: LockGuard | None = None,
) -> Applied:
    """Run the U file of an applied V file and remove the V file's history row.

    `also` is SQL to run with the removal (Django's record of the wrapper). For a
    transactional U file the file, the removal and `also` are one query string, which the
    server runs as one transaction outside an explicit one; otherwise the file goes
    statement by statement and the two removals together after it. Either way a kill
    leaves both histories saying the same thing. `guard` bounds its lock waits, as for
    apply_file.
    """
    started = time.perf_counter()
    row = find_applied(history, v_file)
    forget = ";\n".join(q for q in (history.delete_sql(row) if row else "", also) if q)
    if u_file.config.execute_in_transaction:
        body = f"{sql}\n;\n{forget}" if forget else sql
        _run_transactional(cursor, u_file, sql, body, started, guard=guard, undo=True)
    else:
        bound = guard.for_file(u_file.config) if guard is not None else None
        _run_statements(cursor, u_file, sql, started, undo=True, guard=bound)
        if forget:
            cursor.execute(forget)
    version = str(v_file.name.version) if v_file.name.version is not None else None
    return Applied(v_file.script, version, "undone", time.perf_counter() - started)
