"""`schemadrift`: list every difference between the models and the migrated database."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from dbops.connections.errors import use_migration_role
from dbops.drift.compare import detect_drift
from sqlmigrations.management.base import DatabaseCommand
from sqlmigrations.wrappers import find_wrappers, sql_apps


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
        labels = options["app_label"] or sql_apps(find_wrappers())
        for label in labels:
            try:
                apps.get_app_config(label)
            except LookupError as err:
                raise CommandError(f"{err}; give installed app labels") from None
        # The expected schema is built in a scratch schema (rolled back): owner role.
        use_migration_role(options["database"])
        connection = connections[options["database"]]
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        report = detect_drift(connection, labels)
        # Known, intentional differences, each with a reason in settings (e.g. a
        # partitioned table's primary key that must include the partition key).
        report.accept(getattr(settings, "SCHEMADRIFT_IGNORE", []))
        differences = report.differences
        unapplied = [f"{m.app_label}.{m.name}" for m, backwards in pending if not backwards]
        if options["json"]:
            payload = {
                "apps": labels,
                "drift": bool(differences),
                "unapplied_migrations": unapplied,
                "warnings": report.warnings,
                "accepted": [d.as_dict() for d in report.accepted],
                "differences": [d.as_dict() for d in differences],
            }
            self.stdout.write(json.dumps(payload, indent=2))
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
