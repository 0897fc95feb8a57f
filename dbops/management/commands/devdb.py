"""Manage the local PostgreSQL cluster: start, stop, status, url, psql, destroy."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from dbops.connections import pgtools
from dbops.connections.config import uses_local_cluster
from dbops.localdb import LocalDBError, UnsafeFolderError, default_cluster
from dbops.localdb.binaries import BinariesNotFound, find_bindir
from sqlmigrations.management.base import DatabaseCommand
from sqlmigrations.redact import mask_url


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

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = default_cluster()
        action = options["action"]
        try:
            if action == "start":
                if options["if_no_database_url"] and not uses_local_cluster():
                    self.stdout.write("DATABASE_URL is set: not starting the local database.")
                    return
                find_bindir()
                result = cluster.start()
                state = cluster.state()
                self.stdout.write(
                    f"Local database {result}: {state.database} on 127.0.0.1:{state.port} "
                    f"(SSL verify-full, CA {cluster.ca_file})."
                )
            elif action == "stop":
                self.stdout.write(f"Local database {cluster.stop()}.")
            elif action == "destroy":
                self.stdout.write(f"Local database {cluster.destroy()} ({cluster.base_dir}).")
            elif action == "status":
                self._status(cluster, as_json=options["json"])
            elif action == "url":
                url = cluster.url(options["role"])
                self.stdout.write(url if options["reveal"] else mask_url(url))
            elif action == "psql":
                self._psql(cluster, options["role"])
        except UnsafeFolderError as err:
            # A configuration refused, as settings refuse one: exit 2 (DEVDB_DIR is the fix).
            raise CommandError(str(err), returncode=2) from err
        except (LocalDBError, BinariesNotFound) as err:
            raise CommandError(str(err)) from err

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
        if as_json:
            self.stdout.write(json.dumps(info))
        else:
            for key, value in info.items():
                self.stdout.write(f"{key:>8}: {value}")
        if not running:
            raise SystemExit(3)  # like `pg_ctl status`: 3 means not running

    def _psql(self, cluster: Any, role: str) -> None:
        info = cluster.conninfo(role)
        psql = find_bindir() / "psql"
        # psql takes this process's place: Ctrl-C reaches psql alone, and no parent is left
        # whose death could leave it running. The password goes in its environment.
        pgtools.become(pgtools.command(psql, info), info)
