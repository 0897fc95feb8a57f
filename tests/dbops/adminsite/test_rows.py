"""The changelist rows of dbops.adminsite.rows are Django's items_for_result, byte for byte."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.templatetags import admin_list
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client, RequestFactory
from django.utils.safestring import SafeString
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.models import UserProfile
from dbops.adminsite import rows as adminrows
from dbops.adminsite.kit import LargeTableAdmin
from tests.adminworld import make_world

QUERIES = [{}, {"q": "a"}, {"is_active__exact": "1", "o": "-2"}, {"deleted": "no", "p": "1"}]


@pytest.fixture
def superuser() -> Any:
    return get_user_model().objects.create_superuser("rows", "rows@example.com", "rows-pass-1")


def both_ways(model_admin: Any, user: Any, query: dict[str, str]) -> tuple[Any, Any, Any]:
    url = f"/admin/{model_admin.opts.app_label}/{model_admin.opts.model_name}/"
    request = RequestFactory().get(url, query)
    request.user = user
    cl = model_admin.get_changelist_instance(request)
    cl.formset = None  # as changelist_view sets it for a list without list_editable
    theirs = [list(r) for r in admin_list.results(cl)]
    ours = [list(r) for r in adminrows.results(cl)]
    return cl, theirs, ours


def large_table_admins() -> list[Any]:
    return [ma for ma in admin.site._registry.values() if isinstance(ma, LargeTableAdmin)]


@pytest.mark.django_db
@pytest.mark.parametrize("query", QUERIES, ids=lambda q: "&".join(q) or "plain")
def test_every_large_changelist_renders_the_rows_django_renders(
    superuser: Any, query: dict[str, str]
) -> None:
    make_world()
    planned = []
    for model_admin in large_table_admins():
        allowed = {k: v for k, v in query.items() if k in ("q", "p")}
        cl, theirs, ours = both_ways(model_admin, superuser, allowed)
        assert ours == theirs, model_admin
        if adminrows.plan(cl) is not None:
            planned.append(model_admin.opts.model_name)
    assert "userprofile" in planned  # the fast path really ran


profile_values = st.fixed_dictionaries(
    {
        "display_name": st.text(
            alphabet=st.characters(exclude_categories=("Cs", "Cc")), max_size=100
        ),
        "is_active": st.booleans(),
        "email_verified": st.booleans(),
        "deleted_at": st.none()
        | st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
        "last_seen_at": st.none()
        | st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    }
)


@pytest.mark.django_db
# The superuser only reads; each example's profiles are rolled back.
@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(profiles=st.lists(profile_values, min_size=1, max_size=6), query=st.sampled_from(QUERIES))
def test_generated_profiles_render_as_django_renders_them(
    superuser: Any, profiles: list[dict[str, Any]], query: dict[str, str]
) -> None:
    model_admin = admin.site._registry[UserProfile]
    with transaction.atomic():
        for index, values in enumerate(profiles):
            # A deleted profile is never active (users_deleted_not_active).
            active = values["is_active"] and values["deleted_at"] is None
            UserProfile.objects.create(
                cognito_sub=f"hyp-{index}",
                email=f"p{index}+<&>@example.com",
                **{**values, "is_active": active},
            )
        cl, theirs, ours = both_ways(model_admin, superuser, query)
        assert adminrows.plan(cl) is not None
        assert ours == theirs
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_the_changelist_page_is_the_same_with_and_without_the_fast_rows(
    superuser: Any, settings: Any
) -> None:
    make_world()
    client = Client()
    client.force_login(superuser)
    pages = {}
    for fast in (True, False):
        settings.ADMIN_FAST_ROWS = fast
        response = client.get("/admin/accounts/userprofile/", {"q": "example"})
        assert response.status_code == 200
        body = response.content.decode()
        # The CSRF token differs per response; everything else must not.
        pages[fast] = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", body)
    assert pages[True] == pages[False]
    assert 'class="field-email"><a href="/admin/accounts/userprofile/' in pages[True]


@pytest.mark.parametrize("name", ["Ada", "a<b>&\"c' {}"])
def test_the_action_checkbox_is_djangos(name: str) -> None:
    # LargeTableAdmin writes the row's checkbox itself; Django renders a CheckboxInput.
    model_admin = admin.site._registry[UserProfile]
    profile = UserProfile(pk=uuid.uuid4(), email="p@example.com", display_name=name)
    ours = model_admin.action_checkbox(profile)
    assert ours == admin.ModelAdmin.action_checkbox(model_admin, profile)
    assert isinstance(ours, SafeString)
