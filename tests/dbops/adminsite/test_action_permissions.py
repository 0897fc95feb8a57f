"""Admin actions and pages need their own permission, not just the list's (issue 13.1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from accounts.models import UserProfile
from chores.models import HouseholdMember
from tests.adminstaff import action_choices, client_for, rows_written, staff_user
from tests.adminworld import World, make_world

pytestmark = pytest.mark.django_db
PROFILES = reverse("admin:accounts_userprofile_changelist")
MEMBERS = reverse("admin:chores_householdmember_changelist")


@pytest.fixture
def world() -> World:
    return make_world()


def run_action(client: object, url: str, action: str, *pks: int) -> object:
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], "index": "0"}
    return client.post(url, data)  # type: ignore[attr-defined]


def test_a_view_only_user_cannot_soft_delete_a_profile(world: World) -> None:
    client = client_for(staff_user("viewer", "accounts.view_userprofile"))
    page = client.get(PROFILES)
    assert page.status_code == 200
    assert not {"soft_delete", "restore"} & action_choices(page)
    before = rows_written()
    response = run_action(client, PROFILES, "soft_delete", world.bob.pk)
    assert response.status_code in (200, 302)  # the list again: no action ran
    assert "Soft-deleted" not in response.content.decode()
    assert rows_written() == before
    world.bob.refresh_from_db()
    assert world.bob.deleted_at is None and world.bob.is_active


def test_a_user_who_may_delete_profiles_soft_deletes_and_restores(world: World) -> None:
    client = client_for(
        staff_user("remover", "accounts.view_userprofile", "accounts.delete_userprofile")
    )
    assert {"soft_delete", "restore"} <= action_choices(client.get(PROFILES))
    run_action(client, PROFILES, "soft_delete", world.bob.pk)
    world.bob.refresh_from_db()
    assert world.bob.deleted_at is not None and not world.bob.is_active
    run_action(client, PROFILES, "restore", world.bob.pk)
    world.bob.refresh_from_db()
    assert world.bob.deleted_at is None and world.bob.is_active
    messages = LogEntry.objects.filter(object_id=str(world.bob.pk)).values_list(
        "change_message", flat=True
    )
    assert sorted(messages) == ["Restored (reactivated).", "Soft-deleted (deactivated, row kept)."]


def test_a_view_only_user_cannot_make_a_child_the_owner(world: World) -> None:
    client = client_for(staff_user("viewer", "chores.view_householdmember"))
    assert "make_owner" not in action_choices(client.get(MEMBERS))
    before = rows_written()
    run_action(client, MEMBERS, "make_owner", world.child.pk)
    assert rows_written() == before
    world.child.refresh_from_db()
    assert world.child.role == HouseholdMember.Role.CHILD


def test_a_user_who_may_change_members_moves_ownership(world: World) -> None:
    client = client_for(staff_user("editor", "chores.change_householdmember"))
    assert "make_owner" in action_choices(client.get(MEMBERS))
    run_action(client, MEMBERS, "make_owner", world.child.pk)
    world.child.refresh_from_db()
    world.owner.refresh_from_db()
    assert (world.child.role, world.owner.role) == ("owner", "admin")


@pytest.mark.parametrize(
    "name", ["sqlmigrations_states", "sqlmigrations_validate", "sqlmigrations_file"]
)
def test_migration_pages_need_the_history_view_permission(name: str) -> None:
    args = ["V1__create_migration_test_table.sql"] if name == "sqlmigrations_file" else []
    url = reverse(f"admin:{name}", args=args)
    assert client_for(staff_user("nobody")).get(url).status_code == 403
    health_only = client_for(staff_user("health", "dbops.view_databasehealth"))
    assert health_only.get(url).status_code == 403
    history = client_for(staff_user("history", "sqlmigrations.view_flywayschemahistory"))
    assert history.get(url).status_code == 200


def test_the_health_page_needs_its_view_permission() -> None:
    url = reverse("admin:dbops_databasehealth_changelist")
    assert client_for(staff_user("nobody")).get(url).status_code == 403
    history = client_for(staff_user("history", "sqlmigrations.view_flywayschemahistory"))
    assert history.get(url).status_code == 403


def test_cleaning_up_sign_in_attempts_needs_the_delete_permission() -> None:
    AccessAttempt.objects.create(
        username="mallory", ip_address="203.0.113.7", user_agent="probe", failures_since_start=1
    )
    url = reverse("admin:axes_accessattempt_changelist")
    viewer = client_for(staff_user("viewer", "axes.view_accessattempt"))
    assert "cleanup_expired_attempts" not in action_choices(viewer.get(url))
    remover = client_for(
        staff_user("remover", "axes.view_accessattempt", "axes.delete_accessattempt")
    )
    assert "cleanup_expired_attempts" in action_choices(remover.get(url))


def test_cleaning_up_sign_in_attempts_removes_the_expired_ones_only() -> None:
    # axes 8.3.1's action reads an attempt time that its middleware sets on sign-in
    # requests only: from the admin it was an AttributeError, a 500 for everyone.
    expired, _recent = (
        AccessAttempt.objects.create(
            username=name, ip_address="203.0.113.7", user_agent="probe", failures_since_start=1
        )
        for name in ("mallory", "trudy")
    )
    AccessAttempt.objects.filter(pk=expired.pk).update(
        attempt_time=timezone.now() - timedelta(days=1)
    )
    url = reverse("admin:axes_accessattempt_changelist")
    remover = client_for(
        staff_user("remover", "axes.view_accessattempt", "axes.delete_accessattempt")
    )

    response = run_action(remover, url, "cleanup_expired_attempts", expired.pk)

    assert response.status_code == 302  # type: ignore[attr-defined]
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["trudy"]


def test_profile_actions_are_not_offered_to_a_user_who_may_only_change_profiles() -> None:
    make_world()
    client = client_for(staff_user("editor", "accounts.change_userprofile"))
    assert not {"soft_delete", "restore"} & action_choices(client.get(PROFILES))
    assert UserProfile.objects.filter(deleted_at__isnull=False).count() == 0
