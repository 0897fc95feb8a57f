"""Create, start, stop and destroy a local PostgreSQL cluster that only speaks SSL."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbops.connections.config import ConnInfo
from dbops.localdb.binaries import find_bindir
from dbops.localdb.errors import LocalDBError
from dbops.localdb.files import (
    check_private_folder,
    create_private,
    make_private_folder,
    read_private,
    write_private,
)
from sqlmigrations.lib import processes

if TYPE_CHECKING:
    from dbops.localdb.pgbouncer import LocalPgBouncer
    from dbops.localdb.replica import LocalReplica

DEFAULT_DATABASE = "choregarden_dev"
OWNER_ROLE = "choregarden_owner"
APP_ROLE = "choregarden"
SUPERUSER = "postgres"
# Streams WAL to the local replica (dbops.localdb.replica): REPLICATION, nothing else.
REPLICATOR_ROLE = "choregarden_replicator"
# The local PgBouncer's pooled clients and the pooler benchmark's direct clients (one
# server connection each) both fit, with room for the test and admin sessions.
MAX_CONNECTIONS = 300
START_TIMEOUT = 60
# TLS 1.2 with forward secrecy and authenticated encryption only (no CBC, no RSA key
# exchange); TLS 1.3's suites are all of that kind. OpenSSL's syntax (ssl_ciphers).
SSL_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"

HBA = """\
# Written by `manage.py devdb`: TCP only, SSL only, SCRAM passwords only.
hostssl all all 127.0.0.1/32 scram-sha-256
hostssl all all ::1/128      scram-sha-256
hostssl replication choregarden_replicator 127.0.0.1/32 scram-sha-256
hostnossl all all 0.0.0.0/0  reject
hostnossl all all ::/0       reject
"""


@dataclass
class State:
    port: int
    database: str
    # Out of the repr: a failed assertion or a traceback's locals would print them.
    superuser_password: str = field(repr=False)
    owner_password: str = field(repr=False)
    app_password: str = field(repr=False)
    # Clusters made before the replica existed have none until their next start.
    replicator_password: str = field(default="", repr=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_taken(port: int) -> bool:
    """Tell whether something listens on the port (connections closing on it do not count).

    As PostgreSQL binds its port, with SO_REUSEADDR: after a stop, the server's ends of
    connections its clients have not closed yet still hold the port, and a plain bind
    would move a restarted cluster away from the port running servers were given.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _run_as_user() -> str | None:
    # PostgreSQL refuses to run as root: run it as an unprivileged system user.
    if os.geteuid() != 0:
        return None
    return os.environ.get("DEVDB_RUN_AS", "postgres")


