"""Provision the owner and application roles on a database, or prove what the app role can do."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

from dbops.connections.config import ConnInfo, conninfo, from_url, open_connection
from dbops.roles.check import application_role_probes, check_application_role
from dbops.roles.privileges import DJANGO_HISTORY_TABLE, classify
from dbops.roles.provision import ProvisionError, ProvisionIncomplete, provision_database
from sqlmigrations.management.base import DatabaseCommand
from sqlmigrations.redact import redact

APPLICATION_NAME = "choregarden-dbroles"


def history_table() -> str:
    return str(settings.SQL_MIGRATIONS.get("TABLE", "flyway_schema_history"))


def target(url: str | None, role: str) -> ConnInfo:
    """Return --url's connection (the configured SSL unless it sets its own), else `role`'s."""
    if not url:
        return conninfo(role).named(APPLICATION_NAME)
    try:
        info = from_url(
            url, "--url", sslmode=settings.DB_SSLMODE, sslrootcert=settings.DB_SSLROOTCERT
        )
    except ImproperlyConfigured as err:
        raise CommandError(str(err)) from None
    return info.named(APPLICATION_NAME)


class Command(DatabaseCommand):
    help = (
        "provision: create/update the owner and application roles and their privileges "
        "(idempotent). check: connect as the application role and prove what it may do."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["provision", "check"])
        parser.add_argument(
            "--url",
            help="provision: connect with this URL (e.g. the RDS master user) instead of "
            "MIGRATION_DATABASE_URL; check: the application role's URL instead of DATABASE_URL.",
        )
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "provision":
                self._provision(options["url"], as_json=options["json"])
            else:
                self._check(options["url"], as_json=options["json"])
        except ProvisionIncomplete as err:
            self._print_steps(err.steps, database=err.database, as_json=options["json"])
            raise CommandError(redact(str(err))) from None
        except ProvisionError as err:
            raise CommandError(redact(str(err))) from None

    def _provision(self, url: str | None, *, as_json: bool) -> None:
        app, owner = conninfo("app"), conninfo("owner")
        # One URL for both roles: there is no owner of its own to give a password.
        separate = owner.user != app.user
        with open_connection(target(url, "owner")) as conn:
            steps = provision_database(
                conn,
                owner=owner.user or conn.info.user,
                app=app.user,
                app_password=app.password or None,
                owner_password=(owner.password or None) if separate else None,
                schema=settings.SQL_MIGRATIONS.get("SCHEMA", "public"),
                history_tables=(history_table(), DJANGO_HISTORY_TABLE),
                timeouts=settings.DB_TIMEOUTS,
            )
            database = conn.info.dbname
        self._print_steps(steps, database=database, as_json=as_json)
        if not as_json:
            self.stdout.write(f"Done! Roles and privileges are in place on {database}.")

    def _print_steps(self, steps: list[str], *, database: str, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({"database": database, "steps": steps}))
            return
        for step in steps:
            self.stdout.write(f"  {step}")

    def _check(self, url: str | None, *, as_json: bool) -> None:
        history = history_table()
        with open_connection(target(url, "app")) as conn:
            role, database = conn.info.user, conn.info.dbname
            relations = classify(conn, app=role, history_tables=(history, DJANGO_HISTORY_TABLE))
            probes = application_role_probes(
                history_table=history,
                extension_members=[r for r in relations if r.extension],
            )
            results = check_application_role(conn, probes, relations)
        failed = [r for r in results if not r.ok]
        if as_json:
            self.stdout.write(
                json.dumps(
                    {
                        "role": role,
                        "database": database,
                        "ok": not failed,
                        "checks": [r.as_dict() for r in results],
                    }
                )
            )
        else:
            for r in results:
                self.stdout.write(f"{'OK' if r.ok else 'FAIL':<5} {r.label}: {r.detail}")
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(results)} checks failed for role {role} on {database}: "
                "run `manage.py dbroles provision` as the owner (or an admin with --url)."
            )
        if not as_json:
            self.stdout.write(f"All {len(results)} checks passed for role {role} on {database}.")
