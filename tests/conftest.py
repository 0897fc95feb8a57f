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
    """Where the test server is and how to reach it as the owner (or the application) role."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    options: dict[str, str]
    cluster: LocalCluster | None = None
    app_user: str = "choregarden"
    app_password: str = ""

    def credentials(self, role: str = "owner") -> tuple[str, str]:
        return (self.app_user, self.app_password) if role == "app" else (self.user, self.password)

    def url(self, dbname: str | None = None, role: str = "owner") -> str:
        user, password = self.credentials(role)
        return (
            f"postgres://{quote(user)}:{quote(password, safe='')}@{self.host}:"
            f"{self.port}/{dbname or self.dbname}"
        )

    def conninfo(self, dbname: str | None = None, role: str = "owner") -> dict[str, object]:
        user, password = self.credentials(role)
        return {
            "host": self.host,
            "port": self.port,
            "user": user,
            "password": password,
            "dbname": dbname or self.dbname,
            **self.options,
        }


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        app_url = os.environ.get("TEST_APP_DATABASE_URL")
        if not app_url:
            raise pytest.UsageError(
                "TEST_DATABASE_URL is set but TEST_APP_DATABASE_URL is not: the tests run as "
                "the application role; set TEST_APP_DATABASE_URL=postgres://choregarden:"
                "<password>@<host>:<port>/<db> (the database part is ignored)."
            )
        cfg = environ.Env.db_url_config(url)
        app_cfg = environ.Env.db_url_config(app_url)
        yield PgServer(
            host=cfg["HOST"] or "127.0.0.1",
            port=int(cfg["PORT"] or 5432),
            user=cfg["USER"],
            password=cfg["PASSWORD"],
            dbname=cfg["NAME"],
            options={k: str(v) for k, v in cfg.get("OPTIONS", {}).items()},
            app_user=app_cfg["USER"],
            app_password=app_cfg["PASSWORD"],
        )
        return
    base = Path(tempfile.mkdtemp(prefix="choregarden-test-"))
    cluster = LocalCluster(base, database="choregarden")
    cluster.start()
    info = cluster.conninfo("owner")
    app_user, app_password = cluster.credentials("app")
    yield PgServer(
        host=str(info["host"]),
        port=int(info["port"]),
        user=str(info["user"]),
        password=str(info["password"]),
        dbname=str(info["dbname"]),
        options={"sslmode": "verify-full", "sslrootcert": str(cluster.ca_file)},
        cluster=cluster,
        app_user=app_user,
        app_password=app_password,
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
