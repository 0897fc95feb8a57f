"""Session fixtures: a real PostgreSQL server for the whole run (D6).

TEST_DATABASE_URL picks an existing server; otherwise a throwaway SSL cluster is made by
the same code as `manage.py devdb`, in a temporary folder, and removed at the end.

The test database is created and migrated by the owner role; the tests themselves run as
the application role `choregarden` (CRUD, no DDL), as the product does (D4).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import environ
import pytest

from dbops.connections.waits import lift_timeouts
from dbops.localdb import LocalCluster
from dbops.localdb.reaper import destroy_with_this_process
from tests.helpers import drop_database
from tests.sqlproject import SqlProject, create_project, create_template, drop_project


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

    def ssl_env(self) -> dict[str, str]:
        """DB_SSLMODE/DB_SSLROOTCERT for a `manage.py` subprocess, from the server's options."""
        names = {"sslmode": "DB_SSLMODE", "sslrootcert": "DB_SSLROOTCERT"}
        return {names[key]: value for key, value in self.options.items()}

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
    destroy_with_this_process(cluster)  # also when the run is killed
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
    # The same connection whether or not this checkout has a local cluster (whose settings
    # carry the application role's timeouts): a test's transaction may sit idle longer
    # than DB_IDLE_IN_TRANSACTION_TIMEOUT while a subprocess runs. The timeouts are tested
    # through a real server (tests/dbops/web/test_database_trouble.py).
    lift_timeouts(config)
    settings.MIGRATION_DATABASE = None


def _set_role(pg_server: PgServer, role: str) -> None:
    """Point the default connection at `role`, closing it (and its pool) first."""
    from django.db import connections

    connection = connections["default"]
    connection.close()
    connection.close_pool()  # a pool keeps the credentials it was made with
    user, password = pg_server.credentials(role)
    connection.settings_dict.update(USER=user, PASSWORD=password)


@contextmanager
def _as_owner(pg_server: PgServer) -> Iterator[None]:
    _set_role(pg_server, "owner")
    try:
        yield
    finally:
        _set_role(pg_server, "app")


@pytest.fixture(scope="session")
def django_db_setup(
    django_db_setup: None, django_db_blocker: Any, pg_server: PgServer
) -> Iterator[None]:
    """After the owner created and migrated the test database, run the tests as the app role."""
    import psycopg
    from django.conf import settings
    from django.db import connections
    from django.test import TransactionTestCase

    from dbops.roles.provision import grant_application_privileges

    config = connections["default"].settings_dict
    with (
        django_db_blocker.unblock(),
        psycopg.connect(**pg_server.conninfo(config["NAME"]), autocommit=True) as conn,
    ):
        grant_application_privileges(
            conn, database=config["NAME"], owner=pg_server.user, app=pg_server.app_user
        )
    # Commands that switch to the owner (migrate) find it on the test database.
    settings.MIGRATION_DATABASE = {
        **config,
        "USER": pg_server.user,
        "PASSWORD": pg_server.password,
        "OPTIONS": {k: v for k, v in config["OPTIONS"].items() if k != "pool"},
    }
    _set_role(pg_server, "app")
    # Django empties the tables after a transactional test with TRUNCATE and resets
    # sequences with setval, which only the owner may do (the app role must not): that
    # housekeeping alone runs as the owner.
    originals = {
        name: getattr(TransactionTestCase, name)
        for name in ("_fixture_teardown", "_reset_sequences")
    }

    def as_owner(method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _as_owner(pg_server):
                return method(*args, **kwargs)

        return wrapper

    for name, method in originals.items():
        setattr(TransactionTestCase, name, as_owner(method))
    yield
    for name, method in originals.items():
        setattr(TransactionTestCase, name, method)
    with django_db_blocker.unblock():
        _set_role(pg_server, "owner")  # the owner drops the test database
    settings.MIGRATION_DATABASE = None


@pytest.fixture
def manage_env(pg_server: PgServer, django_db_setup: None) -> dict[str, str]:
    """Environment for a `manage.py` subprocess on the test database (app role + owner)."""
    from django.conf import settings

    env = dict(os.environ, DJANGO_ENV="test", DB_POOL="false")
    name = settings.DATABASES["default"]["NAME"]
    env["DATABASE_URL"] = pg_server.url(name, role="app")
    env["MIGRATION_DATABASE_URL"] = pg_server.url(name)
    env.update(pg_server.ssl_env())
    return env


@pytest.fixture(scope="session")
def sqlproject_template(
    tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer
) -> Iterator[str]:
    """A database with Django's own apps migrated, copied for each throwaway project."""
    name = create_template(tmp_path_factory.mktemp("sqlproject-template"), pg_server)
    yield name
    drop_database(pg_server, name)


@pytest.fixture
def sqlproject(
    tmp_path: Path, pg_server: PgServer, sqlproject_template: str
) -> Iterator[SqlProject]:
    """A throwaway SQL migrations project (see tests/sqlproject.py) on a copy of the template."""
    project = create_project(tmp_path, pg_server, template=sqlproject_template)
    yield project
    drop_project(project)


@pytest.fixture
def empty_sqlproject(tmp_path: Path, pg_server: PgServer) -> Iterator[SqlProject]:
    """A throwaway SQL migrations project on an empty database (not even Django's tables)."""
    project = create_project(tmp_path, pg_server)
    yield project
    drop_project(project)
