"""The local cluster's WAL archive and base backups, kept by pgBackRest (point-in-time recovery).

`devdb start --with-wal-archive` writes a pgbackrest.conf into `<cluster>/pitr/` (the
repository, lock, log and spool folders too: pgBackRest's defaults, /tmp/pgbackrest and
/var/log/pgbackrest, are shared with every other cluster on the machine), turns
`archive_mode` on with an `archive_command` that pushes each WAL segment into that
repository, creates the stanza and takes the first full backup. Every pgbackrest call
names the configuration file (`--config`): /etc/pgbackrest.conf is never read.

The repository is S3 instead when PITR_REPO_S3_BUCKET is set: pgBackRest speaks S3 itself.
Its keys are not written down unless PITR_REPO_S3_KEY/PITR_REPO_S3_KEY_SECRET are given
(then the configuration file is readable by the cluster's user only); without them
pgBackRest takes the instance's or the task's role (repo1-s3-key-type=auto).

pgBackRest connects to the server over TCP with the cluster's SSL settings (the cluster has
no Unix socket): PGHOST/PGSSLMODE/PGSSLROOTCERT/PGPASSWORD in its environment, never on a
command line.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbops.localdb.errors import LocalDBError
from dbops.localdb.files import make_private_folder, read_private, write_private

if TYPE_CHECKING:
    from dbops.localdb.cluster import LocalCluster
    from sqlmigrations.lib import processes

STANZA = "choregarden"
ARCHIVE_CONF = "choregarden-archive.conf"  # in the data folder, beside choregarden.conf
INCLUDE_LINE = f"include_if_exists = '{ARCHIVE_CONF}'\n"
INSTALL_HINT = (
    "pgBackRest was not found: install it (Debian/Ubuntu: `sudo apt-get install pgbackrest`; "
    "macOS: `brew install pgbackrest`), or point PGBACKREST at the binary."
)
# Full backups kept in the repository; the WAL the older ones needed goes with them.
RETENTION_FULL = 2


def find_pgbackrest() -> str:
    """The pgbackrest binary: PGBACKREST, else the one on PATH, else Debian's."""
    explicit = os.environ.get("PGBACKREST")
    found = explicit or shutil.which("pgbackrest") or "/usr/bin/pgbackrest"
    if not os.access(found, os.X_OK):
        raise LocalDBError(INSTALL_HINT)
    return found


