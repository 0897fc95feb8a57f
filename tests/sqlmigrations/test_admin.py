"""The migration history admin pages: history, files and states, a file, validate.

Server side, on real PostgreSQL; tests/browser/test_admin_dbops.py drives them in Chromium.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from tests.migrationfiles import newest_file, newest_version, versioned_count

pytestmark = pytest.mark.django_db

HISTORY = reverse("admin:sqlmigrations_flywayschemahistory_changelist")
STATES = reverse("admin:sqlmigrations_states")
VALIDATE = reverse("admin:sqlmigrations_validate")
V1 = "V1__create_migration_test_table.sql"
NEWEST = newest_file()  # the project's newest file, applied by the test database
PENDING = f"V{newest_version() + 1}__add_chore_colour.sql"


@pytest.fixture
def changed_files(tmp_path: Path, settings: Any) -> Path:
    """A copy of migrations_sql with V1 edited, the newest file gone and a new one pending."""
    location = tmp_path / "migrations_sql"
    shutil.copytree(Path(settings.BASE_DIR) / "migrations_sql", location)
    with (location / V1).open("a") as f:
        f.write("-- an edit after it was applied\n")
    (location / NEWEST).unlink()
    (location / PENDING).write_text("SELECT 1;\n")
    settings.SQL_MIGRATIONS = {**settings.SQL_MIGRATIONS, "LOCATION": location}
    return location


def test_history_is_read_only(admin_client: Any) -> None:
    assert (
        admin_client.get(reverse("admin:sqlmigrations_flywayschemahistory_add")).status_code == 403
    )
    change = reverse("admin:sqlmigrations_flywayschemahistory_change", args=[1])
    page = admin_client.get(change)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.post(change, {"script": "x"}).status_code == 403
    delete = reverse("admin:sqlmigrations_flywayschemahistory_delete", args=[1])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    response = admin_client.post(HISTORY, {"action": "delete_selected", "_selected_action": [1]})
    assert "delete_selected" not in response.content.decode()


def test_history_lists_rows_with_their_state(admin_client: Any) -> None:
    page = admin_client.get(HISTORY).content.decode()
    assert V1 in page
    assert "sqlmigrations-badge sqlmigrations-ok" in page
    assert f"Schema version <strong>{newest_version()}</strong>" in page


def test_a_history_row_shows_its_files_sql(admin_client: Any) -> None:
    page = admin_client.get(reverse("admin:sqlmigrations_flywayschemahistory_change", args=[1]))
    text = page.content.decode()
    assert "CREATE TABLE" in text and "migration_test" in text
    assert "applied" in text and "Flyway: Success" in text


def test_states_show_edited_missing_and_pending(admin_client: Any, changed_files: Path) -> None:
    page = admin_client.get(STATES).content.decode()
    assert 'class="state-edited-since-applied"' in page
    assert 'class="state-missing-from-disk"' in page
    assert 'class="state-pending"' in page
    assert PENDING in page
    # All applied but the edited V1 and the file gone from disk.
    assert page.count('class="state-applied"') == versioned_count() - 2


def test_file_page_shows_the_sql_and_history(admin_client: Any) -> None:
    page = admin_client.get(reverse("admin:sqlmigrations_file", args=[V1])).content.decode()
    assert 'id="migration-sql"' in page
    assert "CREATE TABLE" in page
    assert "Flyway: Success" in page
    missing = reverse("admin:sqlmigrations_file", args=["V99__nothing.sql"])
    assert admin_client.get(missing).status_code == 404


def test_validate_passes_on_the_projects_files(admin_client: Any) -> None:
    page = admin_client.get(VALIDATE).content.decode()
    assert "Validation passed" in page


def test_validate_reports_edited_and_missing_files(admin_client: Any, changed_files: Path) -> None:
    page = admin_client.get(VALIDATE).content.decode()
    assert "2 problems" in page
    assert "<td>edited</td><td>V1__create_migration_test_table.sql</td>" in page
    assert f"<td>missing</td><td>{NEWEST}</td>" in page
    # The gap before the pending file is the applied one whose file is gone: "missing" says
    # restore it.
    assert "<td>gap</td>" not in page
