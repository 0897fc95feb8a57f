"""`migrate` never runs through a transaction pooler: refused before the lock, nothing done."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from dbops.localdb.pgbouncer import LocalPgBouncer
from tests.helpers import run_manage


def _history(pg_server: Any, name: str) -> int:
    with psycopg.connect(**pg_server.conninfo(name)) as conn:
        return conn.execute("SELECT count(*) FROM flyway_schema_history").fetchone()[0]


def _refused(pg_server: Any, env: dict[str, str], name: str) -> str:
    """Run migrate, which must refuse in one line and leave the history as it was."""
    before = _history(pg_server, name)
    proc = run_manage("migrate", "--no-input", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert pg_server.app_password not in proc.stderr
    assert pg_server.password not in proc.stderr
    assert _history(pg_server, name) == before
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("CommandError:")]
    return line


@pytest.mark.django_db
def test_a_pooler_url_as_the_migration_url_is_refused(
    manage_env: dict[str, str], local_pgbouncer: LocalPgBouncer, pg_server: Any
) -> None:
    name = manage_env["MIGRATION_DATABASE_URL"].rsplit("/", 1)[-1]
    pooled = local_pgbouncer.url("app", name)
    line = _refused(pg_server, {**manage_env, "MIGRATION_DATABASE_URL": pooled}, name)
    assert "MIGRATION_DATABASE_URL reaches the server through something in between" in line
    assert f"port {local_pgbouncer.port()} answers for a server on port {pg_server.port}" in line
    assert "MIGRATION_ALLOW_PROXY=true" in line


@pytest.mark.django_db
def test_db_pooler_without_a_migration_url_is_refused(
    manage_env: dict[str, str], pg_server: Any
) -> None:
    env = {
        **manage_env,
        "DB_POOLER": "pgbouncer",
        "DATABASE_URL": manage_env["MIGRATION_DATABASE_URL"],
    }
    env.pop("MIGRATION_DATABASE_URL")
    env.pop("DB_POOL", None)
    name = manage_env["MIGRATION_DATABASE_URL"].rsplit("/", 1)[-1]
    before = _history(pg_server, name)
    proc = run_manage("migrate", "--no-input", env=env)
    assert proc.returncode == 1
    assert "DATABASE_URL is a transaction pooler (pgbouncer, DB_POOLER)" in proc.stderr
    assert "MIGRATION_DATABASE_URL" in proc.stderr
    assert _history(pg_server, name) == before


def test_an_rds_proxy_endpoint_is_refused_before_connecting(manage_env: dict[str, str]) -> None:
    env = {
        **manage_env,
        "MIGRATION_DATABASE_URL": "postgres://choregarden_owner:S3cret-pw@chores.proxy-"
        "abc123def456.eu-west-1.rds.amazonaws.com:5432/prod",
    }
    proc = run_manage("migrate", "--no-input", env=env)
    assert proc.returncode == 1
    assert "is an RDS Proxy endpoint (chores.proxy-abc123def456" in proc.stderr
    assert "S3cret-pw" not in proc.stderr
