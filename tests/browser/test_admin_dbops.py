"""In a real browser: sign in, migration history, a file's SQL, validate, database health."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import sign_in
from tests.migrationfiles import newest_file, newest_version

V1 = "V1__create_migration_test_table.sql"


def test_staff_sign_in(page: Page, staff_user: Any, screenshot: Any) -> None:
    page.goto("/admin/")
    expect(page).to_have_url("/admin/login/?next=/admin/")
    screenshot(page, "admin-login")
    sign_in(page)
    # The section's link (the dashboard's health card has the same name).
    expect(page.locator(".app-dbops").get_by_role("link", name="Database health")).to_be_visible()
    expect(page.get_by_role("link", name="Migration history")).to_be_visible()


def test_migration_history_file_sql_and_validate(admin_page: Page, screenshot: Any) -> None:
    page = admin_page
    page.get_by_role("link", name="Migration history").click()
    expect(page.locator("h1")).to_have_text("Migration history")
    expect(page.locator("#result_list")).to_contain_text(V1)
    expect(page.locator("#result_list .sqlmigrations-badge").first).to_have_text("applied")
    screenshot(page, "migration-history")

    page.get_by_role("link", name="Files and states").click()
    table = page.locator("#migration-states")
    expect(table).to_contain_text("V11__index_users_created_at.sql")
    expect(table.locator(".sqlmigrations-badge").first).to_have_text("applied")
    screenshot(page, "migration-states")

    table.get_by_role("link", name=V1).click()
    expect(page.locator("#migration-sql")).to_contain_text("CREATE TABLE")
    expect(page.locator("#file-facts")).to_contain_text("Flyway: Success")
    screenshot(page, "migration-file-sql")

    page.locator(".breadcrumbs").get_by_role("link", name="Files and states").click()
    page.locator("#sqlmigrations-validate").click()
    expect(page.locator("#validation-result")).to_contain_text("Validation passed")
    screenshot(page, "migration-validate")


def test_a_history_rows_detail_shows_its_sql(admin_page: Page) -> None:
    page = admin_page
    page.goto("/admin/sqlmigrations/flywayschemahistory/")
    page.locator("#result_list").get_by_role("link", name="1", exact=True).first.click()
    expect(page.locator(".sqlmigrations-sql")).to_contain_text("migration_test")
    expect(page.locator("input[name=_save]")).to_have_count(0)


def test_database_health(admin_page: Page, screenshot: Any) -> None:
    page = admin_page
    page.locator(".app-dbops").get_by_role("link", name="Database health").click()
    expect(page.locator("h1")).to_have_text("Database health")
    expect(page.locator("#check-connections .dbops-badge")).to_have_text("ok")
    for check in ("blocked_queries", "cache_hit_ratio", "sequences", "dead_tuples"):
        expect(page.locator(f"#check-{check}")).to_be_visible()
    expect(page.locator("#enable-pg-stat-statements")).to_contain_text("CREATE EXTENSION")
    screenshot(page, "database-health")


def test_edited_missing_and_pending_files(
    admin_page: Page, screenshot: Any, tmp_path: Path, settings: Any
) -> None:
    # The live server runs in this process: the same settings object serves its requests.
    location = tmp_path / "migrations_sql"
    shutil.copytree(Path(settings.BASE_DIR) / "migrations_sql", location)
    with (location / V1).open("a") as f:
        f.write("-- an edit after it was applied\n")
    missing = newest_file()
    (location / missing).unlink()
    pending = f"V{newest_version() + 1}__add_chore_colour.sql"
    (location / pending).write_text(
        "-- Adds a colour to chores. Rollback: its U file drops the column.\n"
        "ALTER TABLE tasks ADD COLUMN colour text;\n"
    )
    settings.SQL_MIGRATIONS = {**settings.SQL_MIGRATIONS, "LOCATION": location}

    page = admin_page
    page.goto("/admin/sqlmigrations/flywayschemahistory/states/")
    table = page.locator("#migration-states")
    expect(table.locator("tr.state-edited-since-applied")).to_contain_text(V1)
    expect(table.locator("tr.state-missing-from-disk")).to_contain_text(missing)
    expect(table.locator("tr.state-pending")).to_contain_text(pending)
    screenshot(page, "migration-states-problems")

    page.locator("#sqlmigrations-validate").click()
    result = page.locator("#validation-result")
    expect(result).to_contain_text("2 problems")
    expect(result).to_contain_text("edited since it was applied")
    screenshot(page, "migration-validate-problems")
