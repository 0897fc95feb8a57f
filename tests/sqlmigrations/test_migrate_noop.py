"""`migrate` with nothing pending finishes without rendering Django's migration state."""

from __future__ import annotations

import subprocess

from tests.sqlproject import SqlProject


def migrate(project: SqlProject) -> str:
    result: subprocess.CompletedProcess[str] = project.manage("migrate", "--no-input")
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def test_it_reports_nothing_to_apply_and_still_sends_post_migrate(
    sqlproject: SqlProject,
) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n")
    migrate(sqlproject)
    # post_migrate receivers (contenttypes, auth) repair what is missing on every run.
    sqlproject.query(
        "DELETE FROM auth_permission WHERE content_type_id IN (SELECT id FROM"
        " django_content_type WHERE app_label = 'auth' AND model = 'group')"
    )
    sqlproject.query("DELETE FROM django_content_type WHERE app_label = 'auth' AND model = 'group'")

    out = migrate(sqlproject)

    applied = out.split("Apply all migrations: ")[1].split("\n")[0].split(", ")
    assert {"auth", "contenttypes", "dbops"} <= set(applied)
    assert out.rstrip().endswith("No migrations to apply.")
    assert sqlproject.query(
        "SELECT codename FROM auth_permission JOIN django_content_type ct"
        " ON ct.id = content_type_id WHERE ct.app_label = 'auth' AND ct.model = 'group'"
        " ORDER BY codename"
    ) == [("add_group",), ("change_group",), ("delete_group",), ("view_group",)]


def test_it_still_applies_a_changed_repeatable(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n")
    sqlproject.write("R__a_view.sql", "CREATE OR REPLACE VIEW a_view AS SELECT id FROM a;\n")
    migrate(sqlproject)
    sqlproject.write(
        "R__a_view.sql", "CREATE OR REPLACE VIEW a_view AS SELECT id, 1 AS one FROM a;\n"
    )

    out = migrate(sqlproject)

    assert "No migrations to apply." in out
    assert "Applying repeatable R__a_view.sql... OK" in out
    assert sqlproject.query("SELECT one FROM a_view") == []


def test_a_pending_django_migration_is_applied_by_django(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n")
    migrate(sqlproject)
    sqlproject.query("DROP TABLE django_session")
    sqlproject.query("DELETE FROM django_migrations WHERE app = 'sessions'")

    out = migrate(sqlproject)

    assert "Applying sessions.0001_initial... OK" in out
    assert sqlproject.query("SELECT count(*) FROM django_session") == [(0,)]
