"""Apply one migration file and record it in the history (D3)."""

from __future__ import annotations

import time
from typing import Any, Literal

from sqlmigrations.lib.exceptions import SqlMigrationError, line_at
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.history import TYPE_SQL, HistoryRow, SchemaHistory
from sqlmigrations.lib.statements import split_statements
from sqlmigrations.lib.validation import applied_versions

Outcome = Literal["applied", "adopted"]


class MigrationFailed(SqlMigrationError):
    """A migration file's SQL failed on the server."""

    # What the caller needs to locate the failing statement after the rollback.
    mf: MigrationFile
    sql: str
    error: BaseException
    transactional: bool
    elapsed: float = 0.0
    undo: bool = False


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


def _error_line(sql: str, error: BaseException) -> int | None:
    # PostgreSQL reports the position of parse and many semantic errors as a 1-based
    # character offset into the whole query string; the file went over in one piece.
    position = getattr(_diag(error), "statement_position", None)
    if not position:
        return None
    return sql[: int(position) - 1].count("\n") + 1


def failure(
    mf: MigrationFile,
    sql: str,
    error: BaseException,
    transactional: bool,
    *,
    line: int | None = None,
    elapsed: float = 0.0,
    undo: bool = False,
) -> MigrationFailed:
    """Describe a failed file: where, PostgreSQL's message, and what state it left."""
    diag = _diag(error)
    primary = getattr(diag, "message_primary", None) or str(error).strip().splitlines()[0]
    severity = getattr(diag, "severity", None) or "ERROR"
    line = line or _error_line(sql, error)
    extra = "".join(
        f"\n  {label}: {value}"
        for label, value in (
            ("DETAIL", getattr(diag, "message_detail", None)),
            ("HINT", getattr(diag, "message_hint", None)),
            ("SQLSTATE", getattr(diag, "sqlstate", None)),
        )
        if value
    )
    if undo:
        outcome = (
            "The undo file was rolled back entirely; its migration stays applied in both "
            "histories: fix the undo file and run migrate again."
            if transactional
            else "The undo file ran outside a transaction (executeInTransaction=false), so "
            "statements before the failure stay applied while its migration stays recorded "
            "as applied: finish or revert what ran, then run migrate again."
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
    where = f", line {line}" if line else ""
    failed = MigrationFailed(
        f"migration failed{where}: {severity}: {primary}{extra}\n{outcome}",
        path=mf.script,
        line=line,
    )
    failed.mf, failed.sql, failed.error = mf, sql, error
    failed.transactional, failed.elapsed, failed.undo = transactional, elapsed, undo
    return failed


def locate(connection: Any, failed: MigrationFailed) -> MigrationFailed:
    """Find the line of the statement that failed, by replaying a rolled-back file.

    Call this after the file's transaction was rolled back, with a raw psycopg connection
    in autocommit mode. Only transactional files are replayed (a non-transactional one
    may have left changes behind), inside one transaction that is always rolled back and
    with a statement timeout of twice the failed run, so the replay cannot hang a deploy.
    Returns `failed` unchanged if it already has a line or the replay cannot tell.
    """
    if failed.line or not failed.transactional:
        return failed
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


def apply_versioned(
    cursor: Any,
    history: SchemaHistory,
    mf: MigrationFile,
    sql: str,
    *,
    transactional: bool,
    existing: HistoryRow | None,
    also: str = "",
) -> Outcome:
    """Run a V file in one execute() and record it; adopt it if Flyway already ran it.

    `existing` is the history's successful row for this version, read under the lock.
    `also` is SQL to run once the file is recorded or adopted (Django's own record of its
    wrapper): for a transactional file it goes in the same query string, so on a
    connection in autocommit mode the file, both rows and the commit cost one round trip.
    """
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
        return "adopted"
    started = time.perf_counter()
    if transactional:
        # The file and its history row go over in one round trip; the row comes after the
        # file, so PostgreSQL's error positions still point into the file. Outside a
        # transaction the server runs a multi-statement string as one implicit transaction.
        row = history.insert_after(**_row(mf, mf.checksum), success=True)
        try:
            cursor.execute(f"{sql}\n;\n{row};\n{also}" if also else f"{sql}\n;\n{row}")
        except Exception as error:
            elapsed = time.perf_counter() - started
            raise failure(mf, sql, error, transactional, elapsed=elapsed) from error
        return "applied"
    # A non-transactional file is sent statement by statement, as Flyway does: PostgreSQL
    # runs a multi-statement query string as one implicit transaction, where CREATE INDEX
    # CONCURRENTLY, VACUUM or ALTER TYPE ... ADD VALUE would fail; sending them one by one
    # also names the line.
    for offset, statement in split_statements(sql):
        try:
            cursor.execute(statement)
        except Exception as error:
            _record(history, mf, started, success=False)
            elapsed = time.perf_counter() - started
            line = line_at(sql, offset)
            raise failure(mf, sql, error, transactional, line=line, elapsed=elapsed) from error
    _record(history, mf, started, success=True)
    if also:
        cursor.execute(also)
    return "applied"


def apply_repeatable(
    cursor: Any, history: SchemaHistory, mf: MigrationFile, sql: str, checksum: int
) -> None:
    """Run an R file and record it with its effective checksum."""
    started = time.perf_counter()
    try:
        cursor.execute(sql)
    except Exception as error:
        raise failure(mf, sql, error, transactional=True) from error
    _record(history, mf, started, success=True, checksum=checksum)


def _record(
    history: SchemaHistory,
    mf: MigrationFile,
    started: float,
    *,
    success: bool,
    checksum: int | None = None,
) -> None:
    history.insert(
        **_row(mf, mf.checksum if checksum is None else checksum),
        execution_time=int((time.perf_counter() - started) * 1000),
        success=success,
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


def undo_versioned(
    cursor: Any,
    history: SchemaHistory,
    v_file: MigrationFile,
    u_file: MigrationFile,
    sql: str,
    also: str = "",
) -> None:
    """Run the U file of an applied V file and remove the V file's history row.

    `also` is SQL to run with the removal (Django's record of the wrapper). For a
    transactional U file the file, the removal and `also` are one query string, which the
    server runs as one transaction outside an explicit one; otherwise the file goes
    statement by statement and the two removals together after it. Either way a kill
    leaves both histories saying the same thing.
    """
    row = find_applied(history, v_file)
    forget = ";\n".join(q for q in (history.delete_sql(row) if row else "", also) if q)
    if u_file.config.execute_in_transaction:
        try:
            cursor.execute(f"{sql}\n;\n{forget}" if forget else sql)
        except Exception as error:
            raise failure(u_file, sql, error, transactional=True, undo=True) from error
        return
    for offset, statement in split_statements(sql):
        try:
            cursor.execute(statement)
        except Exception as error:
            line = line_at(sql, offset)
            raise failure(u_file, sql, error, False, line=line, undo=True) from error
    if forget:
        cursor.execute(forget)
