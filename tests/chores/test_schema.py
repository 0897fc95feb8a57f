"""The chores schema (V3+) and the application role's access to every table."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql as pgsql

from dbops.localdb.cluster import APP_ROLE
from dbops.roles import grant_application_privileges
from tests.dbschema import sql
from tests.helpers import run_manage

APP_TABLES = [
    "users",
    "households",
    "household_members",
    "task_templates",
    "tasks",
    "assignments",
    "completions",
    "notifications",
]


@pytest.fixture(scope="module")
def provisioned_db(pg_server: Any, django_db_setup: None) -> Iterator[str]:
    """A database provisioned like production (roles first), then migrated by manage.py."""
    name = f"cg_roles_{os.getpid()}"
    with psycopg.connect(**pg_server.conninfo(), autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    try:
        with psycopg.connect(**pg_server.conninfo(name), autocommit=True) as conn:
            grant_application_privileges(conn, database=name, owner=pg_server.user, app=APP_ROLE)
        env = dict(os.environ, DJANGO_ENV="test", DB_POOL="false", DATABASE_URL=pg_server.url(name))
        env.pop("MIGRATION_DATABASE_URL", None)
        for key, value in pg_server.options.items():
            env[{"sslmode": "DB_SSLMODE", "sslrootcert": "DB_SSLROOTCERT"}[key]] = value
        result = run_manage("migrate", "--no-input", env=env)
        assert result.returncode == 0, result.stderr
        yield name
    finally:
        with psycopg.connect(**pg_server.conninfo(), autocommit=True) as conn:
            conn.execute(
                pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
            )


@pytest.fixture
def app_conn(pg_server: Any, provisioned_db: str) -> Iterator[psycopg.Connection[Any]]:
    if pg_server.cluster is None:
        pytest.skip("TEST_DATABASE_URL gives no password for the application role")
    with psycopg.connect(**pg_server.cluster.conninfo("app", provisioned_db)) as conn:
        yield conn
        conn.rollback()


def test_default_privileges_give_the_app_role_crud_on_every_table(
    app_conn: psycopg.Connection[Any],
) -> None:
    for table in APP_TABLES:
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            row = app_conn.execute(
                "SELECT has_table_privilege(current_user, %s, %s)", [table, privilege]
            ).fetchone()
            assert row == (True,), f"{APP_ROLE} lacks {privilege} on {table}"


def test_the_app_role_reads_but_cannot_write_the_audit_log(
    app_conn: psycopg.Connection[Any],
) -> None:
    app_conn.execute("SELECT count(*) FROM audit_log")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute(
            "INSERT INTO audit_log (table_name, row_key, action, changes) "
            "VALUES ('users', 'x', 'DELETE', '{}')"
        )


def test_the_app_role_can_write_and_read_a_profile(app_conn: psycopg.Connection[Any]) -> None:
    row = app_conn.execute(
        "INSERT INTO users (cognito_sub, email) VALUES ('sub-r', 'r@example.com') RETURNING id"
    ).fetchone()
    assert row is not None
    app_conn.execute("UPDATE users SET display_name = 'R' WHERE id = %s", [row[0]])
    assert app_conn.execute("SELECT display_name FROM users").fetchall() == [("R",)]
    app_conn.execute("DELETE FROM users WHERE id = %s", [row[0]])


def test_the_app_role_cannot_change_the_schema(app_conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute("ALTER TABLE users ADD COLUMN x int")


@pytest.mark.django_db
def test_every_table_and_column_has_a_comment() -> None:
    missing = sql(
        """
        SELECT c.relname, a.attname
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
          LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND c.relname = ANY(%s)
           AND (obj_description(c.oid, 'pg_class') IS NULL
                OR col_description(c.oid, a.attnum) IS NULL)
        """,
        [[*APP_TABLES, "audit_log"]],
    )
    assert missing == []
