"""Migration-history and database-health admin pages (server side, real PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

pytestmark = pytest.mark.django_db

HISTORY = reverse("admin:sqlmigrations_flywayschemahistory_changelist")
STATES = reverse("admin:sqlmigrations_states")
VALIDATE = reverse("admin:sqlmigrations_validate")
HEALTH = reverse("admin:dbops_databasehealth_changelist")
V1 = "V1__create_migration_test_table.sql"


@pytest.fixture
def changed_files(tmp_path: Path, settings: Any) -> Path:
    """A copy of migrations_sql with V1 edited, V11 gone and a new V12 pending."""
    location = tmp_path / "migrations_sql"
    shutil.copytree(Path(settings.BASE_DIR) / "migrations_sql", location)
    with (location / V1).open("a") as f:
        f.write("-- an edit after it was applied\n")
    for name in location.glob("V11__*"):
        name.unlink()
    (location / "V12__add_chore_colour.sql").write_text("SELECT 1;\n")
    settings.SQL_MIGRATIONS = {**settings.SQL_MIGRATIONS, "LOCATION": location}
    return location


def test_index_links_both_pages(admin_client: Any) -> None:
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert f'href="{HEALTH}"' in page
    assert f'href="{HISTORY}"' in page


def test_staff_without_the_view_permission_is_refused(client: Any) -> None:
    user = User.objects.create_user("bob", password="pw-bob-1234", is_staff=True)
    client.force_login(user)
    for url in (HISTORY, STATES, VALIDATE, HEALTH):
        assert client.get(url).status_code == 403, url
    user.user_permissions.add(Permission.objects.get(codename="view_databasehealth"))
    assert client.get(HEALTH).status_code == 200
    assert client.get(HISTORY).status_code == 403


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
    assert "Schema version <strong>11</strong>" in page


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
    assert "V12__add_chore_colour.sql" in page
    assert page.count('class="state-applied"') == 9


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
    assert "<td>missing</td><td>V11__index_users_created_at.sql</td>" in page
    # The gap before V12 is the applied V11 whose file is gone: "missing" says restore it.
    assert "<td>gap</td>" not in page


def test_health_page_shows_every_check_with_its_status(admin_client: Any) -> None:
    page = admin_client.get(HEALTH).content.decode()
    for name in (
        "connections",
        "long_running_queries",
        "blocked_queries",
        "cache_hit_ratio",
        "invalid_indexes",
        "unused_indexes",
        "duplicate_indexes",
        "missing_indexes",
        "sequences",
        "dead_tuples",
        "slow_queries",
    ):
        assert f'id="check-{name}"' in page, name
    assert 'class="dbops-check ok" id="check-connections"' in page
    assert 'id="enable-pg-stat-statements"' in page
    assert "shared_preload_libraries" in page


def test_health_page_uses_the_thresholds_from_settings(admin_client: Any, settings: Any) -> None:
    settings.DB_HEALTH_THRESHOLDS = {"connections": {"warning": 0.01}}
    page = admin_client.get(HEALTH).content.decode()
    assert 'class="dbops-check warning" id="check-connections"' in page
    assert "warning 0.01, critical 90" in page
