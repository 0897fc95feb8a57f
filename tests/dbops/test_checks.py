"""System checks dbops.E002-E008: SQL files, their wrappers and the version sequence."""

from __future__ import annotations

import subprocess

from tests.appproject import AppProject, app_project  # noqa: F401

WRAPPER = """from django.db import migrations

from dbops.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = {dependencies!r}
    operations = [
        migrations.SeparateDatabaseAndState(database_operations=[RunSQLFile({script!r})]),
    ]
"""
V1 = ("base", "V1__create_probe_table")


def wrapper(project: AppProject, module: str, script: str, dependencies: list) -> None:
    path = project.migrations_dir / f"{module}.py"
    path.write_text(WRAPPER.format(script=script, dependencies=dependencies))


def sql(project: AppProject, name: str) -> None:
    (project.sql_dir / name).write_text("SELECT 1;\n")


def check(project: AppProject) -> subprocess.CompletedProcess[str]:
    return project.manage("check")


def test_a_consistent_project_passes(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2__create_items.sql")
    wrapper(app_project, "V2__create_items", "V2__create_items.sql", [V1])
    sql(app_project, "V3__add_sku.sql")
    wrapper(app_project, "V3__add_sku", "V3__add_sku.sql", [("shop", "V2__create_items")])

    result = check(app_project)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_it_reports_a_file_without_a_wrapper(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2__create_items.sql")

    result = check(app_project)

    assert result.returncode == 1
    assert "V2__create_items.sql: (dbops.E002) no Django migration runs V2__create_items.sql" in (
        result.stderr
    )
    assert "dependencies = [('base', 'V1__create_probe_table')]" in result.stderr


def test_it_reports_a_wrapper_whose_file_is_missing(app_project: AppProject) -> None:  # noqa: F811
    wrapper(app_project, "V2__create_items", "V2__create_itmes.sql", [V1])

    result = check(app_project)

    assert result.returncode == 1
    assert "(dbops.E003) migration shop.V2__create_items runs V2__create_itmes.sql" in (
        result.stderr
    )
    assert "V2__create_items.py" in result.stderr


def test_it_reports_a_broken_dependency_chain(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2__create_items.sql")
    wrapper(app_project, "V2__create_items", "V2__create_items.sql", [])

    result = check(app_project)

    assert result.returncode == 1
    assert (
        "(dbops.E004) migration shop.V2__create_items runs V2__create_items.sql but does not "
        "depend on base.V1__create_probe_table"
    ) in result.stderr
    assert "Add ('base', 'V1__create_probe_table') to the dependencies of" in (result.stderr)


def test_it_reports_duplicate_versions(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2__create_items.sql")
    sql(app_project, "V2__create_orders.sql")
    wrapper(app_project, "V2__create_items", "V2__create_items.sql", [V1])
    wrapper(app_project, "V2__create_orders", "V2__create_orders.sql", [V1])

    result = check(app_project)

    assert result.returncode == 1
    assert (
        "(dbops.E005) duplicate version 2 in V2__create_items.sql and V2__create_orders.sql"
    ) in result.stderr


def test_it_reports_a_gap_in_the_versions(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V3__create_items.sql")
    wrapper(app_project, "V3__create_items", "V3__create_items.sql", [V1])

    result = check(app_project)

    assert result.returncode == 1
    assert "V3__create_items.sql: (dbops.E006) version 3 follows version 1 but V2 is" in (
        result.stderr
    )
    assert "Rename it to V2__create_items.sql" in result.stderr


def test_it_reports_bad_file_names(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2_create_items.sql")
    sql(app_project, "V2__Create-Items.sql")
    wrapper(app_project, "V2__create_items", "V2__Create-Items.sql", [V1])

    result = check(app_project)

    assert result.returncode == 1
    assert "V2_create_items.sql: (dbops.E007) bad migration file name" in result.stderr
    assert "V2__Create-Items.sql: (dbops.E007) bad migration file name" in result.stderr
    assert "Rename it to V2__create_items.sql" in result.stderr
    assert "Rename the file as the message says.\n" in result.stderr


def test_a_badly_named_file_is_only_asked_to_be_renamed(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2__Create-Items.sql")

    result = check(app_project)

    assert result.returncode == 1
    assert "V2__Create-Items.sql: (dbops.E007)" in result.stderr
    assert "(dbops.E002)" not in result.stderr  # its wrapper is named after the new name


def test_it_reports_a_file_run_by_two_wrappers(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2__create_items.sql")
    wrapper(app_project, "V2__create_items", "V2__create_items.sql", [V1])
    wrapper(app_project, "V2__create_items_again", "V2__create_items.sql", [V1])

    result = check(app_project)

    assert result.returncode == 1
    assert "(dbops.E008) V2__create_items.sql is run by 2 migrations" in result.stderr
