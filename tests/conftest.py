"""Session fixtures: a real PostgreSQL server for the whole run (D6).

TEST_DATABASE_URL picks an existing server; otherwise a throwaway SSL cluster is made by
the same code as `manage.py devdb`, in a temporary folder, and removed at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import environ
import pytest

from dbops.localdb import LocalCluster
from tests.sqlproject import SqlProject, create_project, drop_project


@dataclass
class PgServer:
    """Where the test server is and how to reach it as the owner role."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    options: dict[str, str]
    cluster: LocalCluster | None = None

    def url(self, dbname: str | None = None) -> str:
        return (
            f"postgres://{quote(self.user)}:{quote(self.password, safe='')}@{self.host}:"
            f"{self.port}/{dbname or self.dbname}"
        )

    def conninfo(self, dbname: str | None = None) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": dbname or self.dbname,
            **self.options,
        }


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        cfg = environ.Env.db_url_config(url)
        yield PgServer(
            host=cfg["HOST"] or "127.0.0.1",
            port=int(cfg["PORT"] or 5432),
            user=cfg["USER"],
            password=cfg["PASSWORD"],
            dbname=cfg["NAME"],
            options={k: str(v) for k, v in cfg.get("OPTIONS", {}).items()},
        )
        return
    base = Path(tempfile.mkdtemp(prefix="choregarden-test-"))
    cluster = LocalCluster(base, database="choregarden")
    cluster.start()
    info = cluster.conninfo("owner")
    yield PgServer(
        host=str(info["host"]),
        port=int(info["port"]),
        user=str(info["user"]),
        password=str(info["password"]),
        dbname=str(info["dbname"]),
        options={"sslmode": "verify-full", "sslrootcert": str(cluster.ca_file)},
        cluster=cluster,
    )
    cluster.destroy()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(pg_server: PgServer) -> None:
    """Point Django's default database at the test server, as the owner role."""
    from django.conf import settings

    config = settings.DATABASES["default"]
    config.update(
        NAME=pg_server.dbname,
        USER=pg_server.user,
        PASSWORD=pg_server.password,
        HOST=pg_server.host,
        PORT=pg_server.port,
    )
    options = config.setdefault("OPTIONS", {})
    options.update(pg_server.options)
    settings.MIGRATION_DATABASE = None


@pytest.fixture
def manage_env(pg_server: PgServer, django_db_setup: None) -> dict[str, str]:
    """Environment for a `manage.py` subprocess on the test database."""
    from django.conf import settings

    env = dict(os.environ, DJANGO_ENV="test", DB_POOL="false")
    env["DATABASE_URL"] = pg_server.url(settings.DATABASES["default"]["NAME"])
    env.pop("MIGRATION_DATABASE_URL", None)
    for key, value in pg_server.options.items():
        env[{"sslmode": "DB_SSLMODE", "sslrootcert": "DB_SSLROOTCERT"}[key]] = value
    return env


@pytest.fixture
def sqlproject(tmp_path: Path, pg_server: PgServer) -> Iterator[SqlProject]:
    """A throwaway SQL migrations project with a fresh database (see tests/sqlproject.py)."""
    project = create_project(tmp_path, pg_server)
    yield project
    drop_project(project)
