"""The database-health admin page, beside the engine's migration history (real PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

pytestmark = pytest.mark.django_db

HISTORY = reverse("admin:sqlmigrations_flywayschemahistory_changelist")
STATES = reverse("admin:sqlmigrations_states")
VALIDATE = reverse("admin:sqlmigrations_validate")
HEALTH = reverse("admin:dbops_databasehealth_changelist")


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


def test_health_page_offers_the_applications_connections_only(admin_client: Any) -> None:
    # The owner alias is the same database under the role that migrates: asking for it
    # (found by the changelist property test) checks `default`, and it is not offered.
    page = admin_client.get(HEALTH, {"database": "owner"}).content.decode()
    assert "(connection <code>default</code>)" in page
    assert "?database=owner" not in page
