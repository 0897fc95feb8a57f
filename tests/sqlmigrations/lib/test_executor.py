"""The executor applies, adopts and undoes one file with its history row (real PostgreSQL).

apply_file is the one place that decides how a file runs: in a transaction unless its
script config says not, its history row, its timing, an error naming the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from sqlmigrations.lib.executor import (
    ChecksumMismatch,
    MigrationFailed,
    apply_file,
    find_applied,
    locate,
    undo_file,
)
from sqlmigrations.lib.files import MigrationFile, discover
from sqlmigrations.lib.history import TYPE_BASELINE, SchemaHistory
from sqlmigrations.lib.versions import Version

NOT_IN_A_TRANSACTION = "executeInTransaction=false\n"


def migration_files(folder: Path, files: dict[str, str]) -> dict[str, MigrationFile]:
    """Write `files` (name -> SQL) and return them discovered, by file name."""
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return {mf.path.name: mf for mf in discover(folder)}


@pytest.fixture
def history(conn: psycopg.Connection[Any], schema: str) -> SchemaHistory:
    history = SchemaHistory(conn.cursor(), schema=schema)
    history.ensure_table()
    return history


class CountingCursor:
    """A cursor that keeps the query strings it was given: each is one round trip."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self.cursor = cursor
        self.queries: list[str] = []

    def execute(self, query: str, params: Any = None) -> Any:
        self.queries.append(query)
        return self.cursor.execute(query, params)


def tables(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        " AND tablename <> 'flyway_schema_history' ORDER BY tablename"
    ).fetchall()
    return [name for (name,) in rows]


def test_a_transactional_file_its_row_and_the_extra_sql_go_in_one_execute(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path
) -> None:
    mf = migration_files(tmp_path, {"V1__create_a.sql": "CREATE TABLE a (id int)"})[
        "V1__create_a.sql"
    ]
    cursor = CountingCursor(conn.cursor())
    applied = apply_file(
        cursor, history, mf, mf.read_text(), also="CREATE TABLE django_record (id int)"
    )

    assert (applied.script, applied.version, applied.outcome) == (
        "V1__create_a.sql",
        "1",
        "applied",
    )
    assert applied.seconds > 0
    assert applied.as_json() == {
        "script": "V1__create_a.sql",
        "version": "1",
        "outcome": "applied",
        "ms": round(applied.seconds * 1000),
    }
    assert len(cursor.queries) == 1
    assert tables(conn) == ["a", "django_record"]
    (row,) = history.rows()
    assert (row.version, row.description, row.type, row.script, row.checksum, row.success) == (
        "1",
        "create a",
        "SQL",
        "V1__create_a.sql",
        mf.checksum,
        True,
    )
    assert find_applied(history, mf) == row


def test_a_failing_transactional_file_leaves_nothing_and_names_its_line(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path
) -> None:
    sql = "CREATE TABLE a (id int);\n\nCREATE TABLE b (id nosuchtype);\n"
    mf = migration_files(tmp_path, {"V1__broken.sql": sql})["V1__broken.sql"]

    with pytest.raises(MigrationFailed) as failed:
        apply_file(conn.cursor(), history, mf, sql, also="CREATE TABLE django_record (id int)")

    assert failed.value.path == "V1__broken.sql"
    assert failed.value.line == 3
    assert 'type "nosuchtype" does not exist' in str(failed.value)
    assert "rolled back entirely and nothing was recorded" in str(failed.value)
    assert history.rows() == []
    assert tables(conn) == []


def test_a_file_already_in_the_history_is_adopted_and_not_run_again(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path
) -> None:
    mf = migration_files(tmp_path, {"V1__create_a.sql": "CREATE TABLE a (id int)"})[
        "V1__create_a.sql"
    ]
    history.insert(
        version="1",
        description="create a",
        type="SQL",
        script=mf.script,
        checksum=mf.checksum,
        execution_time=3,
        success=True,
    )
    existing = find_applied(history, mf)

    applied = apply_file(
        conn.cursor(),
        history,
        mf,
        mf.read_text(),
        existing=existing,
        also="CREATE TABLE django_record (id int)",
    )

    assert applied.outcome == "adopted"
    assert tables(conn) == ["django_record"]
    assert len(history.rows()) == 1


