"""Provision the owner and application roles on a database, or prove what the app role can do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from dbops.connections.errors import OWNER_KEYS, SETTING_KEY, unavailable
from dbops.roles.check import application_role_probes, check_application_role
from dbops.roles.privileges import DJANGO_HISTORY_TABLE, classify
from dbops.roles.provision import ProvisionError, ProvisionIncomplete, provision_database
from sqlmigrations.management.base import DatabaseCommand
from sqlmigrations.redact import redact, register_secret

ALIAS = "dbroles"


def history_table() -> str:
    return str(settings.SQL_MIGRATIONS.get("TABLE", "flyway_schema_history"))


@contextmanager
def settings_connection(config: dict[str, Any]) -> Iterator[Any]:
    """Open one psycopg connection the way the project's backend would, without its pool."""
    base = connections[DEFAULT_DB_ALIAS].settings_dict
    options = {k: v for k, v in config.get("OPTIONS", {}).items() if k != "pool"}
    # A connection alias of its own: signal receivers (django.contrib.postgres) look it up.
    connections.settings[ALIAS] = {
        **base,
        **{k: config[k] for k in OWNER_KEYS},
        SETTING_KEY: config.get(SETTING_KEY, ""),
        "OPTIONS": options,
    }
    wrapper = connections[ALIAS]
    try:
        wrapper.ensure_connection()
        yield wrapper.connection
    finally:
        wrapper.close()
        del connections[ALIAS]
        del connections.settings[ALIAS]


@contextmanager
def url_connection(url: str) -> Iterator[Any]:
    """Open a connection from --url; the configured sslmode/sslrootcert unless it sets its own."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        raise CommandError(
            "--url is not a valid PostgreSQL URL: use postgres://USER:PASSWORD@HOST:PORT/NAME."
        ) from None
    register_secret(str(params.get("password") or ""))
    params.setdefault("sslmode", settings.DB_SSLMODE)
    if getattr(settings, "DB_SSLROOTCERT", ""):
        params.setdefault("sslrootcert", settings.DB_SSLROOTCERT)
    params.setdefault("application_name", "choregarden-dbroles")
    params.setdefault("connect_timeout", 10)
    try:
        conn = psycopg.connect(**params, autocommit=True)
    except psycopg.OperationalError as err:
        raise unavailable("--url", {SETTING_KEY: "--url"}, err, params) from err
    with conn:
        yield conn


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

    def _connection(self, url: str | None, config: dict[str, Any]) -> Any:
        return url_connection(url) if url else settings_connection(config)

    def _provision(self, url: str | None, *, as_json: bool) -> None:
        app = connections[DEFAULT_DB_ALIAS].settings_dict
        owner = getattr(settings, "MIGRATION_DATABASE", None) or app
        with self._connection(url, owner) as conn:
            steps = provision_database(
                conn,
                owner=owner["USER"] or conn.info.user,
                app=app["USER"],
                app_password=app.get("PASSWORD") or None,
                owner_password=(owner.get("PASSWORD") or None) if owner is not app else None,
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
        config = connections[DEFAULT_DB_ALIAS].settings_dict
        history = history_table()
        with self._connection(url, config) as conn:
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
