"""Baseline an existing database at version N, as Flyway's `baseline` does (DbBaseline)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.history import BASELINE_DESCRIPTION, TYPE_BASELINE, SchemaHistory
from sqlmigrations.lib.objects import absent_objects, net_objects
from sqlmigrations.lib.versions import Version

SHOWN = 8  # absent objects named in a refusal; the rest are counted


class BaselineRefused(SqlMigrationError):
    """The history already holds migrations, so there is nothing to baseline."""


def baseline(
    history: SchemaHistory,
    version: Version,
    description: str = BASELINE_DESCRIPTION,
    files: Iterable[tuple[MigrationFile, str]] = (),
) -> bool:
    """Write Flyway's baseline row; return False if the same baseline is already there.

    `files` are the V files with their rendered SQL: what those up to `version` create
    must be in the database, or `migrate` would later fail on the first file above it.
    """
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
    _require_schema_at(history, version, files)
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


def _require_schema_at(
    history: SchemaHistory, version: Version, files: Iterable[tuple[MigrationFile, str]]
) -> None:
    """Refuse a baseline whose version's objects the database does not have."""
    below = [(mf, sql) for mf, sql in files if mf.name.version and mf.name.version <= version]
    expected = net_objects(below)
    missing = absent_objects(history.cursor, expected)
    if not missing:
        return
    shown = ", ".join(str(o) for o in missing[:SHOWN])
    more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
    named = [o for o in expected if o.name is not None]
    if len(missing) == len(named):
        fix = (
            "this database has none of them: run `manage.py migrate` to create the schema "
            "instead of baselining it"
        )
    else:
        fix = (
            f"baseline at the version this schema is really at, or create what is missing "
            f"first; a wrong baseline makes `migrate` fail on the first file above {version}"
        )
    raise BaselineRefused(
        f"version {version} is not this database's schema: {len(missing)} of the "
        f"{len(named)} objects that the files up to version {version} create "
        f"{'is' if len(missing) == 1 else 'are'} absent: {shown}{more}; nothing was "
        f"recorded: {fix}",
        path=history.quoted_name,
    )
