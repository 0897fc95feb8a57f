"""A real server (`manage.py runserver`) on a throwaway cluster, for the fault tests.

The cluster is the project's own kind (dbops.localdb: SSL, the owner and application
roles), made in a temporary folder so that tests may stop it, lock its tables and
terminate its sessions. The server runs the fault views (tests/dbops/web/fault_urls.py) as
the application role, with the pool and settings each test gives it, and logs to a file.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from dbops.localdb import LocalCluster
from dbops.localdb.cluster import free_port
from dbops.localdb.reaper import destroy_with_this_process
from sqlmigrations.lib import processes
from tests.helpers import REPO

TABLE = "CREATE TABLE fault_rows (id bigserial PRIMARY KEY, note text NOT NULL)"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str


def get(url: str, timeout: float) -> Answer:
    """GET `url`; a request still unanswered after `timeout` seconds fails the test."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return Answer(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as err:
        return Answer(err.code, dict(err.headers), err.read().decode())


def make_cluster(folder: Path) -> LocalCluster:
    cluster = LocalCluster(folder, database="faults")
    cluster.start()
    destroy_with_this_process(cluster)  # also when the run is killed
    with psycopg.connect(**cluster.conninfo("owner"), autocommit=True) as conn:
        conn.execute(TABLE)
    return cluster


def owner_sql(cluster: LocalCluster, statement: str, params: Any = None) -> list[Any]:
    with psycopg.connect(**cluster.conninfo("owner"), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def terminate_app_sessions(cluster: LocalCluster) -> int:
    """pg_terminate_backend on every session of the application role; return how many."""
    rows = cluster_superuser_sql(
        cluster,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE usename = 'choregarden' AND datname = 'faults'",
    )
    return int(rows[0][0])


def cluster_superuser_sql(cluster: LocalCluster, statement: str, params: Any = None) -> list[Any]:
    """As the superuser, who sees every session's query (the owner sees only its own)."""
    with psycopg.connect(**cluster.conninfo("superuser"), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def wait_for_session(cluster: LocalCluster, query_part: str, timeout: float = 30) -> int:
    """Return the pid of the application's session whose last query contains `query_part`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = cluster_superuser_sql(
            cluster,
            "SELECT pid FROM pg_stat_activity WHERE usename = 'choregarden' "
            "AND query LIKE %s AND pid <> pg_backend_pid()",
            [f"%{query_part}%"],
        )
        if rows:
            return int(rows[0][0])
        time.sleep(0.05)
    raise AssertionError(f"no session ran {query_part!r}")


@dataclass
class FaultServer:
    cluster: LocalCluster
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    def log(self) -> str:
        return self.log_file.read_text()

    def get(self, path: str, timeout: float = 60) -> Answer:
        return get(self.url + path, timeout)

    def start(self) -> FaultServer:
        self.port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DB_", "DATABASE_", "MIGRATION_", "REPLICA_", "DJANGO_"))
        }
        env.update(
            DJANGO_ENV="test",
            DJANGO_SETTINGS_MODULE="tests.dbops.web.fault_settings",
            DATABASE_URL=self.cluster.url("app"),
            DB_SSLMODE="verify-full",
            DB_SSLROOTCERT=str(self.cluster.ca_file),
            DEVDB_DIR=str(self.folder / "no-devdb"),
            ENV_FILE=str(self.folder / "no.env"),
            PYTHONPATH=str(REPO),
            LOG_LEVEL="INFO",
            DB_POOL="true",
            **self.env,
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("w") as log:
            self.proc = processes.popen(
                [
                    sys.executable,
                    str(REPO / "manage.py"),
                    "runserver",
                    "--noreload",
                    f"127.0.0.1:{self.port}",
                ],
                cwd=self.folder,
                env=env,
                stdout=log,
                stderr=processes.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                if self.get("/rows/", timeout=10).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the server did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc)
