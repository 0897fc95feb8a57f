"""Session fixtures: a real PostgreSQL server for the whole run (D6).

TEST_DATABASE_URL picks an existing server; otherwise a throwaway SSL cluster is made by
the same code as `manage.py devdb`, in a temporary folder, and removed at the end.
TEST_DB_POOLER=pgbouncer puts the cluster's PgBouncer (transaction pooling, TLS) between
the tests and the server: the application role's connections, in-process and in the
`manage.py` processes the tests start, go through it as DB_POOLER=pgbouncer makes them;
the owner's (set-up, migrations, the flush after a transactional test) stay direct.

The test database is created and migrated by the owner role; the tests themselves run as
the application role `choregarden` (CRUD, no DDL), as the product does (D4).
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from dbops.connections.config import LOCAL_KEY, OWNER_ALIAS, ConnInfo, from_url
from dbops.connections.databases import drop_database
from dbops.connections.waits import lift_timeouts
from dbops.localdb import LocalCluster
from dbops.localdb.pgbouncer import LocalPgBouncer
from dbops.localdb.reaper import destroy_with_this_process
from dbops.localdb.replica import LocalReplica
from tests.sqlproject import SqlProject, create_project, create_template, drop_project


@dataclass
class PgServer:
    """Where the test server is and how to reach it as the owner (or the application) role."""

    owner: ConnInfo
    app: ConnInfo
    cluster: LocalCluster | None = None
    pooler: str = ""  # "pgbouncer": the application's connections go through it...
    pooled: ConnInfo | None = None  # ...as this: the app role, at the pooler's address

    @property
    def host(self) -> str:
        return self.owner.host

    @property
    def port(self) -> int:
        return self.owner.port

    @property
    def user(self) -> str:
        return self.owner.user

    @property
    def password(self) -> str:
        return self.owner.password

    @property
    def dbname(self) -> str:
        return self.owner.dbname

    @property
    def app_user(self) -> str:
        return self.app.user

    @property
    def app_password(self) -> str:
        return self.app.password

    @property
    def options(self) -> dict[str, str]:
        """The SSL keywords every connection to the server takes."""
        pairs = (("sslmode", self.owner.sslmode), ("sslrootcert", self.owner.sslrootcert))
        return {key: value for key, value in pairs if value}

    def credentials(self, role: str = "owner") -> tuple[str, str]:
        info = self.conninfo(role=role)
        return info.user, info.password

    def conninfo(self, dbname: str | None = None, role: str = "owner") -> ConnInfo:
        return (self.app if role == "app" else self.owner).on(dbname or self.dbname)

    def url(self, dbname: str | None = None, role: str = "owner") -> str:
        return self.conninfo(dbname, role).url()

    def ssl_env(self) -> dict[str, str]:
        """DB_SSLMODE/DB_SSLROOTCERT for a `manage.py` subprocess, from the server's options."""
        names = {"sslmode": "DB_SSLMODE", "sslrootcert": "DB_SSLROOTCERT"}
        return {names[key]: value for key, value in self.options.items()}


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
        owner = from_url(url, "TEST_DATABASE_URL", sslmode="prefer")
        app = from_url(app_url, "TEST_APP_DATABASE_URL", sslmode=owner.sslmode)
        yield PgServer(owner=owner, app=replace(app, dbname=owner.dbname))
        return
    pooler = os.environ.get("TEST_DB_POOLER", "")
    if pooler not in ("", "pgbouncer"):
        raise pytest.UsageError(f"TEST_DB_POOLER={pooler!r}: use pgbouncer, or leave it unset.")
    base = Path(tempfile.mkdtemp(prefix="choregarden-test-"))
    cluster = LocalCluster(base, database="choregarden")
    cluster.start()
    destroy_with_this_process(cluster)  # also when the run is killed
    pooled = None
    if pooler:
        cluster.pgbouncer.start()
        pooled = cluster.pgbouncer.conninfo("app")
    yield PgServer(
        owner=cluster.conninfo("owner"),
        app=cluster.conninfo("app"),
        cluster=cluster,
        pooler=pooler,
        pooled=pooled,
    )
    cluster.destroy()
    shutil.rmtree(base, ignore_errors=True)


def _on_server(config: dict[str, Any], info: ConnInfo) -> None:
    """Point a DATABASES entry at the test server as `info`'s role (not the local cluster)."""
    config.pop(LOCAL_KEY, None)
    config.update(
        NAME=info.dbname, USER=info.user, PASSWORD=info.password, HOST=info.host, PORT=info.port
    )
    options = config.setdefault("OPTIONS", {})
    options.update(sslmode=info.sslmode)
    if info.sslrootcert:
        options["sslrootcert"] = info.sslrootcert


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request: pytest.FixtureRequest, pg_server: PgServer) -> None:
    """Point Django's databases at the test server; the owner creates and migrates it."""
    from django.conf import settings

    config = settings.DATABASES["default"]
    _on_server(config, pg_server.owner)
    worker = getattr(request.config, "workerinput", {}).get("workerid")
    if worker:
        # `make test` runs a worker a core (pytest-xdist): on a shared TEST_DATABASE_URL
        # server each needs a test database of its own (a local cluster is each worker's).
        config.setdefault("TEST", {})["NAME"] = f"test_{config['NAME']}_{worker}"
    # The same connection whether or not this checkout has a local cluster (whose settings
    # carry the application role's timeouts): a test's transaction may sit idle longer
    # than DB_IDLE_IN_TRANSACTION_TIMEOUT while a subprocess runs. The timeouts are tested
    # through a real server (tests/dbops/web/test_database_trouble.py).
    lift_timeouts(config)
    _on_server(settings.DATABASES[OWNER_ALIAS], pg_server.owner)
    # Django's test set-up migrates the new database through `default`, which is the owner
    # until the tests start; the owner's own alias only knows the test database after it.
    settings.SQL_MIGRATIONS["DATABASE"] = "default"