class LocalCluster:
    """A PostgreSQL cluster in a folder of its own, reachable over TCP with SSL."""

    def __init__(self, base_dir: Path, database: str = DEFAULT_DATABASE) -> None:
        self.run_as = _run_as_user()
        self.requested_dir = Path(base_dir).absolute()
        self.base_dir = self._usable_dir(self.requested_dir)
        self.database = database

    # -- layout ---------------------------------------------------------------
    def _usable_dir(self, wanted: Path) -> Path:
        # A checkout under /root is not reachable by the `postgres` user; then the
        # cluster lives in a folder of its own under /tmp, named after the checkout.
        # Anyone may create that name first: dbops.localdb.files refuses such a folder.
        if self.run_as is None or self._reachable_by_run_as(wanted):
            return wanted
        digest = hashlib.sha1(str(wanted).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"choregarden-devdb-{digest}"

    def _reachable_by_run_as(self, path: Path) -> bool:
        probe = path
        while not probe.exists():
            probe = probe.parent
        try:
            user = pwd.getpwnam(self.run_as or "")
        except KeyError:
            return True  # reported later, when we try to use the user
        for part in [probe, *probe.parents]:
            st = part.stat()
            if st.st_uid == user.pw_uid:
                continue
            if not st.st_mode & 0o001:
                return False
        return True

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def cert_dir(self) -> Path:
        return self.base_dir / "certs"

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / "ca.crt"

    @property
    def state_file(self) -> Path:
        return self.base_dir / "state.json"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgresql.log"

    def run_as_ids(self) -> tuple[int, int] | None:
        if not self.run_as:
            return None
        try:
            user = pwd.getpwnam(self.run_as)
        except KeyError:
            return None  # reported by run(), which names the fix
        return user.pw_uid, user.pw_gid

    def _folder_exists(self) -> bool:
        # Earlier releases gave the whole folder to the cluster's user: take it back.
        ids = self.run_as_ids()
        return check_private_folder(self.base_dir, take_back_from=ids[0] if ids else None)

    def initialised(self) -> bool:
        return (
            self._folder_exists()
            and os.path.lexists(self.state_file)
            and (self.data_dir / "PG_VERSION").exists()
        )

    def state(self) -> State:
        try:
            self._folder_exists()
            return State(**json.loads(read_private(self.state_file)))
        except FileNotFoundError:
            raise LocalDBError(
                f"The local database in {self.base_dir} has not been created: "
                "run `python manage.py devdb start`."
            ) from None
        except (ValueError, TypeError) as err:
            raise LocalDBError(
                f"{self.state_file} is not the local database's state ({err}): remove the "
                f"folder {self.base_dir} (`python manage.py devdb destroy`) and start again."
            ) from None

    def _save_state(self, state: State) -> None:
        write_private(self.state_file, json.dumps(asdict(state), indent=2).encode())

    # -- running commands --------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        env_extra: dict[str, str] | None = None,
        log_file: Path | None = None,
    ) -> processes.CompletedProcess[str]:
        """Run a PostgreSQL tool as the cluster's user; a failure names the tool and the log."""
        if self.run_as:
            try:
                pwd.getpwnam(self.run_as)
            except KeyError:
                raise LocalDBError(
                    f"PostgreSQL cannot run as root and the user {self.run_as!r} does not "
                    "exist: create it (`useradd --system postgres`) or set DEVDB_RUN_AS "
                    "to an unprivileged user."
                ) from None
        env = {**os.environ, **env_extra} if env_extra else None
        # pg_ctl start dies with us too, while the postmaster it forks lives on (see processes).
        proc = processes.run(
            argv, run_as=self.run_as, capture_output=True, text=True, cwd=self.base_dir, env=env
        )
        if check and proc.returncode != 0:
            raise LocalDBError(
                f"`{' '.join(argv[:2])}` failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()}{self.log_tail(log_file)}"
            )
        return proc

    def log_tail(self, log_file: Path | None = None, lines: int = 15) -> str:
        log_file = log_file or self.log_file
        try:
            tail = log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\nLast lines of " + str(log_file) + ":\n" + "\n".join(tail)

    def chown(self, *paths: Path) -> None:
        """Give paths to the cluster's user (when it runs as another user than us)."""
        ids = self.run_as_ids()
        for path in paths if ids else ():
            os.chown(path, *ids, follow_symlinks=False)

    def binary(self, name: str) -> str:
        return str(find_bindir() / name)

    # -- lifecycle -----------------------------------------------------------------
    def init(self) -> None:
        """Create the cluster: certificates, initdb, SSL-only configuration."""
        from dbops.localdb.certs import write_certificates

        make_private_folder(self.base_dir)
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        # The folder stays ours; the cluster's user gets its data folder and its log only.
        self.data_dir.mkdir(mode=0o700)
        self.chown(self.data_dir)
        state = State(
            port=free_port(),
            database=self.database,
            superuser_password=secrets.token_urlsafe(24),
            owner_password=secrets.token_urlsafe(24),
            app_password=secrets.token_urlsafe(24),
            replicator_password=secrets.token_urlsafe(24),
        )
        paths = write_certificates(self.cert_dir)
        self.chown(paths["cert"], paths["key"])
        pwfile = self.base_dir / ".pwfile"
        write_private(pwfile, (state.superuser_password + "\n").encode(), owner=self.run_as_ids())
        try:
            self.run(
                [
                    self.binary("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        # The data folder is the cluster user's: never write through a link it put there.
        # pg_hba.conf and choregarden.conf are written before every start (_write_conf).
        owner = self.run_as_ids()
        conf = self.data_dir / "postgresql.conf"
        include = "\ninclude_if_exists = 'choregarden.conf'\n"
        write_private(conf, (read_private(conf) + include).encode(), owner=owner)
        self._save_state(state)

    def _write_conf(self, state: State) -> None:
        owner = self.run_as_ids()
        # Rewritten too: clusters made by earlier releases get the replication line.
        write_private(self.data_dir / "pg_hba.conf", HBA.encode(), owner=owner)
        self.write_server_conf(self.data_dir, state.port)

    def write_server_conf(self, data_dir: Path, port: int) -> None:
        """Write the settings of a server of this cluster (the primary, or its replica)."""
        text = (
            "# Written by `manage.py devdb start`; rewritten on every start.\n"
            f"port = {port}\n"
            "listen_addresses = '127.0.0.1'\n"
            "unix_socket_directories = ''\n"
            "ssl = on\n"
            f"ssl_cert_file = '{self.cert_dir / 'server.crt'}'\n"
            f"ssl_key_file = '{self.cert_dir / 'server.key'}'\n"
            "ssl_min_protocol_version = 'TLSv1.2'\n"
            f"ssl_ciphers = '{SSL_CIPHERS}'\n"
            "ssl_prefer_server_ciphers = on\n"
            "password_encryption = 'scram-sha-256'\n"
            f"max_connections = {MAX_CONNECTIONS}\n"
            f"{self._preload_line()}"
            "fsync = off\n"
            "synchronous_commit = off\n"
            "full_page_writes = off\n"
        )
        write_private(data_dir / "choregarden.conf", text.encode(), owner=self.run_as_ids())

    def _preload_line(self) -> str:
        # pg_stat_statements feeds the slow-query report; load it when it is installed.
        libdir = find_bindir().parent / "lib"
        if (libdir / "pg_stat_statements.so").exists():
            return "shared_preload_libraries = 'pg_stat_statements'\n"
        return ""

    def running(self) -> bool:
        return self.server_running(self.data_dir)

    def server_running(self, data_dir: Path) -> bool:
        """Tell whether the server of `data_dir` (this cluster's, or its replica's) runs."""
        if not (data_dir / "PG_VERSION").exists():
            return False
        proc = self.run([self.binary("pg_ctl"), "status", "-D", str(data_dir)], check=False)
        return proc.returncode == 0 and _pid_is_postgres(data_dir)

    def clear_stale_pidfile(self, data_dir: Path) -> None:
        # After a crash or a kill -9, postmaster.pid survives; if its PID is gone or now
        # belongs to another program, PostgreSQL would refuse to start.
        pidfile = data_dir / "postmaster.pid"
        if pidfile.exists() and not _pid_is_postgres(data_dir):
            pidfile.unlink()

    def pg_ctl_start(self, data_dir: Path, log_file: Path, *, check: bool = True) -> Any:
        """`pg_ctl start` a server of this cluster and wait until it accepts connections."""
        # pg_ctl writes the log as the cluster's user, in a folder that stays ours.
        create_private(log_file, owner=self.run_as_ids())
        argv = [self.binary("pg_ctl"), "start", "-D", str(data_dir), "-l", str(log_file)]
        return self.run([*argv, "-w", "-t", str(START_TIMEOUT)], check=check, log_file=log_file)

    def pg_ctl_stop(self, data_dir: Path) -> None:
        self.run([self.binary("pg_ctl"), "stop", "-D", str(data_dir), "-m", "fast", "-w"])

    def start(self) -> str:
        """Start the cluster (creating it first if needed); return what was done."""
        created = False
        if not self.initialised():
            self.init()
            created = True
        if self.running():
            # A cluster started by an earlier release gets today's settings (ciphers) too.
            self._write_conf(self.state())
            self._reload()
            self.ensure_roles()
            return "already running"
        self.clear_stale_pidfile(self.data_dir)
        state = self.state()
        for _attempt in range(3):
            if port_taken(state.port):
                state.port = free_port()
                self._save_state(state)
            self._write_conf(state)
            proc = self.pg_ctl_start(self.data_dir, self.log_file, check=False)
            if proc.returncode == 0:
                break
            if not port_taken(state.port):
                raise LocalDBError(
                    f"PostgreSQL did not start: {proc.stderr.strip()}{self.log_tail()}"
                )
        else:
            raise LocalDBError(f"PostgreSQL did not start: no free port.{self.log_tail()}")
        self.ensure_roles()
        return "created and started" if created else "started"

    def _reload(self) -> None:
        import psycopg

        self.run([self.binary("pg_ctl"), "reload", "-D", str(self.data_dir)])
        # pg_ctl only signals the server: wait until a new session has the new settings.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with psycopg.connect(**self.conninfo("superuser", "postgres")) as conn:
                if conn.execute("SHOW ssl_ciphers").fetchone() == (SSL_CIPHERS,):
                    return
            if time.monotonic() > deadline:
                raise LocalDBError(f"PostgreSQL did not reload its settings.{self.log_tail()}")
            time.sleep(0.1)

    @property
    def replica(self) -> LocalReplica:
        from dbops.localdb.replica import LocalReplica

        return LocalReplica(self)

    @property
    def pgbouncer(self) -> LocalPgBouncer:
        from dbops.localdb.pgbouncer import LocalPgBouncer

        return LocalPgBouncer(self)

    def stop(self) -> str:
        """Stop the cluster, its PgBouncers and its replica first."""
        from dbops.localdb.pgbouncer import stop_pgbouncers

        stop_pgbouncers(self.base_dir)  # every one in its folder, whatever its name
        self.replica.stop()
        if not self.running():
            return "not running"
        self.pg_ctl_stop(self.data_dir)
        return "stopped"

    def destroy(self) -> str:
        if not self._folder_exists():
            return "nothing to destroy"
        self.stop()
        if self.base_dir.exists():
            shutil.rmtree(self.base_dir)
            return "destroyed"
        return "nothing to destroy"

    def pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    # -- connections -------------------------------------------------------------------
    def credentials(self, role: str = "app") -> tuple[str, str]:
        state = self.state()
        return {
            "app": (APP_ROLE, state.app_password),
            "owner": (OWNER_ROLE, state.owner_password),
            "superuser": (SUPERUSER, state.superuser_password),
            "replicator": (REPLICATOR_ROLE, state.replicator_password),
        }[role]

    def conninfo(self, role: str = "app", database: str | None = None) -> ConnInfo:
        """Return the connection parameters of `role`: verify-full SSL with the cluster's CA."""
        user, password = self.credentials(role)
        return ConnInfo(
            host="127.0.0.1",
            port=self.state().port,
            user=user,
            password=password,
            dbname=database or self.database,
            sslmode="verify-full",
            sslrootcert=str(self.ca_file),
        )

    def url(self, role: str = "app", database: str | None = None) -> str:
        return self.conninfo(role, database).url()

    def ensure_roles(self) -> None:
        """Create the owner and application roles and the database (idempotent)."""
        import psycopg

        from dbops.roles.provision import (
            ensure_role,
            forget_password_statements,
            grant_application_privileges,
            provision_cluster,
        )

        state = self.state()
        if not state.replicator_password:
            state.replicator_password = secrets.token_urlsafe(24)
            self._save_state(state)
        with psycopg.connect(**self.conninfo("superuser", "postgres"), autocommit=True) as conn:
            provision_cluster(
                conn,
                database=state.database,
                owner=(OWNER_ROLE, state.owner_password),
                app=(APP_ROLE, state.app_password),
            )
            ensure_role(
                conn,
                REPLICATOR_ROLE,
                state.replicator_password,
                "LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE",
            )
        with psycopg.connect(**self.conninfo("superuser"), autocommit=True) as conn:
            grant_application_privileges(
                conn, database=state.database, owner=OWNER_ROLE, app=APP_ROLE
            )
            if self._preload_line():
                # The slow-query report reads it; creating it needs a superuser, as on RDS.
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            # Role statements of earlier releases, and any made by hand, with a verifier.
            forget_password_statements(conn)


def _pid_is_postgres(data_dir: Path) -> bool:
    pidfile = data_dir / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"postgres" in cmdline


def default_cluster() -> LocalCluster:
    """Return the development cluster of this checkout (DEVDB_DIR overrides the folder)."""
    base = os.environ.get("DEVDB_DIR") or str(Path(__file__).resolve().parents[2] / "var" / "devdb")
    return LocalCluster(Path(base))
