"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

# `manage.py` runs in forks of one process that imported Django once (tests/forkserver.py).
# Tests where the process itself is the point (kill -9, signals, the command line, several
# at once) start the real `manage.py` with subprocess.
from tests.forkserver import REPO, run_manage  # noqa: F401 - tests import both from here


def project_env(server: Any, database: str, settings_module: str, root: Path) -> dict[str, str]:
    """Environment for `manage.py` of a throwaway project in `root` on its own database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")}
    env.pop("MIGRATION_DATABASE_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE=settings_module,
        PYTHONPATH=os.pathsep.join([str(root), str(REPO)]),
        DJANGO_ENV="test",
        DB_POOL="false",
        DATABASE_URL=server.url(database),
    )
    for key, value in server.options.items():
        env[{"sslmode": "DB_SSLMODE", "sslrootcert": "DB_SSLROOTCERT"}[key]] = value
    return env


def create_database(server: Any, name: str, template: str | None = None) -> str:
    """CREATE DATABASE name [TEMPLATE template] on the test server, as the owner role."""
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(**server.conninfo(), autocommit=True) as conn:
        conn.execute(statement)
    return name


def create_pg_stat_statements(
    superuser: dict[str, Any], *, grant_all_to: str | None = None
) -> None:
    """CREATE EXTENSION pg_stat_statements as a superuser, as devdb and RDS setups do.

    With `grant_all_to`, also grant CRUD on every table and view of schema public to that
    role, as provisioning did before it told application tables from the extension's.
    Skips the test where PostgreSQL's contrib extensions are not installed.
    """
    import pytest

    with psycopg.connect(**superuser, autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
        ).fetchone():
            pytest.skip("PostgreSQL's contrib extensions are not installed")
        conn.execute("CREATE EXTENSION pg_stat_statements")
        if grant_all_to:
            conn.execute(
                sql.SQL(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}"
                ).format(sql.Identifier(grant_all_to))
            )


def assert_denied(conn: Any, statements: list[str]) -> None:
    """Each statement fails with insufficient_privilege (each in a savepoint)."""
    import pytest

    for statement in statements:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(statement)


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def planned_installs(target: str, venv: Path) -> tuple[str, list[str]]:
    """What `make -n TARGET` would run in a fresh clone (without running it), and of that
    the pip install lines."""
    planned = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return planned, [line for line in planned.splitlines() if " install " in line]


POOLER_KEYS = ("POOLER", "DISABLE_SERVER_SIDE_CURSORS")


def direct_settings(config: dict[str, Any], info: Any) -> dict[str, Any]:
    """A copy of a DATABASES entry that connects straight to the server as `info`'s role.

    Under TEST_DB_POOLER the tests' `default` goes through PgBouncer with the settings
    DB_POOLER gives it; an owner's, a scratch database's or a replica's connection made
    from it must not.
    """
    import copy

    direct = {k: v for k, v in copy.deepcopy(config).items() if k not in POOLER_KEYS}
    direct.update(
        HOST=info.host, PORT=info.port, USER=info.user, PASSWORD=info.password, NAME=info.dbname
    )
    direct["OPTIONS"] = {
        k: v for k, v in direct.get("OPTIONS", {}).items() if k not in ("pool", "prepare_threshold")
    }
    return direct
