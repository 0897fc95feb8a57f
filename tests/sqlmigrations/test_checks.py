"""System checks sqlmigrations.E002-E008, E010, E011: SQL files, wrappers, sequence and graph."""

from __future__ import annotations

import subprocess

from tests.appproject import AppProject, app_project  # noqa: F401

WRAPPER = """from django.db import migrations

from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    initial = {initial!r}
    dependencies = {dependencies!r}
    operations = [
        migrations.SeparateDatabaseAndState(database_operations=[RunSQLFile({script!r})]),
    ]
"""
V1 = ("base", "V1__create_probe_table")


def wrapper(
    project: AppProject,
    module: str,
    script: str,
    dependencies: list,
    *,
    initial: bool | None = None,
    app: str = "shop",
) -> None:
    path = project.root / app / "migrations" / f"{module}.py"
    path.write_text(WRAPPER.format(script=script, dependencies=dependencies, initial=initial))


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
    assert (
        "V2__create_items.sql: (sqlmigrations.E002) no Django migration runs V2__create_items.sql"
    ) in result.stderr
    assert "dependencies = [('base', 'V1__create_probe_table')]" in result.stderr


def test_it_reports_a_wrapper_whose_file_is_missing(app_project: AppProject) -> None:  # noqa: F811
    wrapper(app_project, "V2__create_items", "V2__create_itmes.sql", [V1])

    result = check(app_project)

    assert result.returncode == 1
    assert "(sqlmigrations.E003) migration shop.V2__create_items runs V2__create_itmes.sql" in (
        result.stderr
    )
    assert "V2__create_items.py" in result.stderr