def conf_quote(value: str) -> str:
    """A postgresql.conf string literal: single quotes, a quote inside doubled."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class S3Repo:
    """An S3 repository (pgBackRest's repo1-type=s3), from PITR_REPO_S3_* variables."""

    bucket: str
    region: str
    endpoint: str = ""
    path: str = "/choregarden"
    key: str = ""
    key_secret: str = ""
    uri_style: str = ""  # "path" for endpoints without virtual-host buckets (MinIO, moto)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> S3Repo | None:
        """The S3 repository the environment names, or None (a repository in the folder)."""
        bucket = environ.get("PITR_REPO_S3_BUCKET", "")
        if not bucket:
            return None
        region = environ.get("PITR_REPO_S3_REGION") or environ.get("AWS_REGION", "")
        if not region:
            raise LocalDBError(
                "PITR_REPO_S3_BUCKET is set but PITR_REPO_S3_REGION (or AWS_REGION) is not: "
                "set it to the bucket's region, e.g. PITR_REPO_S3_REGION=eu-west-1."
            )
        key, secret = (
            environ.get("PITR_REPO_S3_KEY", ""),
            environ.get("PITR_REPO_S3_KEY_SECRET", ""),
        )
        if bool(key) != bool(secret):
            raise LocalDBError(
                "Set both PITR_REPO_S3_KEY and PITR_REPO_S3_KEY_SECRET, or neither (then "
                "pgBackRest uses the instance's or the task's role)."
            )
        return cls(
            bucket=bucket,
            region=region,
            endpoint=environ.get("PITR_REPO_S3_ENDPOINT", "") or f"s3.{region}.amazonaws.com",
            path=environ.get("PITR_REPO_S3_PATH", "") or "/choregarden",
            key=key,
            key_secret=secret,
            uri_style=environ.get("PITR_REPO_S3_URI_STYLE", ""),
        )

    def lines(self) -> list[str]:
        lines = [
            "repo1-type=s3",
            f"repo1-path={self.path}",
            f"repo1-s3-bucket={self.bucket}",
            f"repo1-s3-region={self.region}",
            f"repo1-s3-endpoint={self.endpoint}",
        ]
        if self.uri_style:
            lines.append(f"repo1-s3-uri-style={self.uri_style}")
        if self.key:
            lines += [f"repo1-s3-key={self.key}", f"repo1-s3-key-secret={self.key_secret}"]
        else:
            lines.append("repo1-s3-key-type=auto")
        return lines

    def describe(self) -> str:
        return f"s3://{self.bucket}{self.path}"


class WalArchive:
    """pgBackRest's configuration, repository and archive for one local cluster."""

    name = "WAL archive"
    flag = "--with-wal-archive"

    def __init__(self, cluster: LocalCluster, environ: Mapping[str, str] | None = None) -> None:
        self.cluster = cluster
        self.base_dir = cluster.base_dir / "pitr"
        self.s3 = S3Repo.from_env(os.environ if environ is None else environ)

    # -- layout -----------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.base_dir / "pgbackrest.conf"

    @property
    def repo_path(self) -> Path:
        return self.base_dir / "repo"

    def folders(self) -> list[Path]:
        """Where pgBackRest writes, as the cluster's user (its own, not /tmp or /var/log)."""
        local = [] if self.s3 else [self.repo_path]
        return [*local, self.base_dir / "lock", self.base_dir / "log", self.base_dir / "spool"]

    def exists(self) -> bool:
        return self.config_file.exists()

    def describe(self) -> str:
        return self.s3.describe() if self.s3 else str(self.repo_path)

    def config_text(self) -> str:
        """pgbackrest.conf: the repository, our own lock/log/spool folders, the stanza."""
        repo = self.s3.lines() if self.s3 else [f"repo1-path={self.repo_path}"]
        lines = [
            "# Written by `manage.py devdb start --with-wal-archive`; rewritten on every start.",
            "[global]",
            *repo,
            f"repo1-retention-full={RETENTION_FULL}",
            f"lock-path={self.base_dir / 'lock'}",
            f"log-path={self.base_dir / 'log'}",
            f"spool-path={self.base_dir / 'spool'}",
            "log-level-console=warn",
            "log-level-file=info",
            "compress-type=gz",
            "start-fast=y",
            "process-max=2",
            "",
            f"[{STANZA}]",
            f"pg1-path={self.cluster.data_dir}",
            "",
        ]
        return "\n".join(lines)

    def archive_command(self) -> str:
        """The shell command PostgreSQL runs for each WAL segment (%p: its path)."""
        argv = [find_pgbackrest(), f"--config={self.config_file}", f"--stanza={STANZA}"]
        return " ".join(shlex.quote(a) for a in argv) + " archive-push %p"

    def server_settings(self) -> str:
        return (
            "# Written by `manage.py devdb start --with-wal-archive`.\n"
            "archive_mode = on\n"
            f"archive_command = {conf_quote(self.archive_command())}\n"
        )

    # -- running pgbackrest -------------------------------------------------------------
    def pgbackrest(
        self, *args: str, db: bool = False, check: bool = True
    ) -> processes.CompletedProcess[str]:
        """Run pgbackrest as the cluster's user with our configuration file.

        `db`: the command talks to the running server (over TCP, with SSL; the password in
        the environment).
        """
        argv = [find_pgbackrest(), f"--config={self.config_file}", f"--stanza={STANZA}"]
        env: dict[str, str] = {}
        if db:
            info = self.cluster.conninfo("superuser", "postgres")
            argv.append(f"--pg1-port={info.port}")
            env = {
                "PGHOST": info.host,
                "PGUSER": info.user,
                "PGPASSWORD": info.password,
                "PGSSLMODE": info.sslmode,
                "PGSSLROOTCERT": info.sslrootcert or "",
            }
        try:
            return self.cluster.run([*argv, *args], check=check, env_extra=env or None)
        except LocalDBError as err:
            raise LocalDBError(f"{err}\npgBackRest's log: {self.base_dir / 'log'}") from None

    def info(self) -> dict[str, Any]:
        """`pgbackrest info` of the stanza (backups, archive range), as JSON."""
        proc = self.pgbackrest("info", "--output=json")
        stanzas = json.loads(proc.stdout or "[]")
        return stanzas[0] if stanzas else {}

    # -- set-up -------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Archive on (restarting the server if archive_mode changes), stanza, first backup.

        Idempotent: a second call rewrites the same files, restarts nothing, backs up
        nothing. Returns what was done, a line each.
        """
        cluster = self.cluster
        if not cluster.running():
            raise LocalDBError(
                "The WAL archive needs the running cluster: `python manage.py devdb start "
                "--with-wal-archive` starts both."
            )
        find_pgbackrest()
        done: list[str] = []
        self._write_files()
        mode, command, wal_level = self._settings()
        if wal_level not in ("replica", "logical"):
            raise LocalDBError(
                f"wal_level is {wal_level!r}: archiving needs 'replica' (the default); remove "
                "the setting that lowers it (ALTER SYSTEM RESET wal_level) and start again."
            )
        if mode != "on":
            cluster.pg_ctl_stop(cluster.data_dir)
            cluster.start()
            done.append("archive_mode turned on (server restarted)")
        elif command != self.archive_command():
            cluster.run([cluster.binary("pg_ctl"), "reload", "-D", str(cluster.data_dir)])
            done.append("archive_command updated (server reloaded)")
        self.pgbackrest("stanza-create", db=True)
        self.pgbackrest("check", db=True)  # a WAL switch, archived and found in the repository
        if not self.info().get("backup"):
            self.pgbackrest("backup", "--type=full", db=True)
            label = self.info()["backup"][-1]["label"]
            done.append(f"first full backup {label} taken")
        return done

    def backup(self, kind: str = "full") -> str:
        """Take a backup (full, diff or incr); return its label."""
        self.pgbackrest("backup", f"--type={kind}", db=True)
        return str(self.info()["backup"][-1]["label"])

    def _write_files(self) -> None:
        owner = self.cluster.run_as_ids()
        make_private_folder(self.base_dir)
        for folder in self.folders():
            folder.mkdir(mode=0o700, exist_ok=True)
            self.cluster.chown(folder)
        # 0600, the cluster's user's: it may hold the S3 key.
        write_private(self.config_file, self.config_text().encode(), owner=owner)
        data = self.cluster.data_dir
        write_private(data / ARCHIVE_CONF, self.server_settings().encode(), owner=owner)
        conf = data / "postgresql.conf"
        text = read_private(conf)
        if INCLUDE_LINE not in text:
            write_private(conf, (text + "\n" + INCLUDE_LINE).encode(), owner=owner)

    def _settings(self) -> tuple[str, str, str]:
        import psycopg

        with psycopg.connect(**self.cluster.conninfo("superuser", "postgres")) as conn:
            row = conn.execute(
                "SELECT current_setting('archive_mode'), current_setting('archive_command'),"
                " current_setting('wal_level')"
            ).fetchone()
        assert row is not None
        return str(row[0]), str(row[1]), str(row[2])

    # -- status -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What `devdb status` says of the archive: repository, backups, last archived WAL."""
        import psycopg

        result: dict[str, Any] = {"repository": self.describe()}
        try:
            info = self.info()
        except LocalDBError as err:
            result["error"] = str(err).splitlines()[0]
            return result
        backups = info.get("backup", [])
        result["backups"] = len(backups)
        if backups:
            result["latest_backup"] = backups[-1]["label"]
        archive = info.get("archive") or [{}]
        result["archived_wal"] = (
            f"{archive[-1].get('min', '-')}..{archive[-1].get('max', '-')}" if archive[-1] else None
        )
        if self.cluster.running():
            with psycopg.connect(**self.cluster.conninfo("superuser", "postgres")) as conn:
                row = conn.execute(
                    "SELECT current_setting('archive_mode'), last_archived_wal,"
                    " last_archived_time, failed_count FROM pg_stat_archiver"
                ).fetchone()
            assert row is not None
            result.update(
                archive_mode=row[0],
                last_archived_wal=row[1],
                last_archived_time=row[2].isoformat() if row[2] else None,
                failed=row[3],
            )
        return result


def run_args(argv: Sequence[str]) -> str:
    """A command line as shown to an operator (quoted for a shell)."""
    return " ".join(shlex.quote(a) for a in argv)
