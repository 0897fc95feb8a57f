"""`schemadrift`: list every difference between the models and the migrated database."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from dbops.drift.check import UnknownApp, check_drift
from sqlmigrations import engine
from sqlmigrations.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Compare the models of the SQL-migrated apps (or the apps given) with the database: "
        "tables, columns, types, nullability, defaults, keys, constraints, indexes. "
        "Exit 1 on drift."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "app_label", nargs="*", help="Apps to compare (default: apps with SQL wrappers)."
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, choices=tuple(connections))

    def handle(self, *args: Any, **options: Any) -> None:
        # The expected schema is built in a scratch schema (rolled back): owner role.
        connection = connections[engine.migration_alias(options["database"])]
        try:
            result = check_drift(connection, options["app_label"])
        except UnknownApp as err:
            raise CommandError(str(err)) from None
        labels, unapplied, report = result.apps, result.unapplied, result.report
        differences = result.differences
        if options["json"]:
            self.stdout.write(json.dumps(result.as_json(), indent=2))
            if differences:
                sys.exit(1)
            return
        if unapplied:
            self.stderr.write(
                self.style.WARNING(
                    f"{len(unapplied)} migration(s) not applied yet ({', '.join(unapplied[:5])}"
                    f"{', ...' if len(unapplied) > 5 else ''}): run `manage.py migrate` first; "
                    "the differences below may be only that."
                )
            )
        for warning in report.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        accepted = ""
        if report.accepted:
            keys = "; ".join(d.key for d in report.accepted)
            accepted = f" ({len(report.accepted)} accepted by SCHEMADRIFT_IGNORE: {keys})"
        if not differences:
            self.stdout.write(
                f"No drift: the models of {', '.join(labels)} match the database.{accepted}"
            )
            return
        for difference in differences:
            self.stdout.write(f"  {difference}")
        raise CommandError(
            f"schema drift: {len(differences)} difference(s) between the models of "
            f"{', '.join(labels)} and the database; fix the SQL with a new migration "
            "(`manage.py makesqlmigration`) or the model, then run schemadrift again"
        )