def test_it_reports_a_broken_dependency_chain(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2__create_items.sql")
    wrapper(app_project, "V2__create_items", "V2__create_items.sql", [])

    result = check(app_project)

    assert result.returncode == 1
    assert (
        "(sqlmigrations.E004) migration shop.V2__create_items runs V2__create_items.sql "
        "but does not depend on base.V1__create_probe_table"
    ) in result.stderr
    assert "Add ('base', 'V1__create_probe_table') to the dependencies of" in result.stderr


def test_it_reports_duplicate_versions(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2__create_items.sql")
    sql(app_project, "V2__create_orders.sql")
    wrapper(app_project, "V2__create_items", "V2__create_items.sql", [V1])
    wrapper(app_project, "V2__create_orders", "V2__create_orders.sql", [V1])

    result = check(app_project)

    assert result.returncode == 1
    assert (
        "(sqlmigrations.E005) duplicate version 2 in V2__create_items.sql and V2__create_orders.sql"
    ) in result.stderr


def test_it_reports_a_gap_in_the_versions(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V3__create_items.sql")
    wrapper(app_project, "V3__create_items", "V3__create_items.sql", [V1])

    result = check(app_project)

    assert result.returncode == 1
    assert (
        "V3__create_items.sql: (sqlmigrations.E006) version 3 follows "
        "V1__create_probe_table.sql but V2 is"
    ) in (result.stderr)
    # Outside version control nobody can tell whether V3 ran somewhere: both ways out.
    assert "If V2 was deleted, restore the deleted V2 file and its wrapper" in result.stderr
    assert "rename this file to V2__create_items.sql (and its wrapper) only if it has never" in (
        result.stderr
    )


def commit_all(project: AppProject, message: str) -> None:
    """Make the project a git checkout whose HEAD holds every file it has now."""
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", message]):
        command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
        subprocess.run(command, cwd=project.root, check=True, capture_output=True)


def test_a_gap_after_a_committed_file_never_asks_to_rename_it(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2__create_items.sql")
    wrapper(app_project, "V2__create_items", "V2__create_items.sql", [V1])
    sql(app_project, "V3__add_sku.sql")
    wrapper(app_project, "V3__add_sku", "V3__add_sku.sql", [("shop", "V2__create_items")])
    commit_all(app_project, "V2 and V3")
    (app_project.sql_dir / "V2__create_items.sql").unlink()
    (app_project.migrations_dir / "V2__create_items.py").unlink()

    result = check(app_project)

    assert result.returncode == 1
    assert (
        "V3__add_sku.sql: (sqlmigrations.E006) version 3 follows "
        "V1__create_probe_table.sql but V2 is"
    ) in (result.stderr)
    assert "V3__add_sku.sql is committed, so it may already be applied somewhere" in result.stderr
    assert "restore the deleted V2 file and its wrapper from version control" in result.stderr
    assert "Rename" not in result.stderr
    assert "(sqlmigrations.E004)" not in result.stderr  # no dependency to add across a deleted file


def test_a_gap_after_an_uncommitted_file_asks_to_rename_it(app_project: AppProject) -> None:  # noqa: F811
    commit_all(app_project, "V1")
    sql(app_project, "V3__create_items.sql")
    wrapper(app_project, "V3__create_items", "V3__create_items.sql", [V1])

    result = check(app_project)

    assert result.returncode == 1
    assert "Rename it to V2__create_items.sql (and its wrapper): it is not committed yet." in (
        result.stderr
    )


def test_a_deleted_file_whose_wrapper_is_left_is_asked_back(app_project: AppProject) -> None:  # noqa: F811
    wrapper(app_project, "V2__create_items", "V2__create_items.sql", [V1])
    sql(app_project, "V3__add_sku.sql")
    wrapper(app_project, "V3__add_sku", "V3__add_sku.sql", [("shop", "V2__create_items")])

    result = check(app_project)

    assert result.returncode == 1
    assert "(sqlmigrations.E003) migration shop.V2__create_items runs V2__create_items.sql" in (
        result.stderr
    )
    assert "Restore migrations_sql/V2__create_items.sql" in result.stderr
    assert "(sqlmigrations.E006)" not in result.stderr
    assert "(sqlmigrations.E004)" not in result.stderr


def test_it_reports_bad_file_names(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2_create_items.sql")
    sql(app_project, "V2__Create-Items.sql")
    wrapper(app_project, "V2__create_items", "V2__Create-Items.sql", [V1])

    result = check(app_project)

    assert result.returncode == 1
    assert "V2_create_items.sql: (sqlmigrations.E007) bad migration file name" in result.stderr
    assert "V2__Create-Items.sql: (sqlmigrations.E007) bad migration file name" in result.stderr
    assert "Rename it to V2__create_items.sql" in result.stderr
    assert "Rename the file as the message says.\n" in result.stderr


def test_a_dotted_version_is_never_asked_to_take_a_version_another_file_has(
    app_project: AppProject,  # noqa: F811
) -> None:
    for n, name in ((2, "create_items"), (3, "add_sku"), (4, "add_price")):
        sql(app_project, f"V{n}__{name}.sql")
    sql(app_project, "V4_1__late_fix.sql")

    result = check(app_project)

    assert "V4_1__late_fix.sql: (sqlmigrations.E007) bad migration file name" in result.stderr
    assert "use the next free integer, e.g. 5" in result.stderr
    assert "Rename it to V5__late_fix.sql." in result.stderr
    assert "V4__late_fix.sql" not in result.stderr


def test_a_badly_named_file_is_only_asked_to_be_renamed(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2__Create-Items.sql")

    result = check(app_project)

    assert result.returncode == 1
    assert "V2__Create-Items.sql: (sqlmigrations.E007)" in result.stderr
    assert "(sqlmigrations.E002)" not in result.stderr  # its wrapper is named after the new name


def test_it_reports_a_file_run_by_two_wrappers(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2__create_items.sql")
    wrapper(app_project, "V2__create_items", "V2__create_items.sql", [V1])
    wrapper(app_project, "V2__create_items_again", "V2__create_items.sql", [V1])

    result = check(app_project)

    assert result.returncode == 1
    assert "(sqlmigrations.E008) V2__create_items.sql is run by 2 migrations" in result.stderr


def test_it_reports_an_app_with_two_latest_migrations(app_project: AppProject) -> None:  # noqa: F811
    # What makesqlmigration used to write: base's V3 comes after shop's V2, and shop's V4
    # depends on V3 only, saying initial = True, so shop has two leaves.
    sql(app_project, "V2__create_items.sql")
    wrapper(app_project, "V2__create_items", "V2__create_items.sql", [V1], initial=True)
    sql(app_project, "V3__create_orders.sql")
    wrapper(
        app_project,
        "V3__create_orders",
        "V3__create_orders.sql",
        [V1, ("shop", "V2__create_items")],
        app="base",
    )
    sql(app_project, "V4__add_fault_table.sql")
    wrapper(
        app_project,
        "V4__add_fault_table",
        "V4__add_fault_table.sql",
        [("base", "V3__create_orders")],
        initial=True,
    )

    result = check(app_project)
    migrate = app_project.manage("migrate", "--skip-checks", "--no-input")

    assert result.returncode == 1
    assert (
        "/shop/migrations/V4__add_fault_table.py: (sqlmigrations.E010) app 'shop' has 2 latest "
        "migrations (V2__create_items, V4__add_fault_table): `migrate` refuses it"
    ) in result.stderr
    assert (
        "/shop/migrations/V4__add_fault_table.py and remove its `initial = True`"
    ) in result.stderr
    assert "HINT: Add ('shop', 'V2__create_items') to the dependencies of " in result.stderr
    assert (
        "(sqlmigrations.E011) shop.V4__add_fault_table says `initial = True` but is not the app's "
        "first migration (shop.V2__create_items comes before it)"
    ) in result.stderr
    # The check says what migrate would say.
    assert "Conflicting migrations detected" in migrate.stderr


def test_it_reports_initial_on_a_later_wrapper(app_project: AppProject) -> None:  # noqa: F811
    sql(app_project, "V2__create_items.sql")
    wrapper(app_project, "V2__create_items", "V2__create_items.sql", [V1], initial=True)
    sql(app_project, "V3__add_sku.sql")
    wrapper(
        app_project,
        "V3__add_sku",
        "V3__add_sku.sql",
        [("shop", "V2__create_items")],
        initial=True,
    )

    result = check(app_project)

    assert result.returncode == 1
    assert "(sqlmigrations.E010)" not in result.stderr
    assert (
        "/shop/migrations/V3__add_sku.py: (sqlmigrations.E011) shop.V3__add_sku says "
        "`initial = True` but is not the app's first migration "
        "(shop.V2__create_items comes before it)"
    ) in result.stderr
    assert "/shop/migrations/V3__add_sku.py.\n" in result.stderr.split("HINT: Remove `initial")[1]