def _set_role(pg_server: PgServer, role: str) -> None:
    """Point the default connection at `role`, closing it (and its pool) first.

    Behind TEST_DB_POOLER the application role reaches the server through the pooler,
    with the settings DB_POOLER gives it; the owner connects directly.
    """
    from django.db import connections

    from dbops.connections.config import DatabaseEnvironment, behind_pooler

    connection = connections["default"]
    connection.close()
    connection.close_pool()  # a pool keeps the credentials it was made with
    info = pg_server.pooled if role == "app" and pg_server.pooled else pg_server.conninfo(role=role)
    config = connection.settings_dict
    config.update(USER=info.user, PASSWORD=info.password, PORT=info.port)
    if not pg_server.pooler:
        return
    if role == "app":
        behind_pooler(config, DatabaseEnvironment(pooler=pg_server.pooler, conn_max_age=0))
    else:
        for key in ("POOLER", "DISABLE_SERVER_SIDE_CURSORS"):
            config.pop(key, None)
        config["OPTIONS"].pop("prepare_threshold", None)


def _owner_alias(pg_server: PgServer, name: str) -> None:
    """Give the owner's alias a settings dict of its own on the test database `name`."""
    from django.db import connections

    default = connections["default"].settings_dict
    owner = {
        **copy.deepcopy(default),
        "NAME": name,
        "USER": pg_server.user,
        "PASSWORD": pg_server.password,
    }
    owner["OPTIONS"] = {k: v for k, v in owner["OPTIONS"].items() if k != "pool"}
    lift_timeouts(owner)
    connection = connections[OWNER_ALIAS]
    connection.close()
    connections.settings[OWNER_ALIAS] = owner
    connection.settings_dict = owner


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
    # Commands that migrate (the `owner` alias) find the owner on the test database.
    _owner_alias(pg_server, config["NAME"])
    settings.SQL_MIGRATIONS["DATABASE"] = OWNER_ALIAS
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
        connections[OWNER_ALIAS].close()
        _set_role(pg_server, "owner")  # the owner drops the test database
    settings.SQL_MIGRATIONS["DATABASE"] = "default"


@pytest.fixture
def manage_env(pg_server: PgServer, django_db_setup: None) -> dict[str, str]:
    """Environment for a `manage.py` subprocess on the test database (app role + owner)."""
    from django.conf import settings

    env = dict(os.environ, DJANGO_ENV="test", DB_POOL="false")
    name = settings.DATABASES["default"]["NAME"]
    env["DATABASE_URL"] = pg_server.url(name, role="app")
    env["MIGRATION_DATABASE_URL"] = pg_server.url(name)
    env.update(pg_server.ssl_env())
    if pg_server.pooled:
        env["DATABASE_URL"] = pg_server.pooled.url(database=name)
        env["DB_POOLER"] = pg_server.pooler
        env.pop("DB_POOL")  # the pooler pools
    return env


@pytest.fixture(scope="session")
def sqlproject_template(
    tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer
) -> Iterator[str]:
    """A database with Django's own apps migrated, copied for each throwaway project."""
    name = create_template(tmp_path_factory.mktemp("sqlproject-template"), pg_server)
    yield name
    drop_database(pg_server.conninfo(), name)


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


def _local_cluster(pg_server: PgServer, what: str) -> LocalCluster:
    if pg_server.cluster is None:
        pytest.fail(
            f"The {what} tests need the local test cluster (they start its {what}): unset "
            "TEST_DATABASE_URL to run them."
        )
    return pg_server.cluster


@pytest.fixture(scope="session")
def streaming_replica(pg_server: PgServer) -> Iterator[LocalReplica]:
    """A real hot standby of the test cluster (pg_basebackup -R, a slot, SSL), for the run.

    It replicates the whole cluster, the test databases made later included; the router
    and health tests read from it.
    """
    replica = _local_cluster(pg_server, "replica").replica
    replica.start()
    yield replica
    replica.destroy()


@pytest.fixture(scope="session")
def local_pgbouncer(pg_server: PgServer) -> Iterator[LocalPgBouncer]:
    """The test cluster's PgBouncer (transaction pooling, TLS both sides), for the run."""
    bouncer = _local_cluster(pg_server, "PgBouncer").pgbouncer
    bouncer.start()
    yield bouncer
    if not pg_server.pooler:  # under TEST_DB_POOLER the whole run goes through it
        bouncer.stop()
