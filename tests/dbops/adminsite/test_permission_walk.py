"""No admin page or action does more than the one permission its user holds (issue 13).

For every permission of the project's apps and of every model in the admin, and for none,
a staff user holding just that permission walks the whole admin, read from the site's
registry: every list, add, change, history and delete page (GET, and a forged POST), every
custom page a ModelAdmin adds (`get_urls`), every action (offered on the list, and a
forged POST), the index and each app's page. A request the permission does not allow must
be refused (403, or for an action: not offered and not run) and write nothing; one it
allows must not be a server error. A new admin, page or action is walked without a change
here; a page that declares no permission (`dbops.adminsite.access.requires`) or an action
without `permissions=` fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_permission_codename
from django.contrib.auth.management import _get_all_permissions
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from sqlmigrations.models import FlywaySchemaHistory
from tests.adminstaff import action_choices, client_for, rows_written, staff_user
from tests.adminworld import make_world

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
PROJECT_APPS = ("accounts", "chores", "dbops", "sqlmigrations")
STANDARD_VIEWS = ("changelist", "add", "history", "delete", "change")
# Pages other apps' admins add, which cannot declare their permission with `requires`.
OTHER_APPS_VIEWS = {"auth_user_password_change": "change"}


def every_permission() -> list[str]:
    """ "app_label.codename" of every permission of the project's apps and admin's models."""
    models = {m for m in apps.get_models() if m._meta.app_label in PROJECT_APPS}
    models |= set(admin.site._registry)
    return sorted(
        f"{model._meta.app_label}.{codename}"
        for model in models
        for codename, _ in _get_all_permissions(model._meta)
    )


def registry() -> list[tuple[Any, admin.ModelAdmin]]:
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def holds(permission: str, model: Any, name: str) -> bool:
    """Whether `permission` grants `name` (view, add, change, delete, ...) on `model`."""
    opts = model._meta
    names = {name, "change"} if name == "view" else {name}  # change lets one view
    return permission in {f"{opts.app_label}.{get_permission_codename(n, opts)}" for n in names}


@dataclass
class Step:
    """One request of the walk and the permission that must allow it."""

    method: str
    url: str
    needs: tuple[str, ...]  # any one of these permission names
    data: dict[str, Any] | None = None
    action: str = ""


def sample_rows() -> dict[Any, Any]:
    """A row of every registered model with a table, for its object pages and actions."""
    make_world()
    Group.objects.create(name="Helpers")
    victim = User.objects.create_user("victim", is_staff=True)
    TOTPDevice.objects.create(user=victim, name="phone", confirmed=True)
    seen = {"username": "mallory", "ip_address": "203.0.113.7", "user_agent": "probe"}
    AccessAttempt.objects.create(failures_since_start=1, **seen)
    AccessLog.objects.create(**seen)
    AccessFailureLog.objects.create(**seen)
    rows = {}
    for model, _ in registry():
        if model._meta.managed or model is FlywaySchemaHistory:
            rows[model] = model._default_manager.order_by("pk").first()
    return rows


def url_values(row: Any) -> dict[str, str]:
    script = FlywaySchemaHistory.objects.order_by("installed_rank").first().script
    return {
        "object_id": str(row.pk) if row else "0",
        "id": str(row.pk) if row else "0",
        "pk": str(row.pk) if row else "0",
        "script": script,
    }


def custom_pages(model_admin: admin.ModelAdmin, row: Any) -> tuple[list[Step], list[str]]:
    """Steps for the pages the ModelAdmin adds to Django's, and what is wrong with them."""
    opts = model_admin.opts
    standard = {f"{opts.app_label}_{opts.model_name}_{view}" for view in STANDARD_VIEWS}
    steps, problems = [], []
    values = url_values(row)
    for pattern in model_admin.urls:
        if not isinstance(pattern, URLPattern) or pattern.name in standard | {None}:
            continue
        needs = getattr(pattern.callback, "admin_permission", None)
        needs = needs or OTHER_APPS_VIEWS.get(pattern.name)
        if needs is None:
            problems.append(
                f"{pattern.name}: declares no permission (dbops.adminsite.access.requires)"
            )
            continue
        names = list(pattern.pattern.converters)
        missing = [n for n in names if n not in values]
        if missing:
            problems.append(f"{pattern.name}: no sample value for {missing} in url_values()")
            continue
        if names and row is None:
            continue
        url = reverse(f"admin:{pattern.name}", kwargs={n: values[n] for n in names})
        steps += [Step("GET", url, (needs,)), Step("POST", url, (needs,), {})]
    return steps, problems


