"""The admin's sidebar rendered once per distinct app list (dbops.adminsite.nav) is Django's."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from dbops.adminsite import nav as adminnav
from tests.adminworld import make_world

pytestmark = pytest.mark.django_db
PAGES = [
    "/admin/",
    "/admin/accounts/userprofile/",
    "/admin/accounts/userprofile/?q=example",
    "/admin/accounts/",
    "/admin/chores/household/",
]


def sidebar(client: Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200
    body = response.content.decode()
    match = re.search(r'<nav class="sticky" id="nav-sidebar".*?</nav>', body, re.S)
    assert match, f"no sidebar on {path}"
    return match.group(0)


def page(client: Client, path: str) -> str:
    body = client.get(path).content.decode()
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", body)
    # The dashboard's overdue link lists what was past due when the page was drawn (to
    # the second): two renders a second apart differ there, memo or not.
    return re.sub(r"due_at__lt=[^\"&]+", "due_at__lt=NOW", body)


@pytest.fixture
def staff() -> Any:
    user = get_user_model().objects.create_user("nav", "nav@example.com", "nav-pass-12345")
    user.is_staff = True
    user.save()
    user.user_permissions.add(Permission.objects.get(codename="view_userprofile"))
    return user


def test_every_page_is_the_same_with_and_without_the_memo(settings: Any, staff: Any) -> None:
    make_world()
    superuser = get_user_model().objects.create_superuser("su", "su@example.com", "su-pass-1234")
    for user in (superuser, staff):
        client = Client()
        client.force_login(user)
        for path in PAGES:
            if user is staff and path.startswith("/admin/chores/"):
                continue  # no permission: a 403, no sidebar
            pages = {}
            for memo in (False, True, True):  # the second True is served from the memo
                settings.ADMIN_NAV_MEMO = memo
                pages.setdefault(memo, []).append(page(client, path))
            assert pages[True][0] == pages[True][1] == pages[False][0], path


def test_a_user_sees_only_their_models_and_a_new_permission_at_once(staff: Any) -> None:
    superuser = get_user_model().objects.create_superuser("su", "su@example.com", "su-pass-1234")
    admin_client, staff_client = Client(), Client()
    admin_client.force_login(superuser)
    staff_client.force_login(staff)
    path = "/admin/accounts/userprofile/"
    assert 'class="model-household' in sidebar(admin_client, path)
    nav = sidebar(staff_client, path)
    assert 'class="model-userprofile current-model"' in nav
    assert "model-household" not in nav and "addlink" not in nav
    staff.user_permissions.add(Permission.objects.get(codename="add_userprofile"))
    staff_client.force_login(get_user_model().objects.get(pk=staff.pk))
    assert 'href="/admin/accounts/userprofile/add/" class="addlink"' in sidebar(staff_client, path)


def test_the_current_page_is_marked_in_the_remembered_sidebar(admin_client: Any) -> None:
    nav = sidebar(admin_client, "/admin/accounts/userprofile/")
    assert 'class="model-userprofile current-model"' in nav
    nav = sidebar(admin_client, "/admin/chores/household/")
    assert 'class="model-household current-model"' in nav
    assert 'class="model-userprofile"' in nav


def test_the_memo_is_bounded(admin_client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(adminnav, "MAX_ENTRIES", 2)
    monkeypatch.setattr(adminnav, "_rendered", {})
    paths = [
        "/admin/accounts/userprofile/",
        "/admin/chores/household/",
        "/admin/chores/householdmember/",
        "/admin/accounts/userprofile/",
    ]
    navs = [sidebar(admin_client, path) for path in paths]
    assert len(adminnav._rendered) <= 2
    assert navs[0] == navs[3] and 'class="model-householdmember current-model"' in navs[2]
