"""The index and the sidebar list the sections in the order admins use them, security last."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from dbops.adminsite.site import SECURITY_NAME, ordered_app_list
from tests.adminstaff import client_for, staff_user

pytestmark = pytest.mark.django_db


def sections(html: str) -> list[str]:
    """The section headings of an app list, in order."""
    return re.findall(r'<caption>\s*<a href="[^"]+" class="section"[^>]*>([^<]+)</a>', html)


def sidebar(client: Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200
    found = re.search(r'<nav class="sticky" id="nav-sidebar".*?</nav>', page.content.decode(), re.S)
    assert found, f"no sidebar on {path}"
    return found[0]


def test_the_index_lists_profiles_chores_operations_then_security(admin_client: Client) -> None:
    index = admin_client.get("/admin/").content.decode()
    assert sections(index) == [
        "Profiles",
        "Households and chores",
        "Database operations",
        "SQL migrations",
        SECURITY_NAME,
    ]
    security = index[index.index('class="app-security module') :]
    rows = re.findall(r'<th scope="row" id="security-(\w+)">', security)
    assert rows == ["group", "user", "totpdevice", "accessattempt", "accessfailurelog", "accesslog"]


def test_the_sidebar_has_the_same_order(admin_client: Client) -> None:
    index = sections(admin_client.get("/admin/").content.decode())
    assert sections(sidebar(admin_client, "/admin/accounts/userprofile/")) == index


def test_the_security_page_lists_every_sign_in_table(admin_client: Client) -> None:
    page = admin_client.get("/admin/security/").content.decode()
    assert f"<h1>{SECURITY_NAME}</h1>" in page
    for url in (
        "/admin/auth/user/",
        "/admin/auth/group/",
        "/admin/otp_totp/totpdevice/",
        "/admin/axes/accessattempt/",
    ):
        assert f'href="{url}"' in page
    # Each app's own page is still Django's.
    assert sections(admin_client.get("/admin/auth/").content.decode()) == [
        "Authentication and Authorization"
    ]


def test_a_staff_user_sees_only_what_they_may_view() -> None:
    client = client_for(staff_user("pat", "accounts.view_userprofile", "axes.view_accessattempt"))
    index = client.get("/admin/").content.decode()
    assert sections(index) == ["Profiles", SECURITY_NAME]
    security = index[index.index('class="app-security module') :]
    assert re.findall(r'<th scope="row" id="security-(\w+)">', security) == ["accessattempt"]
    page = client.get("/admin/security/").content.decode()
    assert 'href="/admin/axes/accessattempt/"' in page and "/admin/auth/user/" not in page

    only_profiles = client_for(staff_user("quinn", "accounts.view_userprofile"))
    assert sections(only_profiles.get("/admin/").content.decode()) == ["Profiles"]
    assert only_profiles.get("/admin/security/").status_code == 404


def test_the_remembered_sidebar_follows_each_users_security_tables(settings: Any) -> None:
    settings.ADMIN_NAV_MEMO = True
    path = "/admin/accounts/userprofile/"
    with_attempts = client_for(
        staff_user("pat", "accounts.view_userprofile", "axes.view_accessattempt")
    )
    without = client_for(staff_user("quinn", "accounts.view_userprofile"))
    remembered = [sidebar(c, path) for c in (with_attempts, without, with_attempts)]
    settings.ADMIN_NAV_MEMO = False
    rendered = [sidebar(c, path) for c in (with_attempts, without, with_attempts)]
    assert remembered == rendered
    assert "/admin/axes/accessattempt/" in remembered[0]
    assert SECURITY_NAME not in remembered[1]


def test_apps_outside_the_order_follow_it_alphabetically_before_security() -> None:
    def app(label: str, name: str) -> dict[str, Any]:
        return {"app_label": label, "name": name, "app_url": f"/{label}/", "models": []}

    django_order = [
        app("axes", "Axes"),
        app("chores", "Households and chores"),
        app("sites", "Sites"),
        app("accounts", "Profiles"),
        app("flatpages", "Flat pages"),
    ]
    ordered = ordered_app_list(sorted(django_order, key=lambda a: a["name"]), "/security/")
    assert [a["app_label"] for a in ordered] == [
        "accounts",
        "chores",
        "flatpages",
        "sites",
        "security",
    ]


def test_households_and_chores_lists_its_tables_in_the_order_admins_open_them(
    admin_client: Client,
) -> None:
    index = admin_client.get("/admin/").content.decode()
    chores = index[index.index('class="app-chores module') :]
    chores = chores[: chores.index("</table>")]
    rows = re.findall(r'<th scope="row" id="chores-(\w+)">', chores)
    assert rows == [
        "household",
        "householdmember",
        "task",
        "assignment",
        "completion",
        "tasktemplate",
        "notification",
        "servicedailystats",
        "auditlog",
    ]
