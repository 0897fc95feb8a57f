"""A hot standby of the local cluster: physical streaming replication over SSL (D9).

`devdb start --with-replica` copies the running primary with `pg_basebackup -R` (a
replication slot, so the primary keeps the WAL the standby has not received yet) into a
data folder of its own, and starts it on its own port. Reads there see what the primary
committed once it is replayed: the lag the application's router must live with.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbops.localdb.errors import LocalDBError
from dbops.localdb.files import make_private_folder
from dbops.localdb.parts import ClusterPart

if TYPE_CHECKING:
    from dbops.localdb.cluster import LocalCluster

SLOT = "choregarden_replica"


@dataclass(frozen=True)
class ReplicaStatus:
    """What `devdb status` says of the replica."""

    running: bool
    port: int | None
    in_recovery: bool | None = None
    streaming: bool | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None


class LocalReplica(ClusterPart):
    """The local cluster's streaming replica, in `<cluster>/replica`."""

    name = "replica"
    flag = "--with-replica"

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(cluster, cluster.base_dir / "replica")

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgresql.log"

    def exists(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists() and self.state_file.exists()

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> str:
        """Make the replica if needed (the primary must be running) and start it."""
        from dbops.localdb.cluster import free_port, port_taken

        if not self.cluster.running():
            raise LocalDBError(
                "The replica copies the running primary: start it first "
                "(`python manage.py devdb start --with-replica` does both)."
            )
        made = False
        if not self.exists():
            self._make()
            made = True
        if self.running():
            return "already running"
        port = self.port()
        if port_taken(port):
            port = free_port()
            self.save_port(port)
        self.cluster.write_server_conf(self.data_dir, port)
        self.cluster.clear_stale_pidfile(self.data_dir)
        self.cluster.pg_ctl_start(self.data_dir, self.log_file)
        return "made and started" if made else "started"

    def _make(self) -> None:
        from dbops.localdb.cluster import free_port

        make_private_folder(self.base_dir)
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(mode=0o700)
        self.cluster.chown(self.data_dir)
        self._drop_slot()  # a slot left by a replica that was removed by hand
        info = self.cluster.conninfo("replicator", "postgres")
        conninfo = (
            f"host={info.host} port={info.port} user={info.user} sslmode=verify-full "
            f"sslrootcert={info.sslrootcert} application_name=choregarden_replica"
        )
        # The password goes in the environment; -R writes it into primary_conninfo, in
        # postgresql.auto.conf, which only the cluster's user can read.
        self.cluster.run(
            [
                self.cluster.binary("pg_basebackup"),
                "-d",
                conninfo,
                "-D",
                str(self.data_dir),
                "-R",
                "-C",
                "-S",
                SLOT,
                "-X",
                "stream",
                "--no-sync",
                "-c",
                "fast",
            ],
            env_extra={"PGPASSWORD": info.password},
        )
        self.save_port(free_port())

    def running(self) -> bool:
        return self.exists() and self.cluster.server_running(self.data_dir)

    def stop(self) -> str:
        if not self.running():
            return "not running"
        self.cluster.pg_ctl_stop(self.data_dir)
        return "stopped"

    def destroy(self) -> str:
        """Stop the replica, remove its folder and the primary's slot for it."""
        if not self.base_dir.exists():
            return "nothing to destroy"
        self.stop()
        shutil.rmtree(self.base_dir)
        if self.cluster.running():
            self._drop_slot()
        return "destroyed"

    def _drop_slot(self) -> None:
        import psycopg

        with psycopg.connect(**self.cluster.conninfo("superuser", "postgres")) as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name = %s AND NOT active",
                [SLOT],
            )

    # -- status ---------------------------------------------------------------------
    def status(self) -> ReplicaStatus:
        """The replica's state and its lag behind the primary (bytes and seconds)."""
        import psycopg

        if not self.exists():
            return ReplicaStatus(running=False, port=None)
        port = self.port()
        if not self.running():
            return ReplicaStatus(running=False, port=port)
        try:
            with psycopg.connect(**self.conninfo("superuser", "postgres")) as conn:
                row: Any = conn.execute(_lag_query()).fetchone()
            with psycopg.connect(**self.cluster.conninfo("superuser", "postgres")) as conn:
                (current,) = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone() or ("",)
                lag_bytes = None
                if row[3]:
                    (lag_bytes,) = conn.execute(
                        "SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint", [current, row[3]]
                    ).fetchone() or (None,)
        except psycopg.OperationalError:
            return ReplicaStatus(running=True, port=port)
        return ReplicaStatus(
            running=True,
            port=port,
            in_recovery=bool(row[0]),
            streaming=row[1] == "streaming",
            lag_seconds=float(row[2]) if row[2] is not None else None,
            lag_bytes=int(lag_bytes) if lag_bytes is not None else None,
        )


def _lag_query() -> str:
    """In recovery, the WAL receiver's state, the replay delay (the router's), the replay LSN."""
    from dbops.connections.replicas import REPLAY_DELAY

    return (
        "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver),"
        f" {REPLAY_DELAY}, pg_last_wal_replay_lsn()::text"
    )
