"""Manage the local PostgreSQL cluster: start, stop, status, url, psql, destroy.

`start --with-pgbouncer` and `--with-replica` also start PgBouncer in front of it and a
streaming replica behind it (D9); `url`/`psql --via pgbouncer|replica` reach them.
`start --with-wal-archive` has pgBackRest archive its WAL and take a first full backup,
for `backup pitr` (dbops.localdb.walarchive).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from dbops.connections import pgtools
from dbops.connections.config import uses_local_cluster
from dbops.localdb import LocalDBError, UnsafeFolderError, default_cluster
from dbops.localdb.binaries import BinariesNotFound, find_bindir
from dbops.localdb.pgbouncer import find_pgbouncer
from dbops.localdb.replica import SLOT
from dbops.localdb.walarchive import WalArchive, find_pgbackrest
from sqlmigrations.management.base import DatabaseCommand
from sqlmigrations.redact import mask_url

VIA = ("primary", "pgbouncer", "replica")


class Command(DatabaseCommand):
    help = "Manage the local development PostgreSQL cluster (SSL only) in var/devdb."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["start", "stop", "status", "url", "psql", "destroy"])
        parser.add_argument(
            "--role",
            choices=["app", "owner", "superuser"],
            default="app",
            help="Role for `url` and `psql` (default: the application role).",
        )
        parser.add_argument(
            "--reveal",
            action="store_true",
            help="With `url`: print the password too (for scripts; never in logs).",
        )
        parser.add_argument(
            "--if-no-database-url",
            action="store_true",
            help="With `start`: do nothing when DATABASE_URL is set (used by `make run`).",
        )
        parser.add_argument("--json", action="store_true", help="With `status`: print JSON.")
        parser.add_argument(
            "--with-pgbouncer",
            action="store_true",
            help="With `start`: also start PgBouncer in front (transaction pooling, TLS).",
        )
        parser.add_argument(
            "--with-replica",
            action="store_true",
            help="With `start`: also make and start a streaming replica (hot standby).",
        )
        parser.add_argument(
            "--with-wal-archive",
            action="store_true",
            help="With `start`: archive the WAL with pgBackRest and take a first full backup "
            "(point-in-time recovery: `backup pitr`).",
        )
        parser.add_argument(
            "--via",
            choices=VIA,
            default="primary",
            help="With `url` and `psql`: the server to reach (default: the primary, directly).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = default_cluster()
        action = options["action"]
        misplaced = [
            flag
            for flag, given, actions in (
                ("--with-pgbouncer", options["with_pgbouncer"], ("start",)),
                ("--with-replica", options["with_replica"], ("start",)),
                ("--with-wal-archive", options["with_wal_archive"], ("start",)),
                ("--via", options["via"] != "primary", ("url", "psql")),
            )
            if given and action not in actions
        ]
        if misplaced:
            raise CommandError(
                f"{misplaced[0]} does not go with `devdb {action}`: see `devdb --help`.",
                returncode=2,
            )
        try:
            if action == "start":
                if options["if_no_database_url"] and not uses_local_cluster():
                    self.stdout.write("DATABASE_URL is set: not starting the local database.")
                    return
                find_bindir()
                # DB_POOLER=pgbouncer on the local database: its PgBouncer serves the app.
                pooled = getattr(settings, "DB_POOLER", "") == "pgbouncer" and uses_local_cluster()
                options["with_pgbouncer"] = options["with_pgbouncer"] or pooled
                if options["with_pgbouncer"]:
                    find_pgbouncer()  # before anything starts: the fix, not half a start
                archive = WalArchive(cluster) if options["with_wal_archive"] else None
                if archive:
                    find_pgbackrest()  # before anything starts: the fix, not half a start
                result = cluster.start()
                state = cluster.state()
                self.stdout.write(
                    f"Local database {result}: {state.database} on 127.0.0.1:{state.port} "
                    f"(SSL verify-full, CA {cluster.ca_file})."
                )
                if archive:
                    done = archive.start() or ["already on, nothing to do"]
                    self.stdout.write(
                        f"WAL archive (pgBackRest, stanza choregarden, {archive.describe()}): "
                        f"{'; '.join(done)}. `backup pitr --to TIME` recovers from it."
                    )
                if options["with_replica"]:
                    replica = cluster.replica
                    result = replica.start()
                    self.stdout.write(
                        f"Streaming replica {result}: 127.0.0.1:{replica.port()} (hot standby, "
                        f"slot {SLOT}; `devdb url --via replica`)."
                    )
                if options["with_pgbouncer"]:
                    bouncer = cluster.pgbouncer
                    result = bouncer.start()
                    self.stdout.write(
                        f"PgBouncer {result}: 127.0.0.1:{bouncer.port()} (transaction pooling, "
                        f"pool {bouncer.pool_size}, TLS both sides; `devdb url --via pgbouncer`)."
                    )
                    # Behind the pooler the app sends no timeouts: they are its role's own.
                    self.stdout.write(_role_timeouts(cluster))
            elif action == "stop":
                self.stdout.write(f"Local database {cluster.stop()}.")
            elif action == "destroy":
                self.stdout.write(f"Local database {cluster.destroy()} ({cluster.base_dir}).")
            elif action == "status":
                self._status(cluster, as_json=options["json"])
            elif action == "url":
                url = self._server(cluster, options["via"]).url(options["role"])
                self.stdout.write(url if options["reveal"] else mask_url(url))
            elif action == "psql":
                self._psql(self._server(cluster, options["via"]), options["role"])
        except UnsafeFolderError as err:
            # A configuration refused, as settings refuse one: exit 2 (DEVDB_DIR is the fix).
            raise CommandError(str(err), returncode=2) from err
        except (LocalDBError, BinariesNotFound) as err:
            raise CommandError(str(err)) from err

    @staticmethod
    def _server(cluster: Any, via: str) -> Any:
        """The cluster itself, its PgBouncer or its replica: each has url() and conninfo()."""
        server = {"primary": cluster, "pgbouncer": cluster.pgbouncer, "replica": cluster.replica}[
            via
        ]
        if via != "primary" and not server.exists():
            flag = "--with-pgbouncer" if via == "pgbouncer" else "--with-replica"
            raise LocalDBError(
                f"The local {via} has not been set up: run `python manage.py devdb start {flag}`."
            )
        return server

    def _status(self, cluster: Any, *, as_json: bool) -> None:
        running = cluster.running()
        info: dict[str, Any] = {
            "folder": str(cluster.base_dir),
            "created": cluster.initialised(),
            "running": running,
        }
        if cluster.initialised():
            state = cluster.state()
            info.update(
                port=state.port, database=state.database, pid=cluster.pid() if running else None
            )
            bouncer = cluster.pgbouncer
            if bouncer.exists():
                info["pgbouncer"] = {
                    "running": bouncer.running(),
                    "port": bouncer.port(),
                    "pool_mode": "transaction",
                }
            replica = cluster.replica.status()
            if replica.port is not None:
                info["replica"] = asdict(replica)
            archive = WalArchive(cluster)
            if archive.exists():
                info["archive"] = archive.status()
        if as_json:
            self.stdout.write(json.dumps(info))
        else:
            for key, value in info.items():
                if isinstance(value, dict):
                    value = ", ".join(f"{k} {_shown(v)}" for k, v in value.items())
                self.stdout.write(f"{key:>8}: {value}")
        if not running:
            raise SystemExit(3)  # like `pg_ctl status`: 3 means not running

    def _psql(self, server: Any, role: str) -> None:
        info = server.conninfo(role)
        psql = find_bindir() / "psql"
        # psql takes this process's place: Ctrl-C reaches psql alone, and no parent is left
        # whose death could leave it running. The password goes in its environment.
        pgtools.become(pgtools.command(psql, info), info)


def _role_timeouts(cluster: Any) -> str:
    import psycopg

    from dbops.roles.provision import set_role_timeouts

    user, database = cluster.credentials("app")[0], cluster.state().database
    with psycopg.connect(**cluster.conninfo("superuser", database), autocommit=True) as conn:
        return set_role_timeouts(conn, user, database, settings.DB_TIMEOUTS)


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}s" if value else "0s"
    return "-" if value is None else str(value)
