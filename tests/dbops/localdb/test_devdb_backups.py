"""Backups of the development database that `make run` makes, after a second `devdb start`.

The second start provisions the roles again while pg_stat_statements exists: the
application role must get nothing on the extension's views, and a backup must still
verify and restore with its privileges.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dbops.localdb import LocalCluster
from dbops.localdb.reaper import destroy_with_this_process
from tests.helpers import assert_denied, run_manage

RELATION_ACL = "SELECT relname, relacl::text[] FROM pg_class WHERE relname = ANY(%s) ORDER BY 1"


@pytest.fixture(scope="module")
def devdb() -> Iterator[tuple[LocalCluster, dict[str, str]]]:
    """A development cluster as `make run` leaves it: started, migrated, stopped, started."""
    base = Path(tempfile.mkdtemp(prefix="choregarden-devdb-backups-"))
    env = {
        **os.environ,
        "DEVDB_DIR": str(base / "devdb"),
        "DJANGO_ENV": "development",
        "BACKUP_DIR": str(base / "backups"),
        "DB_POOL": "false",
    }
    for name in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "DB_SSLMODE", "DB_SSLROOTCERT"):
        env.pop(name, None)
    cluster = LocalCluster(base / "devdb")
    destroy_with_this_process(cluster)  # also when the run is killed
    try:
        for step in (("devdb", "start"), ("migrate", "--no-input"), ("devdb", "stop")):
            proc = run_manage(*step, env=env)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        # The next day: the extension exists now, and the roles are provisioned again.
        proc = run_manage("devdb", "start", env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield cluster, env
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


def superuser_rows(cluster: LocalCluster, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(**cluster.conninfo("superuser")) as conn:
        return conn.execute(query, params).fetchall()


def test_a_second_start_grants_nothing_on_extension_views(devdb) -> None:
    cluster, _env = devdb
    acls = dict(
        superuser_rows(cluster, RELATION_ACL, ["pg_stat_statements", "pg_stat_statements_info"])
    )
    assert set(acls) == {"pg_stat_statements", "pg_stat_statements_info"}
    for name, acl in acls.items():
        assert not [item for item in acl if item.startswith("choregarden=")], (name, acl)


def test_the_application_role_only_reads_the_migration_history(devdb) -> None:
    cluster, _env = devdb
    with psycopg.connect(**cluster.conninfo("app"), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 0
        assert_denied(
            conn,
            [
                "DELETE FROM django_migrations WHERE id = 1",
                "UPDATE django_migrations SET name = name",
                "INSERT INTO django_migrations (app, name, applied) VALUES ('x', 'y', now())",
                "DELETE FROM flyway_schema_history WHERE installed_rank = 1",
            ],
        )


def test_backups_verify_and_restore_with_privileges(devdb) -> None:
    cluster, env = devdb
    with psycopg.connect(**cluster.conninfo("owner"), autocommit=True) as conn:
        conn.execute("INSERT INTO migration_test (name) VALUES ('restored with its grants')")

    for step in (
        ("backup", "create"),
        ("backup", "verify"),
        ("backup", "verify", "--live"),
        ("backup", "restore", "latest", "--database", "restore_test1"),
    ):
        proc = run_manage(*step, env=env)
        assert proc.returncode == 0, f"{step}: {proc.stdout}{proc.stderr}"
        assert "Done!" in proc.stdout

    with psycopg.connect(**cluster.conninfo("app", "restore_test1")) as conn:
        rows = conn.execute("SELECT name FROM migration_test").fetchall()
        assert ("restored with its grants",) in rows
        conn.execute("INSERT INTO migration_test (name) VALUES ('written after the restore')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM django_migrations")
