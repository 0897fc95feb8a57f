"""Point-in-time recovery of the local cluster from its pgBackRest archive (`backup pitr`).

The whole cluster is restored into a new data folder and started on a port of its own,
read-only, beside the running one (never over it):

- `--to TIME`: pgBackRest's `--type=time`: the server replays up to TIME, then ends
  recovery (`recovery_target_action=promote`).
- `--latest`: `--type=default`: it replays every archived segment, then ends recovery.
  With `--salvage-wal-from DIR` (the crashed cluster's data folder) the segments that were
  written but not archived yet (the last one, after a crash) are copied into the new
  folder's pg_wal first, so that no committed transaction is lost. The crashed folder is
  only read, and nothing is pushed into the archive.

Why not pause at the target, a hot standby: a standby keeps the locks of the transactions
that were in flight at the target (the DROP TABLE one recovers from, typically), and a
read of that table would wait for ever. Recovery ends instead (those transactions are
rolled back), and the copy is read-only by `default_transaction_read_only = on`: a session
that means to write says `SET default_transaction_read_only = off`.

The restored server does not archive (archive_mode=off): it would write into the same
repository as the live cluster. It keeps running when the command ends, for inspection;
`pg_ctl stop -D DIR` stops it.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbops.backups import BackupError
from dbops.localdb.cluster import OWNER_ROLE, LocalCluster, port_taken
from dbops.localdb.errors import LocalDBError
from dbops.localdb.files import write_private
from dbops.localdb.walarchive import ARCHIVE_CONF, WalArchive, run_args

RECOVERY_TIMEOUT = 600  # seconds to reach the target once the server has started
EXAMPLE = '"2026-12-06 10:15:00+00"'
WAL_NAME_LENGTH = 24
_PAGE_HEADER = struct.Struct("<HHIQ")  # xlp_magic, xlp_info, xlp_tli, xlp_pageaddr


class PitrError(BackupError):
    """A point-in-time recovery was refused or failed; the message says what to do."""


def parse_target(text: str) -> datetime:
    """TIME as an aware datetime; ValueError (with an example) without a zone."""
    cleaned = text.strip()
    try:
        value = datetime.fromisoformat(cleaned.replace(" UTC", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give it as {EXAMPLE} (ISO 8601, with the zone)."
        ) from None
    if value.tzinfo is None:
        raise ValueError(
            f"{text!r} has no time zone: the recovery target must say which, "
            f'e.g. {EXAMPLE} (UTC) or "2026-12-06 11:15:00+01:00".'
        )
    return value


@dataclass
class PitrResult:
    """Where the restored server runs and what was restored."""

    cluster_dir: Path
    port: int
    target: datetime | None  # None: the end of the archive (--latest)
    backup: str
    database: str
    ca_file: Path
    log_file: Path
    replay_lsn: str = ""
    salvaged: list[str] = field(default_factory=list)
    pg_ctl: str = "pg_ctl"
    run_as: str | None = None

    def _as_user(self, argv: list[str]) -> str:
        # run_as is set only when this runs as root (PostgreSQL refuses root): root needs no
        # sudo, which many servers lack; runuser (util-linux) is there on Linux.
        switch = ["runuser", "-u", self.run_as, "--"] if shutil.which("runuser") else None
        prefix = (switch or ["sudo", "-u", self.run_as]) if self.run_as else []
        return run_args([*prefix, *argv])

    def conninfo(self, user: str) -> str:
        return (
            f"host=127.0.0.1 port={self.port} dbname={self.database} user={user} "
            f"sslmode=verify-full sslrootcert={self.ca_file}"
        )

    def commands(self) -> dict[str, str]:
        """The commands an operator runs next (psql, pg_dump, write, stop)."""
        owner = OWNER_ROLE
        stamp = "latest" if self.target is None else f"{self.target.astimezone(UTC):%Y%m%dT%H%M%SZ}"
        return {
            "psql": run_args(["psql", self.conninfo(owner)]),
            "pg_dump": run_args(
                [
                    "pg_dump",
                    "-Fc",
                    "-d",
                    self.conninfo(owner),
                    "-f",
                    f"{self.database}-{stamp}.dump",
                ]
            ),
            "write": "SET default_transaction_read_only = off",
            "stop": self._as_user([self.pg_ctl, "stop", "-D", str(self.cluster_dir), "-m", "fast"]),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "cluster_dir": str(self.cluster_dir),
            "port": self.port,
            "target": self.target.isoformat() if self.target else "latest",
            "backup": self.backup,
            "replay_lsn": self.replay_lsn,
            "salvaged_wal": self.salvaged,
            "log_file": str(self.log_file),
            "read_only": "default_transaction_read_only = on",
            "commands": self.commands(),
        }


# -- pre-checks ---------------------------------------------------------------------------
def check_request(
    cluster: LocalCluster,
    archive: WalArchive,
    info: dict[str, Any],
    *,
    target: datetime | None,
    cluster_dir: Path,
    port: int,
    salvage_from: Path | None,
    now: datetime,
) -> dict[str, Any]:
    """Refuse what would go wrong or overwrite something; return the backup to restore."""
    backups = [b for b in info.get("backup", []) if not b.get("error")]
    if not backups:
        raise PitrError(
            f"The WAL archive {archive.describe()} has no backup to start from: run "
            "`python manage.py devdb start --with-wal-archive` (it takes the first one)."
        )
    first = _consistent_from(backups[0])
    if target is not None:
        if target > now:
            raise PitrError(
                f"--to {target.isoformat()} is in the future (it is {now:%Y-%m-%d %H:%M:%S}+00 "
                "now): give a past time, or --latest for everything archived."
            )
        if target < first:
            raise PitrError(
                f"--to {target.isoformat()} is before the first backup ended "
                f"({first:%Y-%m-%d %H:%M:%S}+00, to the second after): nothing before it can "
                "be recovered. Give a later time."
            )
    _check_folder(cluster, cluster_dir)
    if port_taken(port):
        raise PitrError(
            f"Port {port} is in use (the live cluster, or another server): give a free "
            "--port, e.g. one `ss -ltn` does not list."
        )
    if salvage_from is not None:
        _check_salvage(cluster, salvage_from, target)
    if target is None:
        return backups[-1]
    before = [b for b in backups if _consistent_from(b) <= target]
    return before[-1]


def _consistent_from(backup: dict[str, Any]) -> datetime:
    """The first moment a backup can be recovered to (its stop time is in whole seconds)."""
    return datetime.fromtimestamp(backup["timestamp"]["stop"] + 1, UTC)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_folder(cluster: LocalCluster, cluster_dir: Path) -> None:
    live = cluster.data_dir.resolve()
    where = cluster_dir.resolve()
    if _inside(where, live) or _inside(live, where):
        raise PitrError(
            f"--cluster-dir {cluster_dir} is the live cluster's data folder ({live}), or "
            "inside it, or holds it: the recovery never writes over the running cluster. "
            "Give a new folder elsewhere, e.g. /var/tmp/choregarden-pitr."
        )
    if where.exists() and (not where.is_dir() or any(where.iterdir())):
        raise PitrError(
            f"--cluster-dir {cluster_dir} exists and is not an empty folder: nothing is "
            "overwritten. Give a new folder, or remove this one if it is a recovery you no "
            f"longer need (stop its server first: `pg_ctl stop -D {cluster_dir}`)."
        )
    parent = where.parent
    if not parent.is_dir():
        raise PitrError(f"--cluster-dir {cluster_dir}: its folder {parent} does not exist.")
    if cluster.run_as and not cluster._reachable_by_run_as(parent):
        raise PitrError(
            f"--cluster-dir {cluster_dir}: the user {cluster.run_as!r} the server runs as "
            f"cannot reach {parent}. Give a folder it can reach, e.g. under /var/tmp."
        )


def _check_salvage(cluster: LocalCluster, folder: Path, target: datetime | None) -> None:
    if target is not None:
        raise PitrError(
            "--salvage-wal-from goes with --latest: a recovery to a time needs only the "
            "archive up to that time."
        )
    if not (folder / "pg_wal").is_dir():
        raise PitrError(
            f"--salvage-wal-from {folder} is not a PostgreSQL data folder (no pg_wal in it): "
            "give the crashed cluster's data folder."
        )
    if cluster.server_running(folder):
        raise PitrError(
            f"A server is running on {folder}: its WAL is still being written. Stop it "
            f"(`pg_ctl stop -D {folder}`), or recover without --salvage-wal-from."
        )


# -- salvage ---------------------------------------------------------------------------------
def segments_to_salvage(pg_wal: Path, archived_max: str) -> list[Path]:
    """The crashed cluster's segments after the archive's last one, in order, until the end.

    A segment PostgreSQL recycled or preallocated (for later WAL) still holds old or no
    data: its first page does not carry its own address. The first such segment is where
    the written WAL ends.
    """
    names = sorted(
        p.name
        for p in pg_wal.iterdir()
        if len(p.name) == WAL_NAME_LENGTH and all(c in "0123456789ABCDEF" for c in p.name)
    )
    found: list[Path] = []
    for name in names:
        if archived_max and name <= archived_max:
            continue
        if archived_max and name[:8] != archived_max[:8]:
            continue  # another timeline: not this history
        path = pg_wal / name
        if not _segment_is_written(path):
            break
        found.append(path)
    return found


def _segment_is_written(path: Path) -> bool:
    size = path.stat().st_size
    with path.open("rb") as wal:
        header = wal.read(_PAGE_HEADER.size)
    if len(header) < _PAGE_HEADER.size or size == 0:
        return False
    _magic, _info, tli, pageaddr = _PAGE_HEADER.unpack(header)
    name = path.name
    per_xlogid = 0x100000000 // size
    segno = int(name[8:16], 16) * per_xlogid + int(name[16:24], 16)
    return tli == int(name[:8], 16) and pageaddr == segno * size


# -- the recovery ------------------------------------------------------------------------------
def recover(
    cluster: LocalCluster,
    *,
    target: datetime | None,
    cluster_dir: Path,
    port: int,
    salvage_from: Path | None = None,
    now: datetime | None = None,
) -> PitrResult:
    """Restore the whole cluster into `cluster_dir`, start it read-only on `port`."""
    archive = WalArchive(cluster)
    if not archive.exists():
        raise PitrError(
            f"The local cluster in {cluster.base_dir} has no WAL archive: run `python "
            "manage.py devdb start --with-wal-archive` (then backups and WAL are kept)."
        )
    try:
        if cluster.running():
            # Archives the WAL written up to now (a switch, waited for): TIME is covered.
            archive.pgbackrest("check", db=True)
        info = archive.info()
        now = now or datetime.now(UTC)
        backup = check_request(
            cluster,
            archive,
            info,
            target=target,
            cluster_dir=cluster_dir,
            port=port,
            salvage_from=salvage_from,
            now=now,
        )
        return _restore_and_start(cluster, archive, info, backup, target, cluster_dir, port,
                                  salvage_from)  # fmt: skip
    except LocalDBError as err:
        raise PitrError(str(err)) from err


def _restore_and_start(
    cluster: LocalCluster,
    archive: WalArchive,
    info: dict[str, Any],
    backup: dict[str, Any],
    target: datetime | None,
    cluster_dir: Path,
    port: int,
    salvage_from: Path | None,
) -> PitrResult:
    cluster_dir = cluster_dir.absolute()
    cluster_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(cluster_dir, 0o700)
    cluster.chown(cluster_dir)
    args = [f"--pg1-path={cluster_dir}", f"--set={backup['label']}", "--archive-mode=off"]
    if target is None:
        args.append("--type=default")
    else:
        stamp = target.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        args += ["--type=time", f"--target={stamp}", "--target-action=promote"]
    archive.pgbackrest("restore", *args)
    owner = cluster.run_as_ids()
    # The cluster's own settings (SSL with its certificates) on the new port, no archiving.
    cluster.write_server_conf(cluster_dir, port)
    write_private(
        cluster_dir / ARCHIVE_CONF,
        b"# A recovered copy (`manage.py backup pitr`): it must not archive into the live "
        b"cluster's repository, and is read-only unless a session says otherwise.\n"
        b"archive_mode = off\ndefault_transaction_read_only = on\n",
        owner=owner,
    )
    salvaged: list[str] = []
    if salvage_from is not None:
        archived_max = ((info.get("archive") or [{}])[-1]).get("max", "")
        for segment in segments_to_salvage(salvage_from / "pg_wal", archived_max):
            copy = cluster_dir / "pg_wal" / segment.name
            shutil.copyfile(segment, copy)
            os.chmod(copy, 0o600)
            cluster.chown(copy)
            salvaged.append(segment.name)
    log_file = cluster_dir / "recovery.log"
    cluster.pg_ctl_start(cluster_dir, log_file)
    result = PitrResult(
        cluster_dir=cluster_dir,
        port=port,
        target=target,
        backup=str(backup["label"]),
        database=cluster.database,
        ca_file=cluster.ca_file,
        log_file=log_file,
        salvaged=salvaged,
        pg_ctl=cluster.binary("pg_ctl"),
        run_as=cluster.run_as,
    )
    result.replay_lsn = _wait_for_replay(cluster, result)
    return result


def _wait_for_replay(cluster: LocalCluster, result: PitrResult) -> str:
    """Wait until the server has replayed to the target (or the end) and ended recovery."""
    import psycopg

    info = replace(cluster.conninfo("superuser", "postgres"), port=result.port, connect_timeout=5)
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        if not cluster.server_running(result.cluster_dir):
            raise PitrError(
                f"The recovered server stopped during recovery: {cluster.log_tail(result.log_file)}"
            )
        try:
            with psycopg.connect(**info) as conn:
                (recovering,) = conn.execute("SELECT pg_is_in_recovery()").fetchone() or (True,)
                if not recovering:
                    (lsn,) = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone() or ("",)
                    return str(lsn)
        except psycopg.OperationalError:
            pass
        time.sleep(0.3)
    raise PitrError(
        f"The recovered server did not reach the target in {RECOVERY_TIMEOUT}s; it still runs "
        f"on port {result.port}. {cluster.log_tail(result.log_file)}"
    )
