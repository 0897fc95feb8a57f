"""Every admin list and profile page has breadcrumbs that say each step once."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django.contrib import admin
from django.urls import reverse

from accounts.models import UserProfile

pytestmark = pytest.mark.django_db


def crumbs(html: str) -> list[str]:
    block = re.search(r'<div class="breadcrumbs">(.*?)</div>', html, re.S)
    assert block, "no breadcrumbs on the page"
    text = unescape(re.sub(r"<[^>]+>", "", block[1]))
    return [" ".join(part.split()) for part in text.split("\u203a")]


@pytest.mark.parametrize(
    "model",
    sorted(admin.site._registry, key=lambda m: m._meta.label),
    ids=lambda m: m._meta.label,
)
def test_a_changelists_breadcrumbs_name_each_step_once(admin_client: Any, model: Any) -> None:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    steps = crumbs(admin_client.get(url).content.decode())
    assert len(steps) == len(set(steps)), steps


def test_a_profiles_breadcrumbs_read_home_accounts_user_profiles(admin_client: Any) -> None:
    profile = UserProfile.objects.create(cognito_sub="sub-crumb", email="crumb@example.com")
    page = admin_client.get(reverse("admin:accounts_userprofile_change", args=[profile.pk]))
    assert crumbs(page.content.decode()) == [
        "Home",
        "Profiles",
        "User profiles",
        "crumb@example.com",
    ]
