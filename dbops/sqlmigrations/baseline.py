"""Baseline an existing database at version N, as Flyway's `baseline` does (DbBaseline)."""

from __future__ import annotations

from dbops.sqlmigrations.exceptions import SqlMigrationError
from dbops.sqlmigrations.history import BASELINE_DESCRIPTION, TYPE_BASELINE, SchemaHistory
from dbops.sqlmigrations.versions import Version


class BaselineRefused(SqlMigrationError):
    """The history already holds migrations, so there is nothing to baseline."""


def baseline(
    history: SchemaHistory, version: Version, description: str = BASELINE_DESCRIPTION
) -> bool:
    """Write Flyway's baseline row; return False if the same baseline is already there."""
    rows = history.rows()
    # Flyway: "BASELINE can only be the first or second (after a SCHEMA row) migration".
    marker = next((r for r in rows[:2] if r.type == TYPE_BASELINE), None)
    if marker is not None:
        if marker.parsed_version == version and marker.description == description:
            return False
        raise BaselineRefused(
            f"already baselined at version {marker.version} ({marker.description!r}) on "
            f"{marker.installed_on:%Y-%m-%d %H:%M}; a database is baselined once, so "
            f"version {version} cannot be set",
            path=history.quoted_name,
        )
    if rows:
        latest = rows[-1]
        raise BaselineRefused(
            f"the history already holds {len(rows)} row{'s' if len(rows) != 1 else ''} "
            f"(latest: {latest.script}, version {latest.version or '-'}): baseline is only for "
            "a database whose schema was made outside migrations and whose history is empty; "
            "this one is already managed: run `manage.py migrate` instead",
            path=history.quoted_name,
        )
    history.ensure_table()
    # Database.getBaselineStatement(): rank 1, the description as the script too, no
    # checksum, execution_time 0, success.
    history.insert(
        version=str(version),
        description=description,
        type=TYPE_BASELINE,
        script=description,
        checksum=None,
        execution_time=0,
        success=True,
    )
    return True
