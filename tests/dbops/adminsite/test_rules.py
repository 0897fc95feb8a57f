"""Forms check the rules Django skips; a write the database refuses is a form error."""

from __future__ import annotations

import html
import logging
from typing import Any

import pytest
from django.urls import reverse

from chores.admin import MemberFormSet
from chores.models import Assignment, Household, Notification
from tests.adminforms import form_values, submit
from tests.adminworld import World, make_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    return make_world()


def page_of(response: Any) -> str:
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    return html.unescape(response.content.decode())


def test_a_nul_in_json_is_a_form_error(admin_client: Any, world: World) -> None:
    url = reverse("admin:chores_notification_add")
    for payload in ('{"text": "a\\u0000b"}', '{"a\\u0000": 1}', '[{"x": ["\\u0000"]}]'):
        page = page_of(
            submit(
                admin_client, url, {"recipient": world.bob.pk, "kind": "system", "payload": payload}
            )
        )
        assert "JSON text cannot contain \\u0000" in page
    assert not Notification.objects.exclude(pk=world.notification.pk).exists()


def test_an_inline_posted_with_its_rows_as_new_shows_the_duplicates(
    admin_client: Any, world: World
) -> None:
    # Found by hypothesis: members-INITIAL_FORMS=0 posts the existing rows as new ones.
    url = reverse("admin:chores_household_change", args=[world.millers.pk])
    page = page_of(submit(admin_client, url, {"members-INITIAL_FORMS": "0"}))
    assert "This user is already a member of the household." in page
    assert world.millers.members.count() == 2


def test_a_new_household_offers_one_row_for_its_owner(admin_client: Any, world: World) -> None:
    url = reverse("admin:chores_household_add")
    values = form_values(admin_client.get(url).content.decode(), "household_form")
    assert values["members-TOTAL_FORMS"] == ["1"] and values["members-0-role"] == ["owner"]
    response = submit(
        admin_client, url, {"name": "The Joneses", "members-0-user": world.charlie.pk}
    )
    assert response.status_code == 302
    household = Household.objects.get(name="The Joneses")
    assert household.members.get().user == world.charlie
    assert household.members.get().role == "owner"


def refused_as_form_error(caplog: pytest.LogCaptureFixture, response: Any, message: str) -> None:
    assert message in page_of(response)
    assert "the database refused the admin's write" in caplog.text


def test_a_trigger_the_form_does_not_check_is_a_form_error(
    admin_client: Any,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Without the model's own check, the assignments_check_status trigger refuses.
    monkeypatch.setattr(Assignment, "clean", lambda self: None)
    world.assignment.status = "cancelled"
    world.assignment.save()
    url = reverse("admin:chores_assignment_change", args=[world.assignment.pk])
    with caplog.at_level(logging.WARNING, logger="dbops.adminsite.rules"):
        response = submit(admin_client, url, {"status": "open"})
    refused_as_form_error(caplog, response, "rule assignments_status_transition): assignment")
    world.assignment.refresh_from_db()
    assert world.assignment.status == "cancelled"


def test_a_rule_checked_at_commit_is_a_form_error_before_the_answer(
    admin_client: Any,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Without the formset's own check, the deferred households_has_owner trigger refuses.
    monkeypatch.setattr(MemberFormSet, "clean", lambda self: None)
    url = reverse("admin:chores_household_add")
    rows = {"members-0-user": world.charlie.pk, "members-0-role": "member"}
    with caplog.at_level(logging.WARNING, logger="dbops.adminsite.rules"):
        response = submit(admin_client, url, {"name": "The Joneses", **rows})
    refused_as_form_error(caplog, response, "A household needs exactly one owner")
    assert not Household.objects.filter(name="The Joneses").exists()
    assert "was added successfully" not in page_of(admin_client.get(url))
