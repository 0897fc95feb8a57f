"""In Chromium at 1400 px: what the database pages draw, measured rather than eyeballed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page, expect

from tests.migrationfiles import versioned_count

WIDTH = 1400
LONG = "V99__" + "backfill_household_time_zones_from_the_members_profiles_" * 2 + "x.sql"


@pytest.fixture
def long_history_row(pg_server: Any, live_server: Any) -> Iterator[str]:
    """A history row with a long script name (as the owner: the app role only reads it)."""
    from django.conf import settings

    info = pg_server.conninfo(settings.DATABASES["default"]["NAME"])
    with psycopg.connect(**info, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type, "
            "script, checksum, installed_by, execution_time, success) "
            "VALUES (99, '99', %s, 'SQL', %s, 1, 'choregarden_owner', 1234, true)",
            [LONG[5:-4].replace("_", " "), LONG],
        )
        try:
            yield LONG
        finally:
            conn.execute("DELETE FROM flyway_schema_history WHERE installed_rank = 99")


@pytest.mark.parametrize("extra", [False, True], ids=["as-migrated", "long-script-name"])
def test_migration_history_fits_1400px_with_rows_of_one_height(
    admin_page: Page, screenshot: Any, request: Any, extra: bool
) -> None:
    if extra:
        request.getfixturevalue("long_history_row")
    page = admin_page
    page.set_viewport_size({"width": WIDTH, "height": 900})
    page.goto("/admin/sqlmigrations/flywayschemahistory/")
    rows = versioned_count() + (1 if extra else 0)
    expect(page.locator("#result_list tbody tr")).to_have_count(rows)
    screenshot(page, f"migration-history-{WIDTH}{'-long-name' if extra else ''}")
    box = page.evaluate(
        """() => {
          const table = document.querySelector('#result_list');
          const frame = table.closest('.results').getBoundingClientRect();
          const heads = [...table.querySelectorAll('thead th')];
          const last = heads[heads.length - 1].getBoundingClientRect();
          const rows = [...table.querySelectorAll('tbody tr')];
          return {
            frameRight: frame.right,
            lastRight: last.right,
            lastName: heads[heads.length - 1].innerText.trim(),
            viewport: document.documentElement.clientWidth,
            scrolls: document.documentElement.scrollWidth > document.documentElement.clientWidth,
            heights: rows.map(r => Math.round(r.getBoundingClientRect().height)),
          };
        }"""
    )
    assert box["lastRight"] <= box["frameRight"] + 0.5, box  # not cut off by the frame
    assert box["lastRight"] <= box["viewport"] and not box["scrolls"], box
    assert len(set(box["heights"])) == 1, box["heights"]


def test_health_summary_has_no_gap_before_the_comma_after_the_badge(admin_page: Page) -> None:
    page = admin_page
    page.set_viewport_size({"width": WIDTH, "height": 900})
    page.goto("/admin/dbops/databasehealth/")
    badge = page.locator("#dbops-overall")
    expect(badge).to_be_visible()
    # The distance between the badge's right edge and the comma that follows it.
    gap = badge.evaluate(
        """badge => {
          const text = badge.nextSibling;
          const range = document.createRange();
          range.setStart(text, 0);
          range.setEnd(text, 1);
          return {char: text.textContent[0],
                  gap: range.getBoundingClientRect().left - badge.getBoundingClientRect().right};
        }"""
    )
    assert gap["char"] == "," and gap["gap"] < 2, gap
