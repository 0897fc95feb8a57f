"""Compare the SQL-migrated apps' models with the database: what `schemadrift` reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper

from dbops.drift.compare import Difference, DriftReport, detect_drift
from sqlmigrations.django_internals import MigrationExecutor
from sqlmigrations.wrappers import find_wrappers, sql_apps


class UnknownApp(LookupError):
    """An app label given to compare is not installed."""


@dataclass
class DriftResult:
    """The differences of the apps' models from the database, and what may explain them."""

    apps: list[str]
    unapplied: list[str]  # migrations not applied yet: the differences may be only that
    report: DriftReport

    @property
    def differences(self) -> list[Difference]:
        return self.report.differences

    def as_json(self) -> dict[str, Any]:
        return {
            "apps": self.apps,
            "drift": bool(self.differences),
            "unapplied_migrations": self.unapplied,
            "warnings": self.report.warnings,
            "accepted": [d.as_dict() for d in self.report.accepted],
            "differences": [d.as_dict() for d in self.differences],
        }


def check_drift(connection: BaseDatabaseWrapper, labels: list[str] | None = None) -> DriftResult:
    """Compare the apps' models (default: the apps with SQL wrappers) with the database.

    The expected schema is built in a scratch schema and rolled back: the connection needs
    the owner role.
    """
    labels = labels or sql_apps(find_wrappers())
    for label in labels:
        try:
            apps.get_app_config(label)
        except LookupError as err:
            raise UnknownApp(f"{err}; give installed app labels") from None
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    report = detect_drift(connection, labels)
    # Known, intentional differences, each with a reason in settings (e.g. a partitioned
    # table's primary key that must include the partition key).
    report.accept(getattr(settings, "SCHEMADRIFT_IGNORE", []))
    unapplied = [f"{m.app_label}.{m.name}" for m, backwards in pending if not backwards]
    return DriftResult(labels, unapplied, report)
