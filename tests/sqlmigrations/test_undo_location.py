"""Undo files live in migrations_undo/, out of the folder Flyway reads (flyway.toml)."""

from __future__ import annotations

from tests.realproject import RealProject, real_project  # noqa: F401


def test_check_and_validate_find_files_in_the_wrong_folder(real_project: RealProject) -> None:  # noqa: F811
    p = real_project
    undo = p.root / "migrations_undo"
    (undo / "U1__create_migration_test_table.sql").rename(
        p.sql_dir / "U1__create_migration_test_table.sql"
    )
    (p.sql_dir / "V9__create_notifications_table.sql").rename(
        undo / "V9__create_notifications_table.sql"
    )

    checked = p.manage("check")
    validated = p.manage("sqlmigrations", "validate")

    assert checked.returncode == 1
    assert (
        "U1__create_migration_test_table.sql: (sqlmigrations.E007) bad migration file name: "
        "an undo file in migrations_sql/, where Flyway Community cannot parse its name"
    ) in checked.stderr
    assert "HINT: Move it to migrations_undo/ (SQL_MIGRATIONS['UNDO_LOCATION'])." in (
        checked.stderr
    )
    assert (
        "V9__create_notifications_table.sql: (sqlmigrations.E007) bad migration file name: not an "
        "undo file, in migrations_undo/: Flyway does not read that folder"
    ) in checked.stderr
    assert validated.returncode == 1
    assert (
        "U1__create_migration_test_table.sql: an undo file in migrations_sql/, which Flyway reads"
    ) in validated.stderr
    assert (
        "V9__create_notifications_table.sql: a versioned migration in migrations_undo/"
    ) in validated.stderr
