"""The local cluster: lifecycle, crash recovery, taken ports, SSL-only access, both roles."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import stat
import struct
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dbops.localdb import LocalCluster
from dbops.localdb.certs import write_certificates
from dbops.localdb.reaper import destroy_with_this_process
from dbops.roles.provision import PASSWORD_STATEMENTS, ensure_role
from tests.helpers import run_manage


@pytest.fixture(scope="module")
def made() -> Iterator[tuple[LocalCluster, str]]:
    """One cluster for the module, and what its first `start` said."""
    base = Path(tempfile.mkdtemp(prefix="choregarden-devdb-test-"))
    c = LocalCluster(base)
    destroy_with_this_process(c)  # also when the run is killed
    first = c.start()
    yield c, first
    c.destroy()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cluster(made: tuple[LocalCluster, str]) -> LocalCluster:
    """The module's cluster, running whichever test ran before (a test may stop it)."""
    c, _ = made
    c.start()
    return c


def can_connect(c: LocalCluster, role: str = "app", **overrides: object) -> bool:
    info = {**c.conninfo(role), **overrides}
    try:
        with psycopg.connect(**info, connect_timeout=5) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_it_creates_and_starts_a_cluster(
    made: tuple[LocalCluster, str], cluster: LocalCluster
) -> None:
    assert made[1] == "created and started"
    assert cluster.running()
    assert can_connect(cluster)


def test_start_on_a_running_cluster_is_a_no_op(cluster: LocalCluster) -> None:
    pid = cluster.pid()
    assert cluster.start() == "already running"
    assert cluster.pid() == pid


