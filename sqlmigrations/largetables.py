"""The Django side of sqlmigrations.lib.dangerous: settings, the models, migrate and lint.

`migrate` calls require_safe_operations() on the whole pending set before the first file
runs, beside the role check: a rewrite of a large table, a column the models still read,
or a rename stops the run with nothing applied. `sqlmigrations lint` shows the same
findings through lint_findings().
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper

from sqlmigrations.lib import dangerous
from sqlmigrations.lib.acknowledgements import Acknowledgement
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.lint import Finding, operation_findings
from sqlmigrations.lib.livecatalog import Catalog, Limits, parse_size

ROWS_SETTING = "LARGE_TABLE_ROWS"
SIZE_SETTING = "LARGE_TABLE_SIZE"
DEFAULT_ROWS = 100_000
DEFAULT_SIZE = "64MB"


def limits() -> Limits:
    """Read the thresholds from SQL_MIGRATIONS at call time (override_settings works)."""
    options = getattr(settings, "SQL_MIGRATIONS", {})
    rows = options.get(ROWS_SETTING, DEFAULT_ROWS)
    where = f"SQL_MIGRATIONS[{ROWS_SETTING!r}]"
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise SqlMigrationError(f"{rows!r} is not a number of rows (e.g. 100000)", path=where)
    size = parse_size(options.get(SIZE_SETTING, DEFAULT_SIZE), f"SQL_MIGRATIONS[{SIZE_SETTING!r}]")
    return Limits(rows, size)


def model_columns() -> dict[tuple[str, str], str]:
    """Map (table, column) to the model fields that read it ("chores.Task.title").

    From the app registry, not the apps' modules: the engine imports none of the apps.
    """
    readers: dict[tuple[str, str], list[str]] = {}
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if meta.proxy:
            continue
        for f in meta.local_concrete_fields:
            key = (meta.db_table, f.column)
            label = f"{meta.label}.{f.name}"
            if label not in readers.setdefault(key, []):
                readers[key].append(label)
    return {key: ", ".join(labels) for key, labels in readers.items()}


def require_safe_operations(
    connection: BaseDatabaseWrapper, files: Sequence[tuple[MigrationFile, str]]
) -> list[tuple[dangerous.Operation, Acknowledgement]]:
    """Refuse, before anything runs, the pending set's dangerous operations.

    `files`: every file the run is about to apply, with its rendered SQL. Returns the
    acknowledged operations, for the caller to show.
    """
    if not files:
        return []
    bounds = limits()
    with connection.cursor() as cursor:
        refused, allowed = dangerous.dangerous_operations(
            Catalog(cursor), files, model_columns(), bounds
        )
    if refused:
        raise dangerous.refusal(refused)
    return allowed


def lint_findings(
    connection: BaseDatabaseWrapper | None,
    targets: Sequence[MigrationFile],
    values: dict[str, Any],
    applied: set[Any],
) -> tuple[list[Finding], list[str]]:
    """Return lint's findings of migrate's check, and the checks left out (and why).

    With a connection: the targets not applied yet, with the live sizes, as migrate
    would refuse them. Without: only the rules that need no catalog (columns the models
    read, renames) over every target.
    """
    files = []
    for mf in targets:
        if mf.kind == "U" or (connection is not None and mf.name.version in applied):
            continue
        try:
            files.append((mf, mf.render(values)))
        except SqlMigrationError:
            continue  # lint reports the unreadable file already
    skipped: list[str] = []
    readers = model_columns()
    if connection is None:
        skipped.append("migrate's large-table checks: no database to read the sizes from")
        return operation_findings(files, readers, None), skipped
    with connection.cursor() as cursor:
        catalog = Catalog(cursor)
        return operation_findings(files, readers, catalog, limits()), skipped
