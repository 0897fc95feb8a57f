"""PgBouncer in front of the local cluster, in transaction pooling mode, TLS on both sides (D9).

`devdb start --with-pgbouncer` writes its configuration into `<cluster>/pgbouncer` and
starts Debian's `pgbouncer` (PGBOUNCER_BIN names another binary) on a port of its own:

- clients must speak TLS, with the cluster's certificate (the local CA verifies it);
- PgBouncer speaks TLS to PostgreSQL and verifies the server's name against the local CA
  (verify-full);
- clients log in with SCRAM: the auth file holds the application role's SCRAM verifier, as
  PostgreSQL stores it (never the password), and PgBouncer logs in to PostgreSQL with the
  client's own SCRAM proof;
- pool_mode = transaction: a server connection belongs to a client for one transaction
  only, so nothing a session sets may outlive a transaction (docs/scaling.md).

Only the application role is in the auth file: migrations and the owner's other jobs need a
session of their own (an advisory lock, multi-statement files) and connect directly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dbops.localdb.errors import LocalDBError
from dbops.localdb.files import make_private_folder, write_private
from dbops.localdb.parts import ClusterPart

if TYPE_CHECKING:
    from dbops.connections.config import ConnInfo
    from dbops.localdb.cluster import LocalCluster

DEFAULT_POOL_SIZE = 20
MAX_CLIENT_CONN = 500
INSTALL_HINT = (
    "PgBouncer is not installed: install it (`sudo apt-get install pgbouncer` on Debian or "
    "Ubuntu, `brew install pgbouncer` on macOS, `dnf install pgbouncer` on Fedora), or set "
    "PGBOUNCER_BIN to its binary."
)


def find_pgbouncer() -> str:
    """Return the pgbouncer binary: PGBOUNCER_BIN, else PATH, else Debian's /usr/sbin."""
    named = os.environ.get("PGBOUNCER_BIN", "").strip()
    if named:
        if not os.access(named, os.X_OK):
            raise LocalDBError(f"PGBOUNCER_BIN={named!r} is not an executable file: {INSTALL_HINT}")
        return named
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise LocalDBError(INSTALL_HINT)
    return found


