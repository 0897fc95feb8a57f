"""`devdb start --with-pgbouncer --with-replica`: the real parts, started, reached, stopped (D9)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dbops.localdb import LocalCluster
from dbops.localdb.pgbouncer import LocalPgBouncer, running_pgbouncers
from dbops.localdb.reaper import destroy_with_this_process
from tests.helpers import run_manage


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    base = Path(tempfile.mkdtemp(prefix="choregarden-devdb-scale-"))
    c = LocalCluster(base)
    destroy_with_this_process(c)  # also when the run is killed
    yield c
    c.destroy()
    shutil.rmtree(base, ignore_errors=True)


def devdb(cluster: LocalCluster, *args: str, **extra: str) -> object:
    env = {**os.environ, "DEVDB_DIR": str(cluster.requested_dir), "DJANGO_ENV": "development"}
    for name in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "DB_POOLER", "REPLICA_DATABASE_URL"):
        env.pop(name, None)
    env.update(extra)
    return run_manage("devdb", *args, env=env)


def test_start_with_pgbouncer_and_replica_then_status_url_and_stop(cluster: LocalCluster) -> None:
    start = devdb(cluster, "start", "--with-pgbouncer", "--with-replica")
    assert start.returncode == 0, start.stderr
    assert "Streaming replica made and started" in start.stdout
    assert "PgBouncer started" in start.stdout
    assert "transaction pooling" in start.stdout

    status = devdb(cluster, "status", "--json")
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["pgbouncer"]["running"] is True
    assert info["pgbouncer"]["pool_mode"] == "transaction"
    assert info["replica"]["running"] and info["replica"]["streaming"]
    assert info["replica"]["in_recovery"] is True
    assert info["replica"]["lag_bytes"] is not None

    password = cluster.state().app_password
    masked = devdb(cluster, "url", "--via", "pgbouncer")
    assert f"********@127.0.0.1:{info['pgbouncer']['port']}/" in masked.stdout
    assert password not in masked.stdout + masked.stderr
    url = devdb(cluster, "url", "--via", "pgbouncer", "--reveal").stdout.strip()
    # Through PgBouncer: TLS verified by the local CA, the app role, a server on another port.
    with psycopg.connect(
        url, sslmode="verify-full", sslrootcert=str(cluster.ca_file), prepare_threshold=None
    ) as conn:
        user, port, ssl = conn.execute(
            "SELECT current_user, inet_server_port(), ssl FROM pg_stat_ssl"
            " WHERE pid = pg_backend_pid()"
        ).fetchone()
    assert (user, port, ssl) == ("choregarden", cluster.state().port, True)  # server TLS too
    replica_url = devdb(cluster, "url", "--via", "replica", "--reveal").stdout.strip()
    with psycopg.connect(
        replica_url, sslmode="verify-full", sslrootcert=str(cluster.ca_file)
    ) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)

    stop = devdb(cluster, "stop")
    assert stop.returncode == 0, stop.stderr
    assert not cluster.pgbouncer.running()
    assert not cluster.replica.running()
    assert not cluster.running()
    again = devdb(cluster, "start", "--with-pgbouncer", "--with-replica")
    assert again.returncode == 0, again.stderr
    assert "Streaming replica started" in again.stdout
    assert cluster.pgbouncer.running() and cluster.replica.running()


def test_clients_without_tls_are_refused_by_pgbouncer(cluster: LocalCluster) -> None:
    assert devdb(cluster, "start", "--with-pgbouncer").returncode == 0
    info = {**cluster.pgbouncer.conninfo("app"), "sslmode": "disable"}
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**info).close()
    wrong = {**cluster.pgbouncer.conninfo("app"), "password": "not-the-password"}
    with pytest.raises(psycopg.OperationalError, match="SASL authentication failed"):
        psycopg.connect(**wrong).close()


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("url", "--via", "pgbouncer", "--role", "owner"), 1, "PgBouncer serves the application"),
        (("stop", "--with-replica"), 2, "--with-replica does not go with `devdb stop`"),
        (("status", "--via", "replica"), 2, "--via does not go with `devdb status`"),
        (("url", "--via", "nowhere"), 2, "invalid choice"),
    ],
)
def test_wrong_input_is_refused_with_what_to_do(
    cluster: LocalCluster, args: tuple[str, ...], code: int, says: str
) -> None:
    proc = devdb(cluster, *args)
    assert proc.returncode == code
    assert says in proc.stderr


def test_a_part_never_set_up_is_named_with_the_command_that_makes_it(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path / "db")
    destroy_with_this_process(c)
    try:
        assert devdb(c, "start").returncode == 0
        for via, flag in (("pgbouncer", "--with-pgbouncer"), ("replica", "--with-replica")):
            proc = devdb(c, "url", "--via", via)
            assert proc.returncode == 1
            assert f"devdb start {flag}" in proc.stderr
    finally:
        c.destroy()


def test_a_missing_pgbouncer_is_named_before_anything_starts(tmp_path: Path) -> None:
    proc = devdb(
        LocalCluster(tmp_path / "db"),
        "start",
        "--with-pgbouncer",
        PGBOUNCER_BIN=str(tmp_path / "no-pgbouncer"),
    )
    assert proc.returncode == 1
    assert "apt-get install pgbouncer" in proc.stderr
    assert not (tmp_path / "db").exists()


def test_db_pooler_on_the_local_database_goes_through_its_pgbouncer(cluster: LocalCluster) -> None:
    start = devdb(cluster, "start", DB_POOLER="pgbouncer")
    assert start.returncode == 0, start.stderr
    assert "timeouts: choregarden's defaults" in start.stdout
    env = {**os.environ, "DEVDB_DIR": str(cluster.requested_dir), "DJANGO_ENV": "development"}
    for name in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "REPLICA_DATABASE_URL"):
        env.pop(name, None)
    env["DB_POOLER"] = "pgbouncer"
    code = (
        "from django.db import connection as c; c.ensure_connection();"
        "print(c.connection.info.port, c.settings_dict['DISABLE_SERVER_SIDE_CURSORS']);"
        "cur = c.cursor(); cur.execute('SHOW statement_timeout'); print(cur.fetchone()[0])"
    )
    proc = run_manage("shell", "-c", code, env=env)
    assert proc.returncode == 0, proc.stderr
    port, no_cursors, timeout = proc.stdout.split()[-3:]
    assert int(port) == cluster.pgbouncer.port()
    assert (no_cursors, timeout) == ("True", "30s")


def test_stop_finds_every_pgbouncer_of_the_cluster_even_without_its_pid_file(
    cluster: LocalCluster,
) -> None:
    """A start interrupted before PgBouncer wrote its pid file leaves nothing running."""
    assert devdb(cluster, "start").returncode == 0
    second = LocalPgBouncer(cluster, pool_size=1, name="pgbouncer-second")
    second.start()
    second.pid_file.unlink()
    assert running_pgbouncers(cluster.base_dir)
    assert devdb(cluster, "stop").returncode == 0
    assert running_pgbouncers(cluster.base_dir) == []


def test_urls_of_the_local_replica_and_pgbouncer_get_the_local_ca(cluster: LocalCluster) -> None:
    """As a URL at the primary does: `devdb url --via ...` works without DB_SSLROOTCERT."""
    assert devdb(cluster, "start", "--with-pgbouncer", "--with-replica").returncode == 0
    replica = devdb(cluster, "url", "--via", "replica", "--reveal").stdout.strip()
    pooled = devdb(cluster, "url", "--via", "pgbouncer", "--reveal").stdout.strip()
    env = {**os.environ, "DEVDB_DIR": str(cluster.requested_dir), "DJANGO_ENV": "development"}
    for name in ("MIGRATION_DATABASE_URL", "DB_SSLROOTCERT"):
        env.pop(name, None)
    env.update(DATABASE_URL=pooled, DB_POOLER="pgbouncer", REPLICA_DATABASE_URL=replica)
    health = run_manage("dbhealth", "--database", "replica", env=env)
    assert health.returncode == 0, health.stdout + health.stderr
    assert "replica " in health.stdout


def test_the_dev_server_refuses_a_replica_url_at_the_primary_in_one_line(
    cluster: LocalCluster,
) -> None:
    assert devdb(cluster, "start").returncode == 0
    env = {**os.environ, "DEVDB_DIR": str(cluster.requested_dir), "DJANGO_ENV": "development"}
    env.pop("DATABASE_URL", None)
    env["REPLICA_DATABASE_URL"] = devdb(cluster, "url", "--reveal").stdout.strip()
    proc = run_manage("runserver", "127.0.0.1:0", "--noreload", env=env, timeout=60)
    assert proc.returncode == 1
    [line] = [x for x in proc.stderr.splitlines() if x.strip()]
    assert line.startswith("CommandError: REPLICA_DATABASE_URL points at a primary")
    assert cluster.state().app_password not in proc.stderr
