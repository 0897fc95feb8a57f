"""Every write through the admin names its staff member in the audit log (issue 13.4)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import User
from django.db import transaction
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from chores.audit import acting_as, current_actor
from chores.models import AuditLog, Task, TaskTemplate
from tests.adminforms import submit
from tests.adminstaff import client_for, staff_user
from tests.adminworld import World, make_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def carol() -> User:
    return User.objects.create_superuser("carol", "carol@example.com", None)


def audit_rows(table: str, pk: int) -> list[tuple[str, str | None]]:
    rows = AuditLog.objects.filter(table_name=table, row_key=str(pk)).order_by("id")
    return [(row.action, row.actor) for row in rows]


def logged(user: User, obj: Any) -> list[int]:
    entries = LogEntry.objects.filter(user=user, object_id=str(obj.pk)).order_by("id")
    return [entry.action_flag for entry in entries]


def test_a_change_through_the_admin_is_audited_as_its_staff_member(
    world: World, carol: User
) -> None:
    url = reverse("admin:chores_task_change", args=[world.dishes.pk])
    assert submit(client_for(carol), url, {"title": "Dishes and pots"}).status_code == 302
    assert audit_rows("tasks", world.dishes.pk)[-1] == ("UPDATE", "staff:carol")
    assert logged(carol, world.dishes) == [CHANGE]


def test_an_addition_through_the_admin_is_audited_as_its_staff_member(carol: User) -> None:
    url = reverse("admin:chores_tasktemplate_add")
    response = submit(client_for(carol), url, {"title": "Windows", "effort_points": "2"})
    assert response.status_code == 302
    template = TaskTemplate.objects.get(title="Windows")
    assert audit_rows("task_templates", template.pk) == [("INSERT", "staff:carol")]
    assert logged(carol, template) == [ADDITION]


def test_a_deletion_through_the_admin_is_audited_as_its_staff_member(
    world: World, carol: User
) -> None:
    url = reverse("admin:chores_task_delete", args=[world.smiths_task.pk])
    assert client_for(carol).post(url, {"post": "yes"}).status_code == 302
    assert not Task.objects.filter(pk=world.smiths_task.pk).exists()
    assert audit_rows("tasks", world.smiths_task.pk)[-1] == ("DELETE", "staff:carol")
    assert logged(carol, world.smiths_task) == [DELETION]


def test_actions_are_audited_and_logged_as_their_staff_member(world: World) -> None:
    erin = staff_user(
        "erin",
        "accounts.view_userprofile",
        "accounts.delete_userprofile",
        "chores.change_householdmember",
    )
    client = client_for(erin)
    client.post(
        reverse("admin:accounts_userprofile_changelist"),
        {"action": "soft_delete", ACTION_CHECKBOX_NAME: [str(world.charlie.pk)]},
    )
    assert audit_rows("users", world.charlie.pk)[-1] == ("UPDATE", "staff:erin")
    assert logged(erin, world.charlie) == [CHANGE]
    client.post(
        reverse("admin:chores_householdmember_changelist"),
        {"action": "make_owner", ACTION_CHECKBOX_NAME: [str(world.child.pk)]},
    )
    for member in (world.child, world.owner):  # the new owner, and the old one demoted
        assert audit_rows("household_members", member.pk)[-1] == ("UPDATE", "staff:erin")
        assert logged(erin, member) == [CHANGE]


def test_the_actor_comes_from_the_session_not_from_the_request(world: World, carol: User) -> None:
    url = reverse("admin:chores_task_change", args=[world.dishes.pk])
    client = client_for(carol)
    page = client.get(url)
    assert page.status_code == 200
    forged = {"choregarden.actor": "staff:someone-else", "actor": "staff:someone-else"}
    submit(client, url, {"title": "Dishes again", **forged})
    client.post(url + "?actor=staff:someone-else", {}, HTTP_X_ACTOR="staff:someone-else")
    actors = {actor for _, actor in audit_rows("tasks", world.dishes.pk)[1:]}
    assert actors == {"staff:carol"}


def test_the_actor_does_not_outlive_the_admin_request(world: World, carol: User) -> None:
    # The tests run in one transaction, as a request inside a larger one would: the
    # request's actor must not stay set for what runs after it.
    url = reverse("admin:chores_task_change", args=[world.dishes.pk])
    submit(client_for(carol), url, {"title": "Dishes, later"})
    assert current_actor() == ""
    with acting_as("user:demo"):
        submit(client_for(carol), url, {"title": "Dishes, later still"})
        assert current_actor() == "user:demo"


# Any user name Django accepts (letters of any script, digits and @.+-_, up to 150).
USERNAMES = st.from_regex(r"[\w.@+-]{1,150}", fullmatch=True).filter(
    lambda name: not any(c in name for c in "\n\x00")
)


@settings(max_examples=20, deadline=None, print_blob=True)
@given(username=USERNAMES)
def test_every_user_name_is_recorded_as_it_is(username: str) -> None:
    with transaction.atomic():
        world_task = Task.objects.create(household=make_world().millers, title="Bins")
        user = User.objects.create_superuser(username, None, None)
        url = reverse("admin:chores_task_change", args=[world_task.pk])
        submit(client_for(user), url, {"title": "Bins out"})
        # As stored: Django normalizes a user name (NFKC: "ª" is saved as "a").
        actor = f"staff:{user.get_username()}"
        assert audit_rows("tasks", world_task.pk)[-1] == ("UPDATE", actor)
        transaction.set_rollback(True)
