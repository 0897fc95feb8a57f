"""No query string or form data makes the admin answer with a server error (issue 11.4).

Property-based: hypothesis generates query strings for every registered changelist
(filters with valid and malformed values, search, ordering, paging, unknown parameters)
and form data for every add and change form (the page's own values with some replaced by
generated ones). Each example runs in a savepoint that is rolled back, and checks the
deferred constraints before that, so what the database would refuse at commit counts too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings as django_settings
from django.contrib import admin
from django.contrib.admin.views.main import ORDER_VAR, PAGE_VAR, SEARCH_VAR
from django.contrib.auth.models import Group, User
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbops.admin import DatabaseHealthAdmin
from tests.adminforms import admin_form_id, form_values, superuser_request
from tests.adminworld import World, make_world

pytestmark = pytest.mark.django_db
EXAMPLES = settings(
    max_examples=int(os.environ.get("ADMIN_EXAMPLES", "25")),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# Values people and scripts put in query strings and forms by mistake (or on purpose).
AWKWARD = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "0",
        "-1",
        "1.5",
        "1e309",
        "9" * 30,
        "-" + "9" * 30,
        "2024-13",
        "9999-12",
        "0000-00",
        "10000-01-01",
        "0001-01-01",
        "9999-12-31",
        "24:61",
        "true",
        "None",
        "null",
        "[]",
        "{}",
        '{"a": "\\u0000"}',
        "FREQ=",
        "' OR 1=1 --",
        "%00",
        "\u202e\u0301",
        "x" * 300,
        "00000000-0000-0000-0000-000000000000",
    ]
)
VALUES = st.one_of(
    AWKWARD,
    st.text(max_size=30),
    st.integers().map(str),
    st.dates().map(str),
    st.datetimes().map(str),
    st.text(alphabet="0123456789-:T .,", max_size=25),
)


def registered() -> list[tuple[str, Any]]:
    return sorted(
        ((m._meta.label_lower.replace(".", "_"), a) for m, a in admin.site._registry.items()),
        key=lambda pair: pair[0],
    )


def changelist_keys(model_admin: Any) -> tuple[list[str], list[str]]:
    """The filter parameters of a changelist, and the values its own filter links use."""
    if isinstance(model_admin, DatabaseHealthAdmin):  # a page in a changelist's place
        return ["database"], list(django_settings.DATABASES)
    request = superuser_request()
    keys: set[str] = set()
    values: set[str] = set()
    if model_admin.date_hierarchy:
        keys |= {f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day")}
    changelist = model_admin.get_changelist_instance(request)
    for spec in changelist.filter_specs:
        keys |= set(spec.expected_parameters())
        for choice in spec.choices(changelist):
            pairs = parse_qsl(choice.get("query_string", "").lstrip("?"))
            values |= {value for _, value in pairs}
    return sorted(keys), sorted(values)


@pytest.mark.parametrize(("name", "model_admin"), registered(), ids=[n for n, _ in registered()])
def test_no_query_string_breaks_a_changelist(
    name: str, model_admin: Any, admin_client: Any, world: World
) -> None:
    url = reverse(f"admin:{name}_changelist")
    keys, own_values = changelist_keys(model_admin)
    common = [SEARCH_VAR, ORDER_VAR, PAGE_VAR, "e", "all", "_popup", "_to_field", "_facets"]
    key = st.one_of(st.sampled_from(keys + common), st.text(min_size=1, max_size=12))
    value = st.one_of(VALUES, st.sampled_from(own_values or [""]), st.integers(-3, 30).map(str))

    @EXAMPLES
    @given(params=st.dictionaries(key, value, max_size=4))
    def run(params: dict[str, str]) -> None:
        with rolled_back():
            response = admin_client.get(url, params)
        assert response.status_code < 500, params

    run()


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def group() -> Group:
    return Group.objects.create(name="Helpers")


@pytest.fixture
def sign_ins() -> dict[str, Any]:
    """One row of each sign-in record django-axes keeps (their admin may change them)."""
    common = {"user_agent": "probe", "ip_address": "192.0.2.1", "username": "mallory"}
    common |= {"http_accept": "*/*", "path_info": "/admin/login/"}
    return {
        "axes_accessattempt": AccessAttempt.objects.create(
            **common, get_data="", post_data="", failures_since_start=1
        ),
        "axes_accesslog": AccessLog.objects.create(**common),
        "axes_accessfailurelog": AccessFailureLog.objects.create(**common),
    }


def form_pages(
    world: World, group: Group, admin_user: User, sign_ins: dict[str, Any]
) -> dict[str, str]:
    """Every add and change page of the admin ("model add" -> url), changing world rows."""
    rows = {
        "accounts_userprofile": world.bob,
        "chores_household": world.millers,
        "chores_householdmember": world.child,
        "chores_tasktemplate": world.own_template,
        "chores_task": world.dishes,
        "chores_assignment": world.assignment,
        "chores_completion": world.completion,
        "chores_notification": world.notification,
        "auth_group": group,
        "auth_user": admin_user,
        "otp_totp_totpdevice": TOTPDevice.objects.get_or_create(user=admin_user, name="phone")[0],
        **sign_ins,
    }
    request = superuser_request()
    pages = {}
    for name, model_admin in registered():
        if model_admin.has_add_permission(request):
            pages[f"{name} add"] = reverse(f"admin:{name}_add")
        row = rows.get(name)
        if model_admin.has_change_permission(request, row):
            assert row is not None, f"{name}: give the form test a row to change"
            pages[f"{name} change"] = reverse(f"admin:{name}_change", args=[row.pk])
    return pages


def world_values(world: World) -> list[str]:
    """Values that collide with the world's rows: keys, emails in other case, titles."""
    values = ["owner", "admin", "done", "cancelled", "missed", "2000-01-01", "12:00:00"]
    for person in (world.alice, world.bob, world.charlie, world.dave):
        values += [person.email, person.email.upper(), person.cognito_sub, str(person.pk)]
    rows = (world.millers, world.smiths, world.owner, world.child, world.dave_member)
    rows += (world.template, world.own_template, world.dishes, world.smiths_task)
    rows += (world.assignment, world.completion, world.notification)
    values += [str(row.pk) for row in rows]
    values += [world.template.title.upper(), world.own_template.title.lower()]
    due = timezone.localtime(world.assignment.due_at)
    return [*values, f"{due:%Y-%m-%d}", f"{due:%H:%M:%S.%f}"]


