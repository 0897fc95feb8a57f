"""`manage.py dbroles provision|check`: the owner and application roles of D4."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbops.connections.databases import drop_database
from dbops.roles.provision import PASSWORD_STATEMENTS, ensure_role, forget_password_statements
from tests.helpers import assert_denied, create_pg_stat_statements, run_manage


@pytest.fixture(scope="module")
def fresh_db(pg_server: Any, django_db_setup: None) -> Iterator[tuple[str, dict[str, str]]]:
    """A new database: provisioned first, then migrated, as a first deploy would do it."""
    name = f"dbroles_{os.getpid()}"
    with psycopg.connect(**pg_server.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env = dict(os.environ, DJANGO_ENV="test", DB_POOL="false")
    env.update(
        DATABASE_URL=pg_server.url(name, role="app"), MIGRATION_DATABASE_URL=pg_server.url(name)
    )
    env.update(pg_server.ssl_env())
    try:
        provision = run_manage("dbroles", "provision", env=env)
        assert provision.returncode == 0, provision.stderr
        migrate = run_manage("migrate", "--no-input", env=env)
        assert migrate.returncode == 0, migrate.stderr
        yield name, env
    finally:
        drop_database(pg_server.conninfo(), name)


def owner_sql(pg_server: Any, database: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(**pg_server.conninfo(database), autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def test_check_proves_crud_works_and_ddl_is_denied(fresh_db: tuple[str, dict[str, str]]) -> None:
    _name, env = fresh_db
    proc = run_manage("dbroles", "check", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for expected in (
        "OK    connection encrypted: SSL",
        "OK    membership in other roles (only pg_monitor allowed): pg_monitor",
        "OK    SELECT on migration_test: allowed",
        "OK    INSERT on migration_test: allowed",
        "OK    UPDATE on migration_test: allowed",
        "OK    DELETE on migration_test: allowed",
        "OK    SELECT on flyway_schema_history: allowed",
        "OK    SELECT on django_migrations: allowed",
        "OK    CREATE TABLE: denied",
        "OK    ALTER TABLE migration_test: denied",
        "OK    DROP TABLE migration_test: denied",
        "OK    TRUNCATE migration_test: denied",
        "OK    CREATE SCHEMA: denied",
        "OK    INSERT on flyway_schema_history: denied",
        "OK    UPDATE on flyway_schema_history: denied",
        "OK    DELETE on flyway_schema_history: denied",
        "OK    INSERT on django_migrations: denied",
        "OK    UPDATE on django_migrations: denied",
        "OK    DELETE on django_migrations: denied",
        # The connection sets them (settings' defaults); the owner may not make them the
        # role's defaults (no CREATEROLE).
        "OK    statement_timeout (bounded waits): 30s (no role default)",
        "OK    lock_timeout (bounded waits): 5s (no role default)",
        "OK    idle_in_transaction_session_timeout (bounded waits): 1min (no role default)",
    ):
        assert expected in lines, proc.stdout
    catalog = next(line for line in lines if "(from the catalog)" in line)
    assert re.fullmatch(
        r"OK    writable relations \(from the catalog\) are application tables: "
        r"(\d+) tables and (\d+) sequences, all application tables",
        catalog,
    ), catalog
    assert "All 25 checks passed for role choregarden" in proc.stdout


def test_check_fails_when_a_wait_is_unbounded(fresh_db: tuple[str, dict[str, str]]) -> None:
    _name, env = fresh_db
    proc = run_manage("dbroles", "check", env={**env, "DB_LOCK_TIMEOUT": "0"})
    assert proc.returncode == 1
    assert (
        "FAIL  lock_timeout (bounded waits): 0, no limit (no role default): set DB_LOCK_TIMEOUT "
        "or run `manage.py dbroles provision` as an admin (--url)" in proc.stdout.splitlines()
    )
    assert "1 of 25 checks failed" in proc.stderr


def test_check_leaves_nothing_behind(pg_server: Any, fresh_db: tuple[str, dict[str, str]]) -> None:
    name, env = fresh_db
    before = owner_sql(pg_server, name, "SELECT id, name FROM migration_test ORDER BY id")
    assert run_manage("dbroles", "check", env=env).returncode == 0
    assert owner_sql(pg_server, name, "SELECT id, name FROM migration_test ORDER BY id") == before
    leftovers = owner_sql(
        pg_server,
        name,
        "SELECT relname FROM pg_class WHERE relname = 'dbroles_probe'"
        " UNION ALL SELECT nspname FROM pg_namespace WHERE nspname = 'dbroles_probe'",
    )
    assert leftovers == []


def test_check_prints_json_for_machines(fresh_db: tuple[str, dict[str, str]]) -> None:
    name, env = fresh_db
    proc = run_manage("dbroles", "check", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert report["role"] == "choregarden"
    assert report["database"] == name
    truncate = next(c for c in report["checks"] if c["check"] == "TRUNCATE migration_test")
    assert truncate == {
        "check": "TRUNCATE migration_test",
        "expected": "denied",
        "ok": True,
        "detail": "denied",
    }


def test_check_fails_on_an_extra_privilege_and_provision_takes_it_back(
    pg_server: Any, fresh_db: tuple[str, dict[str, str]]
) -> None:
    name, env = fresh_db
    owner_sql(
        pg_server,
        name,
        "GRANT TRUNCATE, INSERT ON migration_test, flyway_schema_history TO choregarden",
    )
    owner_sql(pg_server, name, f'GRANT CREATE ON DATABASE "{name}" TO choregarden')
    proc = run_manage("dbroles", "check", env=env)
    assert proc.returncode == 1
    assert "FAIL  TRUNCATE migration_test: allowed, should be denied" in proc.stdout
    assert "FAIL  INSERT on flyway_schema_history: allowed, should be denied" in proc.stdout
    assert "FAIL  CREATE SCHEMA: allowed, should be denied" in proc.stdout
    assert "OK    CREATE TABLE: denied" in proc.stdout
    assert (
        "FAIL  write access on public.flyway_schema_history: allowed, should be denied: "
        "migration history" in proc.stdout
    )
    assert "5 of 26 checks failed for role choregarden" in proc.stderr
    assert "manage.py dbroles provision" in proc.stderr
    # The TRUNCATE ran and was rolled back with everything else.
    assert owner_sql(pg_server, name, "SELECT count(*) FROM migration_test") != [(0,)]

    again = run_manage("dbroles", "provision", env=env)
    assert again.returncode == 0, again.stderr
    assert run_manage("dbroles", "check", env=env).returncode == 0


def test_provision_is_idempotent_and_keeps_the_history_read_only(
    pg_server: Any, fresh_db: tuple[str, dict[str, str]]
) -> None:
    name, env = fresh_db
    for _ in range(2):
        proc = run_manage("dbroles", "provision", env=env)
        assert proc.returncode == 0, proc.stderr
    assert "role choregarden_owner: the connected role, left as it is" in proc.stdout
    assert (
        "role choregarden: exists; not updated (choregarden_owner lacks CREATEROLE)" in proc.stdout
    )
    assert "pg_monitor: choregarden is a member (statistics only)" in proc.stdout
    assert proc.stdout.rstrip().endswith(f"Done! Roles and privileges are in place on {name}.")
    grants = owner_sql(
        pg_server,
        name,
        "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type)"
        " FROM information_schema.role_table_grants WHERE grantee = 'choregarden'"
        " AND table_name IN ('flyway_schema_history', 'migration_test') GROUP BY table_name"
        " ORDER BY table_name",
    )
    assert grants == [
        ("flyway_schema_history", "SELECT"),
        ("migration_test", "DELETE,INSERT,SELECT,UPDATE"),
    ]


def test_the_application_role_cannot_rewrite_djangos_migration_history(
    pg_server: Any, fresh_db: tuple[str, dict[str, str]]
) -> None:
    name, env = fresh_db
    # Provisioned before `migrate` made django_migrations: the owner's default privileges
    # gave the table CRUD for the application at birth; migrate takes the writes back.
    with psycopg.connect(**pg_server.conninfo(name, role="app"), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 0
        assert_denied(
            conn,
            [
                "DELETE FROM django_migrations WHERE id = 1",
                "UPDATE django_migrations SET applied = now()",
                "INSERT INTO django_migrations (app, name, applied) VALUES ('a', 'b', now())",
                "SELECT nextval(pg_get_serial_sequence('django_migrations', 'id'))",
            ],
        )
    shown = run_manage("showmigrations", "dbops", env=env)  # as the application role
    assert shown.returncode == 0 and "[X] V1__create_migration_test_table" in shown.stdout, (
        shown.stdout + shown.stderr
    )
    again = run_manage("migrate", "--no-input", env=env)
    assert again.returncode == 0, again.stderr
    assert "No migrations to apply." in again.stdout


def test_check_finds_grants_on_an_extensions_views_and_a_superuser_takes_them_back(
    pg_server: Any, fresh_db: tuple[str, dict[str, str]]
) -> None:
    if pg_server.cluster is None:
        pytest.skip("needs the local cluster's superuser (TEST_DATABASE_URL has none)")
    name, env = fresh_db
    su = pg_server.cluster.conninfo("superuser", name)
    create_pg_stat_statements(su, grant_all_to="choregarden")  # as provisioning did before
    try:
        proc = run_manage("dbroles", "check", env=env)
        assert proc.returncode == 1
        for view in ("pg_stat_statements", "pg_stat_statements_info"):
            assert (
                f"FAIL  write access on public.{view}: allowed, should be denied: member of "
                "extension pg_stat_statements" in proc.stdout
            )
            assert (
                f"FAIL  write on public.{view} (member of extension pg_stat_statements): "
                "allowed, should be denied" in proc.stdout
            )
        assert "FAIL  DELETE on django_migrations: allowed, should be denied" in proc.stdout

        as_owner = run_manage("dbroles", "provision", env=env)
        assert as_owner.returncode == 1
        assert "keeps grants on public.pg_stat_statements (member of extension" in as_owner.stderr
        assert "--url <URL of a superuser or the RDS master user>" in as_owner.stderr

        su_user, su_password = pg_server.cluster.credentials("superuser")
        url = f"postgres://{su_user}:{su_password}@{pg_server.host}:{pg_server.port}/{name}"
        as_superuser = run_manage("dbroles", "provision", "--url", url, env=env)
        assert as_superuser.returncode == 0, as_superuser.stderr
        check = run_manage("dbroles", "check", env=env)
        assert check.returncode == 0, check.stdout
        assert (
            "OK    write on public.pg_stat_statements (member of extension pg_stat_statements): "
            "denied" in check.stdout
        )
        assert "All 27 checks passed" in check.stdout
    finally:
        with psycopg.connect(**su, autocommit=True) as conn:
            conn.execute("DROP EXTENSION IF EXISTS pg_stat_statements")


def test_tables_made_by_later_migrations_are_reachable(
    pg_server: Any, fresh_db: tuple[str, dict[str, str]]
) -> None:
    name, _env = fresh_db
    owner_sql(
        pg_server, name, "CREATE TABLE later_table (id bigint GENERATED ALWAYS AS IDENTITY, v int)"
    )
    try:
        with psycopg.connect(**pg_server.conninfo(name, role="app"), autocommit=True) as conn:
            conn.execute("INSERT INTO later_table (v) VALUES (1)")
            conn.execute("UPDATE later_table SET v = 2")
            assert conn.execute("SELECT v FROM later_table").fetchall() == [(2,)]
            conn.execute("DELETE FROM later_table")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DROP TABLE later_table")
    finally:
        owner_sql(pg_server, name, "DROP TABLE later_table")


def test_check_with_an_owner_url_fails(
    pg_server: Any, fresh_db: tuple[str, dict[str, str]]
) -> None:
    name, env = fresh_db
    proc = run_manage("dbroles", "check", "--url", pg_server.url(name), env=env)
    assert proc.returncode == 1
    assert "FAIL  CREATE TABLE: allowed, should be denied" in proc.stdout
    assert pg_server.password not in proc.stdout + proc.stderr


def test_check_on_an_unmigrated_database_says_to_migrate(
    pg_server: Any, fresh_db: tuple[str, dict[str, str]]
) -> None:
    name = f"dbroles_empty_{os.getpid()}"
    owner_sql(pg_server, pg_server.dbname, f'CREATE DATABASE "{name}"')
    try:
        env = {
            **fresh_db[1],
            "DATABASE_URL": pg_server.url(name, role="app"),
            "MIGRATION_DATABASE_URL": pg_server.url(name),
        }
        assert run_manage("dbroles", "provision", env=env).returncode == 0
        proc = run_manage("dbroles", "check", env=env)
        assert proc.returncode == 1
        assert (
            'FAIL  SELECT on migration_test: error: relation "migration_test" does not exist; '
            "run `manage.py migrate` first" in proc.stdout
        )
        assert "OK    CREATE TABLE: denied" in proc.stdout
    finally:
        drop_database(pg_server.conninfo(), name)


def test_provision_as_a_superuser_creates_the_roles(pg_server: Any, tmp_path: Any) -> None:
    if pg_server.cluster is None:
        pytest.skip("needs the local cluster's superuser (TEST_DATABASE_URL has none)")
    cluster = pg_server.cluster
    name = f"dbroles_su_{os.getpid()}"
    owner, app = "dbroles_owner_t", "dbroles_app_t"
    su = cluster.conninfo("superuser", "postgres")
    with psycopg.connect(**su, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    host = f"{pg_server.host}:{pg_server.port}/{name}"
    env = dict(os.environ, DJANGO_ENV="test", DB_POOL="false")
    env.update(
        DATABASE_URL=f"postgres://{app}:app-secret-1@{host}",
        MIGRATION_DATABASE_URL=f"postgres://{owner}:owner-secret-1@{host}",
    )
    env.update(pg_server.ssl_env())
    su_user, su_password = cluster.credentials("superuser")
    try:
        proc = run_manage(
            "dbroles", "provision", "--url", f"postgres://{su_user}:{su_password}@{host}", env=env
        )
        assert proc.returncode == 0, proc.stderr
        assert f"role {owner}: created, password set" in proc.stdout
        assert f"role {app}: created, password set" in proc.stdout
        assert f"pg_monitor: granted to {app} (statistics only)" in proc.stdout
        for secret in ("app-secret-1", "owner-secret-1", su_password):
            assert secret not in proc.stdout + proc.stderr
        assert f"database {name}: owner changed from postgres to {owner}" in proc.stdout
        # The application role (pg_monitor) reads every statement's text: no verifier there.
        with psycopg.connect(**cluster.conninfo("app")) as conn:
            assert (
                conn.execute(
                    "SELECT query FROM pg_stat_statements WHERE query ~* %s AND query ~ %s",
                    [PASSWORD_STATEMENTS, f"{owner}|{app}"],
                ).fetchall()
                == []
            )
        migrate = run_manage("migrate", "--no-input", env=env)
        assert migrate.returncode == 0, migrate.stderr
        check = run_manage("dbroles", "check", env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        assert f"All 25 checks passed for role {app} on {name}." in check.stdout
        assert (
            f"timeouts: {app}'s defaults in {name}: statement_timeout 30000ms, lock_timeout "
            "5000ms, idle_in_transaction_session_timeout 60000ms" in proc.stdout
        )
        # Another client of the role (no options of its own) is bounded too.
        check = run_manage(
            "dbroles", "check", "--url", f"postgres://{app}:app-secret-1@{host}", env=env
        )
        assert "OK    lock_timeout (bounded waits): 5s (role default 5000ms)" in check.stdout
    finally:
        with psycopg.connect(**su, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            for role in (app, owner):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_role_that_may_not_untrack_its_statements_forgets_them_or_says_so(
    pg_server: Any,
) -> None:
    # As the RDS master: CREATEROLE, not a superuser, so pg_stat_statements.track is not
    # its to change, and resetting statistics needs a grant.
    if pg_server.cluster is None:
        pytest.skip("needs the local cluster's superuser (TEST_DATABASE_URL has none)")
    cluster = pg_server.cluster
    su = cluster.conninfo("superuser")
    maker, made = "rolemaker_t", "made_by_rolemaker_t"
    ident = sql.Identifier
    with psycopg.connect(**su, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD 'maker-pw-1'").format(ident(maker))
        )
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                ident(cluster.database), ident(maker)
            )
        )
    as_maker = {**su, "user": maker, "password": "maker-pw-1"}
    reset = "FUNCTION pg_stat_statements_reset(oid, oid, bigint)"
    try:
        with psycopg.connect(**as_maker, autocommit=True) as conn:
            ensure_role(conn, made, "made-pw-1", "LOGIN")
            left = forget_password_statements(conn)
        assert left is not None
        assert left.startswith("pg_stat_statements: 1 role statement(s) with a password verifier")
        assert "pg_stat_statements_reset()` as a superuser or the RDS master user" in left
        with psycopg.connect(**su, autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT EXECUTE ON " + reset + " TO {}").format(ident(maker)))
        with psycopg.connect(**as_maker, autocommit=True) as conn:
            assert (
                forget_password_statements(conn) == "pg_stat_statements: forgot 1 role statement(s)"
            )
        with psycopg.connect(**cluster.conninfo("app")) as conn:
            assert (
                conn.execute(
                    "SELECT query FROM pg_stat_statements WHERE query ~* %s AND query ~ %s",
                    [PASSWORD_STATEMENTS, made],
                ).fetchall()
                == []
            )
    finally:
        with psycopg.connect(**su, autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE ALL ON " + reset + " FROM {}").format(ident(maker)))
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(
                    ident(cluster.database), ident(maker)
                )
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident(made)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident(maker)))
