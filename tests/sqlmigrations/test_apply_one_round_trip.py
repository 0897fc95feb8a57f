"""A transactional file and its history row go to the server in one query string."""

from __future__ import annotations

from tests.sqlproject import SqlProject


def test_files_with_awkward_endings_are_applied_and_recorded(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__no_final_semicolon.sql", "CREATE TABLE a (id int PRIMARY KEY)")
    sqlproject.write(
        "V2__ends_in_a_comment.sql", "INSERT INTO a VALUES (1);\n-- no newline after this"
    )
    sqlproject.write(
        "V3__percent_and_quotes.sql",
        "CREATE TABLE b (pattern text DEFAULT 'it''s 100% %s');\nINSERT INTO b DEFAULT VALUES;\n",
    )
    result = sqlproject.manage("migrate", "--no-input")
    assert result.returncode == 0, result.stderr

    rows = sqlproject.query(
        "SELECT version, success, execution_time >= 0 FROM flyway_schema_history"
        " ORDER BY installed_rank"
    )
    assert rows == [("1", True, True), ("2", True, True), ("3", True, True)]
    assert sqlproject.query("SELECT id FROM a") == [(1,)]
    assert sqlproject.query("SELECT pattern FROM b") == [("it's 100% %s",)]


def test_a_failing_file_leaves_no_row_and_names_its_line(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n")
    sqlproject.write(
        "V2__broken.sql", "INSERT INTO a VALUES (1);\n\nINSERT INTO nope VALUES (2);\n"
    )

    result = sqlproject.manage("migrate", "--no-input")

    assert result.returncode != 0
    assert "V2__broken.sql" in result.stderr and "line 3" in result.stderr
    assert sqlproject.query("SELECT version FROM flyway_schema_history") == [("1",)]
    assert sqlproject.query("SELECT count(*) FROM a") == [(0,)]