def test_both_roles_can_log_in_to_the_database(cluster: LocalCluster) -> None:
    for role, expected in (("app", "choregarden"), ("owner", "choregarden_owner")):
        with psycopg.connect(**cluster.conninfo(role)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (expected,)
            assert conn.execute("SELECT current_database()").fetchone() == ("choregarden_dev",)


def test_the_application_role_cannot_create_tables(cluster: LocalCluster) -> None:
    with (
        psycopg.connect(**cluster.conninfo("app")) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CREATE TABLE t_not_allowed (id int)")


def test_a_non_ssl_tcp_connection_is_refused(cluster: LocalCluster) -> None:
    info = {**cluster.conninfo("app"), "sslmode": "disable"}
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(**info, connect_timeout=5)


def test_verify_full_with_the_generated_ca_succeeds(cluster: LocalCluster) -> None:
    with psycopg.connect(**cluster.conninfo("app")) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)
        assert conn.pgconn.ssl_in_use


def test_a_wrong_ca_is_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    other = write_certificates(tmp_path / "other")
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(**{**cluster.conninfo("app"), "sslrootcert": str(other["ca"])})


def test_verify_full_refuses_a_server_under_another_name(cluster: LocalCluster) -> None:
    # Same server and CA, but reached as a name its certificate does not carry: verify-full
    # checks the host name too (verify-ca would not), which is what stops a man in the middle.
    info = {**cluster.conninfo("app"), "host": "db.not-this-server.test", "hostaddr": "127.0.0.1"}
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        psycopg.connect(**info, connect_timeout=5)


def test_a_wrong_password_is_refused(cluster: LocalCluster) -> None:
    assert not can_connect(cluster, password="wrong-password")


def test_stop_then_start_again(cluster: LocalCluster) -> None:
    assert cluster.stop() == "stopped"
    assert not cluster.running()
    assert cluster.stop() == "not running"
    assert cluster.start() == "started"
    assert can_connect(cluster)


def test_it_restarts_after_the_postmaster_was_killed(cluster: LocalCluster) -> None:
    pid = cluster.pid()
    assert pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (cluster.data_dir / "postmaster.pid").exists()  # stale, as after a crash
    assert not cluster.running()
    assert cluster.start() == "started"
    assert can_connect(cluster)


def test_it_moves_to_a_free_port_when_its_port_is_taken(cluster: LocalCluster) -> None:
    cluster.stop()
    old_port = cluster.state().port
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        assert cluster.start() == "started"
    assert cluster.state().port != old_port
    assert can_connect(cluster)


def test_a_restart_keeps_its_port_when_clients_were_connected(cluster: LocalCluster) -> None:
    # A stop closes the clients' connections from the server's side; until the clients
    # close theirs, the server's ends hold the port (FIN_WAIT2). A running `make serve`
    # or `runserver` keeps the old port in its settings, so a restart that moved would
    # cut it off until it is restarted too.
    cluster.start()
    port = cluster.state().port
    clients = [psycopg.connect(**cluster.conninfo("app"), connect_timeout=5) for _ in range(3)]
    for client in clients:
        client.execute("SELECT 1")
    cluster.stop()  # the clients have not noticed yet, as an idle pool has not

    try:
        assert cluster.start() == "started"
    finally:
        for client in clients:
            client.close()

    assert cluster.state().port == port
    assert can_connect(cluster)


def test_its_state_does_not_show_the_passwords(cluster: LocalCluster) -> None:
    cluster.start()
    state = cluster.state()

    shown = repr(state)

    assert str(state.port) in shown
    for password in (state.superuser_password, state.owner_password, state.app_password):
        assert password not in shown


def test_the_devdb_command_reports_status_and_masks_the_url(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    env = {**os.environ, "DEVDB_DIR": str(cluster.requested_dir), "DJANGO_ENV": "development"}
    env.pop("DATABASE_URL", None)
    status = run_manage("devdb", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert "running: True" in status.stdout
    url = run_manage("devdb", "url", env=env)
    password = cluster.state().app_password
    assert password not in url.stdout
    assert "********@127.0.0.1" in url.stdout
    revealed = run_manage("devdb", "url", "--reveal", env=env)
    assert password in revealed.stdout  # explicitly asked for, for scripts


def test_the_devdb_command_stops_and_reports_not_running(cluster: LocalCluster) -> None:
    env = {**os.environ, "DEVDB_DIR": str(cluster.requested_dir), "DJANGO_ENV": "development"}
    env.pop("DATABASE_URL", None)
    assert "stopped" in run_manage("devdb", "stop", env=env).stdout
    status = run_manage("devdb", "status", env=env)
    assert status.returncode == 3
    assert "running: False" in status.stdout
    # A command that needs it says so in one line, with the command that starts it.
    down = run_manage("showmigrations", env=env)
    assert down.returncode == 1
    [line] = down.stderr.splitlines()
    assert line.startswith("CommandError: cannot connect to the local database choregarden@")
    assert line.endswith(": Connection refused. Start it: python manage.py devdb start")
    start = run_manage("devdb", "start", env=env)
    assert start.returncode == 0, start.stderr
    assert "started" in start.stdout


def test_it_names_what_to_install_when_binaries_are_missing(tmp_path: Path) -> None:
    env = {**os.environ, "PG_BINDIR": str(tmp_path), "DEVDB_DIR": str(tmp_path / "db")}
    env.pop("DATABASE_URL", None)
    proc = run_manage("devdb", "start", env=env)
    assert proc.returncode == 1
    assert f"PG_BINDIR={tmp_path}" in proc.stderr
    assert "apt-get install postgresql" in proc.stderr
    assert "brew install postgresql" in proc.stderr
    assert not (tmp_path / "db").exists()


def test_check_explains_how_to_get_a_database_when_none_exists(tmp_path: Path) -> None:
    env = {**os.environ, "DEVDB_DIR": str(tmp_path / "none"), "DJANGO_ENV": "development"}
    env.pop("DATABASE_URL", None)
    proc = run_manage("check", env=env)
    assert proc.returncode == 1
    assert "dbops.E001" in proc.stderr
    assert "manage.py devdb start" in proc.stderr


def test_its_secret_files_are_the_users_alone(cluster: LocalCluster) -> None:
    cluster.start()
    me = os.geteuid()
    folder = cluster.base_dir.stat()
    assert (folder.st_uid, stat.S_IMODE(folder.st_mode)) == (me, 0o755)
    state = cluster.state_file.stat()
    assert (state.st_uid, stat.S_IMODE(state.st_mode)) == (me, 0o600)
    assert stat.S_IMODE((cluster.cert_dir / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((cluster.data_dir / "pg_hba.conf").stat().st_mode) == 0o600
    leftovers = [p.name for p in cluster.base_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no password file, no temporary file


def handshake(c: LocalCluster, version: ssl.TLSVersion, ciphers: str) -> str:
    """Offer only `version` and `ciphers` (OpenSSL names); return the cipher agreed on."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_ciphers(ciphers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # offering TLS 1.1 on purpose
        context.minimum_version = context.maximum_version = version
    with socket.create_connection(("127.0.0.1", c.state().port), timeout=10) as sock:
        sock.sendall(struct.pack("!ii", 8, 80877103))  # PostgreSQL's SSLRequest
        assert sock.recv(1) == b"S"
        with context.wrap_socket(sock) as tls:
            return str(tls.cipher()[0])


def assert_aead_only(c: LocalCluster) -> None:
    tls12 = ssl.TLSVersion.TLSv1_2
    assert handshake(c, tls12, "ECDHE-ECDSA-AES128-GCM-SHA256") == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert handshake(c, tls12, "ECDHE-ECDSA-CHACHA20-POLY1305") == "ECDHE-ECDSA-CHACHA20-POLY1305"
    for cbc in ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA"):
        with pytest.raises(ssl.SSLError, match="alert handshake failure"):
            handshake(c, tls12, cbc)
    with pytest.raises(ssl.SSLError, match="alert protocol version"):
        handshake(c, ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0")


def test_it_speaks_tls_1_2_and_up_with_aead_ciphers_only(cluster: LocalCluster) -> None:
    cluster.start()
    assert_aead_only(cluster)


def test_start_gives_a_running_cluster_of_an_earlier_release_the_ciphers(
    cluster: LocalCluster,
) -> None:
    cluster.start()
    conf = cluster.data_dir / "choregarden.conf"
    old = "".join(line for line in conf.read_text().splitlines(True) if "ssl_ciphers" not in line)
    conf.write_text(old)
    cluster.run([cluster.binary("pg_ctl"), "reload", "-D", str(cluster.data_dir)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the server reloads when it gets to it
        with contextlib.suppress(ssl.SSLError):
            handshake(cluster, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-SHA")
            break
        time.sleep(0.1)
    assert handshake(cluster, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-SHA")  # CBC, as before
    assert cluster.start() == "already running"
    assert_aead_only(cluster)


def password_statements(c: LocalCluster) -> list[str]:
    """What the application role (pg_monitor) reads of role statements with a password."""
    with psycopg.connect(**c.conninfo("app")) as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_statements WHERE query ~* %s", [PASSWORD_STATEMENTS]
        ).fetchall()
    return [row[0] for row in rows]


def test_the_application_role_reads_no_password_verifier_in_the_statistics(
    cluster: LocalCluster,
) -> None:
    cluster.start()
    assert cluster.start() == "already running"  # both roles updated again
    assert password_statements(cluster) == []
    # What an earlier release left (its statements were tracked) goes at the next start.
    with psycopg.connect(**cluster.conninfo("superuser"), autocommit=True) as conn:
        conn.execute("ALTER ROLE choregarden PASSWORD 'md5d41d8cd98f00b204e9800998ecf8427e'")
        ensure_role(conn, "choregarden", cluster.state().app_password, "LOGIN")  # back
    [left] = password_statements(cluster)
    assert "md5d41d8cd98f00b204e9800998ecf8427e" in left
    assert cluster.start() == "already running"
    assert password_statements(cluster) == []