def test_a_file_whose_checksum_differs_from_the_history_is_refused(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path
) -> None:
    mf = migration_files(tmp_path, {"V1__create_a.sql": "CREATE TABLE a (id int)"})[
        "V1__create_a.sql"
    ]
    history.insert(
        version="1",
        description="create a",
        type="SQL",
        script=mf.script,
        checksum=mf.checksum + 1,
        execution_time=3,
        success=True,
    )

    with pytest.raises(ChecksumMismatch) as refused:
        apply_file(conn.cursor(), history, mf, mf.read_text(), existing=find_applied(history, mf))

    assert refused.value.path == "V1__create_a.sql"
    assert "sqlmigrations repair" in str(refused.value)
    assert tables(conn) == []


def test_a_non_transactional_file_runs_statement_by_statement(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path
) -> None:
    conn.execute("CREATE TABLE a (id int)")
    sql = "CREATE INDEX CONCURRENTLY a_id ON a (id);\nANALYZE a;\n"
    mf = migration_files(
        tmp_path, {"V2__index_a.sql": sql, "V2__index_a.sql.conf": NOT_IN_A_TRANSACTION}
    )["V2__index_a.sql"]

    applied = apply_file(conn.cursor(), history, mf, sql)

    assert applied.outcome == "applied"
    valid = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'a_id'::regclass")
    assert valid.fetchall() == [(True,)]
    (row,) = history.rows()
    assert (row.script, row.success) == ("V2__index_a.sql", True)


def test_a_failing_non_transactional_file_records_a_failed_row_and_keeps_earlier_statements(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path
) -> None:
    sql = "CREATE TABLE a (id int);\nCREATE TABLE a (id int);\n"
    mf = migration_files(
        tmp_path, {"V1__twice.sql": sql, "V1__twice.sql.conf": NOT_IN_A_TRANSACTION}
    )["V1__twice.sql"]

    with pytest.raises(MigrationFailed) as failed:
        apply_file(conn.cursor(), history, mf, sql)

    assert failed.value.line == 2
    assert "a failed row was recorded" in str(failed.value)
    assert tables(conn) == ["a"]
    (row,) = history.rows()
    assert (row.version, row.success) == ("1", False)


def test_a_file_at_or_below_the_baseline_only_records(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path
) -> None:
    files = migration_files(
        tmp_path,
        {"V1__create_a.sql": "CREATE TABLE a (id int)", "V2__create_b.sql": "CREATE TABLE b ()"},
    )
    history.insert(
        version="1",
        description="<< Flyway Baseline >>",
        type=TYPE_BASELINE,
        script="<< Flyway Baseline >>",
        checksum=None,
        execution_time=0,
        success=True,
    )
    floor = Version("1")
    cursor = conn.cursor()

    first = apply_file(
        cursor,
        history,
        files["V1__create_a.sql"],
        "CREATE TABLE a (id int)",
        baseline=floor,
        also="CREATE TABLE django_record (id int)",
    )
    second = apply_file(
        cursor, history, files["V2__create_b.sql"], "CREATE TABLE b ()", baseline=floor
    )

    assert (first.outcome, second.outcome) == ("baselined", "applied")
    assert tables(conn) == ["b", "django_record"]
    assert [row.version for row in history.rows()] == ["1", "2"]


def test_a_non_transactional_repeatable_runs_outside_a_transaction(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path
) -> None:
    conn.execute("CREATE TABLE a (id int)")
    sql = "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_id ON a (id);\n"
    mf = migration_files(
        tmp_path, {"R__index_a.sql": sql, "R__index_a.sql.conf": NOT_IN_A_TRANSACTION}
    )["R__index_a.sql"]

    apply_file(conn.cursor(), history, mf, sql, checksum=7)

    (row,) = history.rows()
    assert (row.script, row.checksum, row.success) == ("R__index_a.sql", 7, True)


