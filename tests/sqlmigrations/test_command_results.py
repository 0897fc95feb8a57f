"""The results behind `sqlmigrations info|validate|repair|baseline|lint`, read in-process."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connections

from dbops.connections.config import OWNER_ALIAS
from sqlmigrations import engine, maintenance
from sqlmigrations.lib.info import State
from sqlmigrations.lib.repair import REMOVE_FAILED
from sqlmigrations.lib.versions import Version

ALIAS = "results_owner"
_tables = itertools.count(1)
V1 = "-- Create nothing. Roll back: nothing to undo.\nSELECT 1;\n"


@pytest.fixture
def owner(django_db_setup: None, django_db_blocker: Any) -> Iterator[Any]:
    """A connection as the owner role on its own alias, outside a test transaction: repair
    and baseline take the advisory lock and commit, as they do in production."""
    connections.settings[ALIAS] = {**connections.settings[OWNER_ALIAS], "CONN_MAX_AGE": 0}
    try:
        with django_db_blocker.unblock():
            yield connections[ALIAS]
    finally:
        connections[ALIAS].close()
        del connections[ALIAS]
        del connections.settings[ALIAS]


@pytest.fixture
def project(tmp_path: Path, settings: Any, owner: Any) -> Iterator[Path]:
    """A migrations folder of its own, and a history table of its own in the test database."""
    location = tmp_path / "sql"
    location.mkdir()
    table = f"results_history_{next(_tables)}"
    settings.SQL_MIGRATIONS = {**getattr(settings, "SQL_MIGRATIONS", {}), "LOCATION": location}
    settings.SQL_MIGRATIONS["TABLE"] = table
    settings.SQL_MIGRATIONS.pop("UNDO_LOCATION", None)
    try:
        yield location
    finally:
        with owner.cursor() as cursor:
            cursor.execute(f'DROP TABLE IF EXISTS "{table}"')


def history(owner: Any, *rows: tuple[str, str, int | None, bool]) -> None:
    """Create the history table and write rows (version, script, checksum, success)."""
    with owner.cursor() as cursor:
        table = engine.history_for(cursor)
        table.ensure_table()
        for version, script, checksum, success in rows:
            table.insert(
                version=version,
                description=script.split("__", 1)[1][:-4].replace("_", " "),
                type="SQL",
                script=script,
                checksum=checksum,
                execution_time=3,
                success=success,
            )


def checksum(script: str) -> int:
    return next(mf.checksum for mf in engine.load_files(refresh=True) if mf.script == script)


def test_info_returns_each_state_the_schema_version_and_the_pending_count(
    project: Path, owner: Any
) -> None:
    (project / "V1__first.sql").write_text(V1)
    (project / "V2__second.sql").write_text(V1)
    history(owner, ("1", "V1__first.sql", checksum("V1__first.sql"), True))

    result = maintenance.info(owner)

    assert [(i.script, i.state) for i in result.migrations] == [
        ("V1__first.sql", State.SUCCESS),
        ("V2__second.sql", State.PENDING),
    ]
    assert result.schema_version == Version("1")
    assert result.pending == 1
    assert result.edited == []
    assert result.as_json()["schemaVersion"] == "1"
    assert result.invalid_indexes == []


def test_info_lists_an_edited_file(project: Path, owner: Any) -> None:
    (project / "V1__first.sql").write_text(V1)
    history(owner, ("1", "V1__first.sql", 12345, True))

    assert [i.script for i in maintenance.info(owner).edited] == ["V1__first.sql"]


def test_validate_returns_every_problem_and_the_count_info_lists(project: Path, owner: Any) -> None:
    (project / "V1__first.sql").write_text(V1)
    (project / "V2__second.sql").write_text(V1)
    (project / "V3_bad-name.sql").write_text(V1)
    history(owner, ("1", "V1__first.sql", 12345, True))

    result = maintenance.validate(owner)

    assert not result.valid
    codes = {(p.code, p.script) for p in result.problems}
    assert ("name", "V3_bad-name.sql") in codes
    assert any(p.script == "V1__first.sql" for p in result.problems)
    assert result.migrations == 2
    assert result.as_json()["valid"] is False


def test_validate_passes_a_clean_project(project: Path, owner: Any) -> None:
    (project / "V1__first.sql").write_text(V1)
    history(owner, ("1", "V1__first.sql", checksum("V1__first.sql"), True))

    result = maintenance.validate(owner)

    assert result.valid, result.problems
    assert result.migrations == 1


def test_repair_dry_run_changes_nothing_then_repair_removes_the_failed_row(
    project: Path, owner: Any
) -> None:
    (project / "V1__first.sql").write_text(V1)
    history(owner, ("1", "V1__first.sql", checksum("V1__first.sql"), False))

    dry = maintenance.repair(owner, dry_run=True)
    assert [a.action for a in dry.actions] == [REMOVE_FAILED]
    assert dry.dry_run and dry.count(REMOVE_FAILED) == 1
    assert "1 failed rows removed" in dry.summary
    with owner.cursor() as cursor:
        assert len(engine.history_for(cursor).rows()) == 1

    done = maintenance.repair(owner)
    assert not done.dry_run and done.count(REMOVE_FAILED) == 1
    assert done.table.endswith(f'"{django_settings.SQL_MIGRATIONS["TABLE"]}"')
    with owner.cursor() as cursor:
        assert engine.history_for(cursor).rows() == []


def test_baseline_records_the_version_once(project: Path, owner: Any) -> None:
    (project / "V1__first.sql").write_text(V1)

    first = maintenance.baseline(owner, Version("1"))
    again = maintenance.baseline(owner, Version("1"))

    assert first.created and not again.created
    assert first.as_json() == {"baselineVersion": "1", "created": True}
    with owner.cursor() as cursor:
        [row] = engine.history_for(cursor).rows()
    assert (row.type, row.version) == ("BASELINE", "1")


def test_lint_returns_its_findings_without_a_database(project: Path) -> None:
    (project / "V1__first.sql").write_text("SELECT 1;\n")  # no rollback instructions

    result = maintenance.lint(None, git=False)

    assert result.files == 1
    assert [(f.script, f.rule) for f in result.findings] == [
        ("V1__first.sql", "no-rollback-instructions")
    ]
    # Without a database the large-table rules cannot know sizes: lint says it skipped them.
    assert result.skipped == ["migrate's large-table checks: no database to read the sizes from"]


def test_lint_refuses_a_file_that_is_not_a_migration(project: Path, tmp_path: Path) -> None:
    (project / "V1__first.sql").write_text(V1)
    stray = tmp_path / "elsewhere.sql"
    stray.write_text(V1)

    with pytest.raises(maintenance.NotAMigrationFile) as raised:
        maintenance.lint(None, [str(stray)], git=False)
    assert str(raised.value).startswith(f"{stray}: not a migration file under {project}")