def model_steps(model: Any, model_admin: admin.ModelAdmin, row: Any) -> list[Step]:
    """Django's pages for the model, then its actions, then deletion (it removes the row)."""
    info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    changelist = reverse(f"{info}_changelist")
    steps = [Step("GET", changelist, ("view",))]
    try:
        add = reverse(f"{info}_add")
    except NoReverseMatch:  # a page in a changelist's place, without Django's other pages
        return steps
    steps += [Step("GET", add, ("add",)), Step("POST", add, ("add",), {})]
    if row is None:
        return steps
    pk = [row.pk]
    change = reverse(f"{info}_change", args=pk)
    steps += [
        Step("GET", change, ("view",)),
        Step("POST", change, ("change",), {}),
        Step("GET", reverse(f"{info}_history", args=pk), ("view",)),
        Step("GET", reverse(f"{info}_delete", args=pk), ("delete",)),
    ]
    for _, name, _ in model_admin._get_base_actions():
        function = model_admin.get_action(name)[0]
        needs = tuple(getattr(function, "allowed_permissions", ()))
        data = {"action": name, ACTION_CHECKBOX_NAME: [str(row.pk)], "index": "0", "post": "yes"}
        steps.append(Step("POST", changelist, needs, data, action=name))
    steps.append(Step("POST", reverse(f"{info}_delete", args=pk), ("delete",), {"post": "yes"}))
    return steps


def check(client: Client, permission: str, model: Any, step: Step) -> list[str]:
    allowed = any(holds(permission, model, name) for name in step.needs)
    before = rows_written()
    response = (
        client.generic(step.method, step.url)
        if step.data is None
        else client.post(step.url, step.data)
    )
    where = f"{step.method} {step.url}" + (f" action={step.action}" if step.action else "")
    if allowed:
        return (
            [f"{where}: server error {response.status_code}"] if response.status_code >= 500 else []
        )
    problems = []
    if rows_written() != before:
        problems.append(f"{where}: wrote {rows_written() - before} rows without {step.needs}")
    refused = response.status_code == 403
    if step.action and not refused:  # the list opened: the action must be unknown to it
        refused = response.status_code in (200, 302) and step.action not in action_choices(
            client.get(step.url)
        )
    if not refused:
        problems.append(f"{where}: {response.status_code}, should be refused without {step.needs}")
    return problems


def declaration_problems(model_admin: admin.ModelAdmin) -> list[str]:
    problems = []
    for _, name, _ in model_admin._get_base_actions():
        needs = getattr(model_admin.get_action(name)[0], "allowed_permissions", ())
        if not needs or "view" in needs:
            problems.append(f"{model_admin}: action {name} must declare a permission beyond view")
    return problems


def index_problems(client: Client, permission: str) -> list[str]:
    problems = []
    page = client.get(reverse("admin:index"))
    if page.status_code != 200:
        return [f"index: {page.status_code}"]
    html = page.content.decode()
    for model, _ in registry():
        listed = (
            f'href="{reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")}"'
            in html
        )
        if listed and not holds(permission, model, "view"):
            problems.append(f"index links {model._meta.label} without its view permission")
    for app_label in sorted({model._meta.app_label for model, _ in registry()}):
        status = client.get(reverse("admin:app_list", args=[app_label])).status_code
        own = permission.startswith(f"{app_label}.")
        if status == 200 and not own:
            problems.append(f"app page {app_label}: 200 with {permission or 'no permission'}")
    return problems


@pytest.mark.parametrize("permission", ["", *every_permission()], ids=["none", *every_permission()])
def test_no_admin_page_or_action_does_more_than_one_permission_allows(permission: str) -> None:
    rows = sample_rows()
    user = staff_user("walker", *([permission] if permission else []))
    client = client_for(user)
    problems = index_problems(client, permission)
    for model, model_admin in registry():
        row = rows.get(model)
        problems += declaration_problems(model_admin)
        steps, wrong = custom_pages(model_admin, row)
        problems += wrong
        for step in steps + model_steps(model, model_admin, row):
            problems += check(client, permission, model, step)
    assert problems == []