FORMS = [
    f"{model} {kind}"
    for model in (
        "accounts_userprofile",
        "auth_group",
        "auth_user",
        "axes_accessattempt",
        "axes_accessfailurelog",
        "axes_accesslog",
        "chores_assignment",
        "chores_completion",
        "chores_household",
        "chores_householdmember",
        "chores_notification",
        "chores_task",
        "chores_tasktemplate",
        "otp_totp_totpdevice",
    )
    for kind in ("add", "change")
    if not (model.startswith("axes") and kind == "add")
]


def test_the_form_list_covers_every_admin_that_writes(
    world: World, group: Group, admin_user: User, sign_ins: dict[str, Any]
) -> None:
    assert sorted(form_pages(world, group, admin_user, sign_ins)) == FORMS


@pytest.mark.parametrize("form", FORMS)
def test_no_form_data_breaks_an_add_or_change_form(
    form: str,
    admin_client: Any,
    world: World,
    group: Group,
    admin_user: User,
    sign_ins: dict[str, Any],
) -> None:
    url = form_pages(world, group, admin_user, sign_ins)[form]
    page = admin_client.get(url)
    assert page.status_code == 200, url
    baseline = form_values(page.content.decode(), admin_form_id(url))
    fields = [*sorted(baseline), "unknown"]
    value = st.one_of(st.none(), st.sampled_from(world_values(world)), VALUES)

    @EXAMPLES
    @given(changes=st.dictionaries(st.sampled_from(fields), value, min_size=1, max_size=4))
    def run(changes: dict[str, str | None]) -> None:
        data = dict(baseline)
        for name, value in changes.items():
            if value is None:
                data.pop(name, None)
            else:
                data[name] = [value]
        with rolled_back():
            response = admin_client.post(url, data)
            assert response.status_code < 500, changes
            check_deferred_constraints()

    run()


@contextmanager
def rolled_back() -> Iterator[None]:
    """Run the block in a savepoint that is always rolled back."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def check_deferred_constraints() -> None:
    """Fire the deferred constraint triggers now, as the commit would."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