class LocalPgBouncer(ClusterPart):
    """The local cluster's PgBouncer, in `<cluster>/pgbouncer`."""

    name = "PgBouncer"
    flag = "--with-pgbouncer"

    def __init__(
        self, cluster: LocalCluster, pool_size: int = DEFAULT_POOL_SIZE, name: str = "pgbouncer"
    ) -> None:
        """`name` is its folder in the cluster's: a second PgBouncer (tests, benchmarks)
        with another pool size runs beside the first under another name."""
        super().__init__(cluster, cluster.base_dir / name)
        self.pool_size = pool_size

    @property
    def run_dir(self) -> Path:
        """The folder PgBouncer itself writes (its pid file and log), its user's."""
        return self.base_dir / "run"

    @property
    def config_file(self) -> Path:
        return self.base_dir / "pgbouncer.ini"

    @property
    def auth_file(self) -> Path:
        return self.base_dir / "userlist.txt"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "pgbouncer.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "pgbouncer.log"

    def exists(self) -> bool:
        return self.state_file.exists()

    def conninfo(self, role: str = "app", database: str | None = None) -> ConnInfo:
        """The application role's connection through PgBouncer (TLS, the local CA)."""
        if role != "app":
            raise LocalDBError(
                f"PgBouncer serves the application role only, not {role!r}: the owner's jobs "
                "(migrations, backups) need a session of their own and connect directly."
            )
        return super().conninfo(role, database)

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> str:
        """Write the configuration and the auth file, start PgBouncer, wait for a login."""
        from dbops.localdb.cluster import START_TIMEOUT, free_port, port_taken

        if not self.cluster.running():
            raise LocalDBError(
                "PgBouncer pools connections to the local cluster, which is not running: "
                "run `python manage.py devdb start --with-pgbouncer`."
            )
        binary = find_pgbouncer()
        if self.running():
            self._write_auth_file()  # the passwords may have changed: reread on SIGHUP
            self._signal(signal.SIGHUP)
            return "already running"
        make_private_folder(self.base_dir)
        if not self.run_dir.exists():
            self.run_dir.mkdir(mode=0o700)
        self.cluster.chown(self.run_dir)
        self.pid_file.unlink(missing_ok=True)  # not running: a pid file left by a kill -9
        port = self.port() if self.exists() else free_port()
        for _attempt in range(3):
            if port_taken(port):
                port = free_port()
            self.save_port(port)
            self._write_config(port)
            self._write_auth_file()
            # -d: PgBouncer detaches and keeps running after this command, as the
            # postmaster does; `devdb stop` stops it.
            proc = self.cluster.run([binary, "-d", str(self.config_file)], check=False)
            if proc.returncode == 0:
                break
            if not port_taken(port):
                raise LocalDBError(
                    f"PgBouncer did not start (exit {proc.returncode}): "
                    f"{(proc.stderr or proc.stdout).strip()}"
                    f"{self.cluster.log_tail(self.log_file)}"
                )
        else:
            raise LocalDBError(
                f"PgBouncer did not start: no free port.{self.cluster.log_tail(self.log_file)}"
            )
        self._wait_for_login(time.monotonic() + START_TIMEOUT)
        return "started"

    def _write_config(self, port: int) -> None:
        from dbops.localdb.cluster import SSL_CIPHERS

        certs = self.cluster.cert_dir
        text = f"""\
; Written by `manage.py devdb start --with-pgbouncer`; rewritten on every start.
[databases]
* = host=127.0.0.1 port={self.cluster.state().port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
pidfile = {self.pid_file}
logfile = {self.log_file}
pool_mode = transaction
default_pool_size = {self.pool_size}
max_client_conn = {MAX_CLIENT_CONN}
auth_type = scram-sha-256
auth_file = {self.auth_file}
stats_users = {self.cluster.credentials("app")[0]}
; libpq-based drivers send it; PgBouncer 1.18 refuses the options parameter (timeouts come
; from the role's own settings behind a pooler: docs/scaling.md).
ignore_startup_parameters = extra_float_digits
client_tls_sslmode = require
client_tls_cert_file = {certs / "server.crt"}
client_tls_key_file = {certs / "server.key"}
client_tls_protocols = secure
client_tls_ciphers = {SSL_CIPHERS}
server_tls_sslmode = verify-full
server_tls_ca_file = {certs / "ca.crt"}
server_tls_protocols = secure
"""
        write_private(self.config_file, text.encode(), owner=self.cluster.run_as_ids())

    def _write_auth_file(self) -> None:
        """Write the application role's SCRAM verifier, read from the server's catalog."""
        import psycopg

        user = self.cluster.credentials("app")[0]
        with psycopg.connect(**self.cluster.conninfo("superuser", "postgres")) as conn:
            row = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [user]
            ).fetchone()
        if not row or not str(row[0] or "").startswith("SCRAM-SHA-256$"):
            raise LocalDBError(
                f"The role {user!r} has no SCRAM password on the local cluster: run "
                "`python manage.py devdb start` to provision it again."
            )
        line = f'"{user}" "{row[0]}"\n'
        write_private(self.auth_file, line.encode(), owner=self.cluster.run_as_ids())

    def _wait_for_login(self, deadline: float) -> None:
        import psycopg

        # The daemon writes its pid file a moment after `pgbouncer -d` returns: only a
        # missing process after this grace means it died.
        grace = time.monotonic() + 3
        while True:
            try:
                with psycopg.connect(**self.conninfo("app", "postgres")) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as err:
                now = time.monotonic()
                if now > deadline or (now > grace and not self.running()):
                    self.stop()
                    raise LocalDBError(
                        f"PgBouncer started but refused a login: {err}"
                        f"{self.cluster.log_tail(self.log_file)}"
                    ) from None
                time.sleep(0.05)

    def pid(self) -> int | None:
        """The PgBouncer of this folder, found by its configuration file on its command line.

        Not by its pid file alone: `pgbouncer -d` writes it a moment after it returns, so
        a start interrupted then would leave a PgBouncer that nothing could stop.
        """
        found = running_pgbouncers(self.base_dir)
        return found[0] if found else None

    def running(self) -> bool:
        return self.pid() is not None

    def _signal(self, signum: int) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signum)

    def stop(self) -> str:
        """Stop PgBouncer at once (SIGTERM: its immediate shutdown), as `pg_ctl -m fast`."""
        return "stopped" if stop_pgbouncers(self.base_dir) else "not running"


def running_pgbouncers(folder: Path) -> list[int]:
    """The pids of the PgBouncers whose configuration file is in `folder` (or under it)."""
    prefix = str(folder).encode() + b"/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"pgbouncer") and any(a.startswith(prefix) for a in argv):
            found.append(int(entry.name))
    return sorted(found)


def stop_pgbouncers(folder: Path) -> bool:
    """Stop every PgBouncer configured in `folder`; tell whether one was running."""
    from dbops.localdb.cluster import START_TIMEOUT

    pids = running_pgbouncers(folder)
    was_running = bool(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + START_TIMEOUT
    while pids:
        pids = [pid for pid in pids if _alive(pid)]
        if pids and time.monotonic() > deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.05)
    return was_running


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited: its parent has not reaped it yet