def test_a_repeatable_is_recorded_with_the_checksum_it_is_given(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path
) -> None:
    mf = migration_files(tmp_path, {"R__view.sql": "CREATE VIEW v AS SELECT 1 AS one"})[
        "R__view.sql"
    ]

    applied = apply_file(conn.cursor(), history, mf, mf.read_text(), checksum=4242)

    assert (applied.version, applied.outcome) == (None, "applied")
    assert conn.execute("SELECT one FROM v").fetchall() == [(1,)]
    (row,) = history.rows()
    assert (row.version, row.description, row.checksum, row.success) == (None, "view", 4242, True)


@pytest.mark.parametrize("transactional", [True, False])
def test_undo_runs_the_u_file_and_removes_the_v_row_with_the_extra_sql(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path, transactional: bool
) -> None:
    files = migration_files(
        tmp_path,
        {
            "V1__create_a.sql": "CREATE TABLE a (id int)",
            "U1__create_a.sql": "DROP TABLE a;\nCREATE TABLE undone (id int);\n",
        },
    )
    if not transactional:
        (tmp_path / "U1__create_a.sql.conf").write_text("executeInTransaction=false\n")
        files = migration_files(tmp_path, {})
    v_file, u_file = files["V1__create_a.sql"], files["U1__create_a.sql"]
    apply_file(conn.cursor(), history, v_file, v_file.read_text())
    conn.execute("CREATE TABLE django_record (id int)")

    undone = undo_file(
        conn.cursor(), history, v_file, u_file, u_file.read_text(), also="DROP TABLE django_record"
    )

    assert (undone.script, undone.version, undone.outcome) == ("V1__create_a.sql", "1", "undone")
    assert tables(conn) == ["undone"]
    assert history.rows() == []


def test_a_failing_undo_says_its_migration_stays_applied(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path
) -> None:
    files = migration_files(
        tmp_path,
        {"V1__create_a.sql": "CREATE TABLE a (id int)", "U1__create_a.sql": "DROP TABLE b;\n"},
    )
    v_file, u_file = files["V1__create_a.sql"], files["U1__create_a.sql"]
    apply_file(conn.cursor(), history, v_file, v_file.read_text())

    with pytest.raises(MigrationFailed) as failed:
        undo_file(conn.cursor(), history, v_file, u_file, u_file.read_text())

    assert failed.value.path == "U1__create_a.sql"
    assert failed.value.undo
    assert "its migration stays applied" in str(failed.value)
    assert tables(conn) == ["a"]
    assert len(history.rows()) == 1


def test_locate_replays_a_rolled_back_file_to_find_a_runtime_errors_line(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path
) -> None:
    # A runtime error carries no position into the query string: only a replay tells.
    sql = "CREATE TABLE a (n int);\nINSERT INTO a VALUES (1);\n\nSELECT 1 / (n - 1) FROM a;\n"
    mf = migration_files(tmp_path, {"V1__divide.sql": sql})["V1__divide.sql"]
    with pytest.raises(MigrationFailed) as failed:
        apply_file(conn.cursor(), history, mf, sql)
    assert failed.value.line is None

    located = locate(conn, failed.value)

    assert located.line == 4
    assert str(located).startswith("V1__divide.sql:4: migration failed, line 4: ERROR:")
    assert "division by zero" in str(located)
    assert tables(conn) == []  # the replay was rolled back


def test_locate_leaves_a_non_transactional_failure_alone(
    conn: psycopg.Connection[Any], history: SchemaHistory, tmp_path: Path
) -> None:
    sql = "CREATE TABLE a (n int);\nSELECT 1 / 0;\n"
    mf = migration_files(
        tmp_path, {"V1__divide.sql": sql, "V1__divide.sql.conf": NOT_IN_A_TRANSACTION}
    )["V1__divide.sql"]
    with pytest.raises(MigrationFailed) as failed:
        apply_file(conn.cursor(), history, mf, sql)

    assert locate(conn, failed.value) is failed.value
    assert failed.value.line == 2
