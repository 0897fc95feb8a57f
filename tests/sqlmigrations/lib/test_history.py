"""SchemaHistory: Flyway's flyway_schema_history table, read and written on real PostgreSQL."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from sqlmigrations.lib.history import TYPE_SQL, SchemaHistory
from sqlmigrations.lib.versions import Version

# Flyway's createMetaDataTable.sql for PostgreSQL: name, type, length, nullable, default.
FLYWAY_COLUMNS = [
    ("installed_rank", "integer", None, "NO", None),
    ("version", "character varying", 50, "YES", None),
    ("description", "character varying", 200, "NO", None),
    ("type", "character varying", 20, "NO", None),
    ("script", "character varying", 1000, "NO", None),
    ("checksum", "integer", None, "YES", None),
    ("installed_by", "character varying", 100, "NO", None),
    ("installed_on", "timestamp without time zone", None, "NO", "now()"),
    ("execution_time", "integer", None, "NO", None),
    ("success", "boolean", None, "NO", None),
]


def row_values(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "version": "1",
        "description": "create things",
        "type": TYPE_SQL,
        "script": "V1__create_things.sql",
        "checksum": 123,
    }
    return {**values, **overrides}


def test_ensure_table_creates_flyways_table_once(
    conn: psycopg.Connection[Any], schema: str
) -> None:
    history = SchemaHistory(conn.cursor(), schema=schema)
    assert not history.has_table()
    assert history.rows() == []

    assert history.ensure_table() is True
    assert history.ensure_table() is False
    assert history.has_table()
    columns = conn.execute(
        "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = %s"
        " AND table_name = 'flyway_schema_history' ORDER BY ordinal_position",
        [schema],
    ).fetchall()
    assert columns == FLYWAY_COLUMNS
    indexes = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s ORDER BY indexname", [schema]
    ).fetchall()
    assert indexes == [("flyway_schema_history_pk",), ("flyway_schema_history_s_idx",)]


def test_the_quoted_name_is_flyways_and_a_custom_table_is_used(
    conn: psycopg.Connection[Any], schema: str
) -> None:
    history = SchemaHistory(conn.cursor(), schema=schema, table="Deploy History")
    assert history.quoted_name == f'"{schema}"."Deploy History"'
    history.ensure_table()
    history.insert(**row_values(), execution_time=1, success=True)
    found = conn.execute(
        sql.SQL("SELECT script FROM {}").format(sql.Identifier(schema, "Deploy History"))
    ).fetchall()
    assert found == [("V1__create_things.sql",)]


def test_the_application_role_may_only_read_the_history(
    conn: psycopg.Connection[Any], schema: str, pg_server: Any
) -> None:
    # Default privileges (as D4 sets them) would give the application role CRUD on it.
    conn.execute(
        sql.SQL(
            "GRANT USAGE ON SCHEMA {s} TO {app}; ALTER DEFAULT PRIVILEGES IN SCHEMA {s}"
            " GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO {app}"
        ).format(s=sql.Identifier(schema), app=sql.Identifier(pg_server.app_user))
    )
    SchemaHistory(conn.cursor(), schema=schema).ensure_table()
    grants = conn.execute(
        "SELECT privilege_type FROM information_schema.role_table_grants"
        " WHERE table_schema = %s AND table_name = 'flyway_schema_history' AND grantee = %s",
        [schema, pg_server.app_user],
    ).fetchall()
    assert grants == [("SELECT",)]


def test_insert_appends_with_the_next_rank_and_the_current_user(
    conn: psycopg.Connection[Any], schema: str, pg_server: Any
) -> None:
    history = SchemaHistory(conn.cursor(), schema=schema)
    history.ensure_table()
    assert history.insert(**row_values(), execution_time=7, success=True) == 1
    rank = history.insert(
        **row_values(version="2", description="x" * 300, script="s" * 1200, checksum=None),
        execution_time=0,
        success=False,
    )
    assert rank == 2

    first, second = history.rows()
    assert (first.installed_rank, first.version, first.installed_by) == (1, "1", pg_server.user)
    assert (first.execution_time, first.success, first.checksum) == (7, True, 123)
    assert first.parsed_version == Version("1")
    # Flyway's columns are 200 and 1000 characters: longer values are cut, not refused.
    assert (len(second.description), len(second.script)) == (200, 1000)
    assert (second.checksum, second.success) == (None, False)


def test_insert_after_records_in_the_query_string_of_the_file(
    conn: psycopg.Connection[Any], schema: str
) -> None:
    history = SchemaHistory(conn.cursor(), schema=schema)
    history.ensure_table()
    history.insert(**row_values(), execution_time=1, success=True)
    row = history.insert_after(**row_values(version="2", script="V2__b.sql"), success=True)

    conn.execute(f"CREATE TABLE b (id int);\n{row}")

    assert [(r.installed_rank, r.script) for r in history.rows()] == [
        (1, "V1__create_things.sql"),
        (2, "V2__b.sql"),
    ]
    assert history.rows()[1].execution_time >= 0


def test_insert_after_commits_with_the_file_or_not_at_all(
    conn: psycopg.Connection[Any], schema: str
) -> None:
    history = SchemaHistory(conn.cursor(), schema=schema)
    history.ensure_table()
    row = history.insert_after(**row_values(), success=True)
    try:
        conn.execute(f"CREATE TABLE a (id int);\nSELECT 1 / 0;\n{row}")
    except psycopg.errors.DivisionByZero:
        pass
    else:
        raise AssertionError("the query string should have failed")
    assert history.rows() == []
    assert conn.execute("SELECT to_regclass('a')").fetchone() == (None,)


def test_delete_update_and_delete_sql_change_one_row(
    conn: psycopg.Connection[Any], schema: str
) -> None:
    history = SchemaHistory(conn.cursor(), schema=schema)
    history.ensure_table()
    for version in ("1", "2", "3"):
        history.insert(
            **row_values(version=version, script=f"V{version}__x.sql"),
            execution_time=1,
            success=True,
        )

    history.update_checksum(2, 99, "renamed", "V2__renamed.sql")
    history.delete(1)
    conn.execute(history.delete_sql(history.rows()[-1]))

    (left,) = history.rows()
    assert (left.installed_rank, left.checksum, left.description, left.script) == (
        2,
        99,
        "renamed",
        "V2__renamed.sql",
    )
