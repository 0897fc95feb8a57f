"""Every database rule that can refuse a write is a form error in the admin (issue 11.4).

The rules are read from the catalog (constraints, unique indexes, triggers that raise) of
the application's tables; each one needs an entry in RULES, a test that drives the real
admin with data breaking that rule and expects a 200 with the form's error and no write.
A rule needs no entry only when the admin cannot reach it: its table has no admin that
may write, or it is a key that contains a primary key the admin forms do not edit.
"""

from __future__ import annotations

import html
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from chores.models import (
    Household,
)
from tests.adminforms import submit, superuser_request
from tests.adminworld import World, make_world

pytestmark = pytest.mark.django_db
APPLICATION_APPS = ("accounts", "chores", "dbops")
MISSING_ID = "987654321"
REFUSED_LOGGER = "dbops.adminsite.rules"


@dataclass(frozen=True, order=True)
class Rule:
    table: str
    name: str
    kind: str  # "check", "unique", "primary key", "foreign key", "exclusion", "trigger"
    columns: tuple[str, ...] = ()


def catalog_rules() -> list[Rule]:
    """Every constraint, unique index and raising trigger on the application's tables."""
    foreign = {"django_migrations"} | {  # Django's own tables
        m._meta.db_table
        for m in apps.get_models(include_auto_created=True)
        if m._meta.app_label not in APPLICATION_APPS
    }
    kinds = {"c": "check", "u": "unique", "p": "primary key", "f": "foreign key", "x": "exclusion"}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, con.conname, con.contype,
                   ARRAY(SELECT a.attname FROM unnest(con.conkey) k
                         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k)
            FROM pg_constraint con
            JOIN pg_class c ON c.oid = con.conrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = current_schema() AND NOT c.relispartition
              AND con.contype IN ('c', 'u', 'p', 'f', 'x')
            """
        )
        rules = [
            Rule(table, name, kinds[kind], tuple(cols))
            for table, name, kind, cols in cursor.fetchall()
        ]
        cursor.execute(
            """
            SELECT c.relname, i.relname
            FROM pg_index x
            JOIN pg_class c ON c.oid = x.indrelid
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = current_schema() AND NOT c.relispartition AND x.indisunique
              AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = x.indexrelid)
            """
        )
        rules += [Rule(table, name, "unique") for table, name in cursor.fetchall()]
        # A trigger refuses a write by raising; one whose function never raises cannot.
        cursor.execute(
            """
            SELECT c.relname, t.tgname
            FROM pg_trigger t
            JOIN pg_class c ON c.oid = t.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE n.nspname = current_schema() AND NOT c.relispartition AND NOT t.tgisinternal
              AND p.prosrc ~* '\\mraise\\M'
            """
        )
        rules += [Rule(table, name, "trigger") for table, name in cursor.fetchall()]
    return sorted(r for r in rules if r.table not in foreign)


def _model_admin(table: str) -> Any:
    models = [m for m in apps.get_models() if m._meta.db_table == table]
    return admin.site._registry.get(models[0]) if models else None


def unreachable(rule: Rule) -> str:
    """Why no admin form can break `rule`, or "" when one can."""
    model_admin = _model_admin(rule.table)
    request = superuser_request()
    if model_admin is None or not (
        model_admin.has_add_permission(request)
        or model_admin.has_change_permission(request)
        or model_admin.has_delete_permission(request)
    ):
        return "no admin writes this table"
    pk = model_admin.model._meta.pk
    keys = rule.kind in ("primary key", "unique") and pk.column in rule.columns
    if keys and pk.name not in model_admin.get_form(request).base_fields:
        return "contains the primary key, which no admin form edits"
    return ""


@pytest.fixture
def world() -> World:
    return make_world()


def writes() -> int:
    """Rows inserted, updated or deleted so far in this transaction (sessions aside)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
            "FROM pg_stat_xact_user_tables WHERE relname <> 'django_session'"
        )
        return int(cursor.fetchone()[0])


def refused(client: Any, url: str, changes: dict[str, Any], message: str) -> None:
    """Post the form at `url` with `changes`: a 200 that shows `message`, nothing written."""
    before = writes()
    response = submit(client, url, changes)
    page = html.unescape(response.content.decode())
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    assert message in page, page[page.find("errornote") :][:2000]
    assert writes() == before, "the form wrote before refusing"


def add(model: str) -> str:
    return reverse(f"admin:{model}_add")


def change(model: str, pk: Any) -> str:
    return reverse(f"admin:{model}_change", args=[pk])


def inline(household: Household, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The household page's member rows, as its inline formset posts them."""
    data: dict[str, Any] = {
        "members-TOTAL_FORMS": str(len(rows)),
        "members-INITIAL_FORMS": str(sum(1 for r in rows if r.get("id"))),
    }
    for n, row in enumerate(rows):
        for key, value in {"id": "", "household": household.pk or "", **row}.items():
            data[f"members-{n}-{key}"] = str(value)
    return data


SELECT_VALID = "Select a valid choice"
REQUIRED = "This field is required."

RULES: dict[str, Callable[[Any, World], None]] = {}


def rule(*names: str) -> Callable[[Callable[[Any, World], None]], Callable[[Any, World], None]]:
    def register(case: Callable[[Any, World], None]) -> Callable[[Any, World], None]:
        for name in names:
            assert name not in RULES, name
            RULES[name] = case
        return case

    return register


def missing_reference(
    model: str, field: str, *, value: str = MISSING_ID
) -> Callable[[Any, World], None]:
    """A case: the admin form of `model` names a `field` row that does not exist."""

    def case(client: Any, world: World) -> None:
        refused(client, add(model), {field: value}, SELECT_VALID)

    return case


def new_profile(**changes: Any) -> dict[str, Any]:
    return {"cognito_sub": "sub-new", "email": "new@example.com", **changes}


# users ---------------------------------------------------------------------------------


@rule("users_cognito_sub_key")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("accounts_userprofile"),
        new_profile(cognito_sub="sub-alice"),
        "User profile with this Cognito sub already exists.",
    )


@rule("users_cognito_sub_not_blank")
def _(client: Any, world: World) -> None:
    refused(client, add("accounts_userprofile"), new_profile(cognito_sub="   "), REQUIRED)


@rule("users_email_shape")
def _(client: Any, world: World) -> None:
    # Django's email validator accepts a quoted "@" and vertical tabs; the CHECK does not.
    for email in ('"a@b"@example.com', '"a\x0bb"@example.com'):
        refused(
            client,
            add("accounts_userprofile"),
            new_profile(email=email),
            "one @ and no spaces",
        )


@rule("users_email_lower_uniq")
def _(client: Any, world: World) -> None:
    taken = "A live profile with this email already exists."
    for email in ("alice@example.com", "ALICE@Example.com"):
        refused(client, add("accounts_userprofile"), new_profile(email=email), taken)
    refused(
        client, change("accounts_userprofile", world.bob.pk), {"email": "Alice@example.com"}, taken
    )


@rule("users_timezone_not_blank")
def _(client: Any, world: World) -> None:
    refused(client, add("accounts_userprofile"), new_profile(timezone="  "), REQUIRED)


@rule("users_locale_bcp47")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("accounts_userprofile"),
        new_profile(locale="english"),
        "is not a supported BCP 47 language tag",
    )


@rule("users_preferences_valid")
def _(client: Any, world: World) -> None:
    url = change("accounts_userprofile", world.bob.pk)
    refused(client, url, {"week_start": "friday"}, SELECT_VALID)
    refused(client, url, {"notification_channels": ["fax"]}, SELECT_VALID)
    refused(
        client,
        url,
        {"quiet_hours_start": "25:00", "quiet_hours_end": "07:00"},
        "is not a time",
    )


@rule("users_deleted_not_active")
def _(client: Any, world: World) -> None:
    world.charlie.soft_delete()
    refused(
        client,
        change("accounts_userprofile", world.charlie.pk),
        {"is_active": "on"},
        "A deleted profile cannot be active.",
    )


# households and members ------------------------------------------------------------------


@rule("households_name_not_blank")
def _(client: Any, world: World) -> None:
    refused(client, change("chores_household", world.millers.pk), {"name": "   "}, REQUIRED)


@rule("households_timezone_not_blank")
def _(client: Any, world: World) -> None:
    refused(client, change("chores_household", world.millers.pk), {"timezone": " "}, REQUIRED)


@rule("households_has_owner")
def _(client: Any, world: World) -> None:
    url = add("chores_household")
    no_owner = "A household needs exactly one owner"
    refused(client, url, {"name": "The Joneses", **inline(Household(), [])}, no_owner)
    rows = [{"user": world.charlie.pk, "role": "member"}]
    refused(client, url, {"name": "The Joneses", **inline(Household(), rows)}, no_owner)


@rule("household_members_has_owner")
def _(client: Any, world: World) -> None:
    url = change("chores_household", world.millers.pk)
    owner = {"id": world.owner.pk, "user": world.alice.pk, "role": "owner"}
    child = {"id": world.child.pk, "user": world.bob.pk, "role": "child"}
    refused(
        client, url, inline(world.millers, [{**owner, "role": "admin"}, child]), "cannot be demoted"
    )
    refused(
        client, url, inline(world.millers, [{**owner, "DELETE": "on"}, child]), "cannot be removed"
    )
    member_url = change("chores_householdmember", world.owner.pk)
    refused(client, member_url, {"role": "member"}, "cannot be demoted")
    # Moved to a household that has its owner (they all have one), the owner is refused.
    refused(
        client,
        member_url,
        {"household": world.smiths.pk},
        "This household already has an owner",
    )
    # Deleting the owner's profile would delete the owner's membership: the confirmation
    # page says why not, and posting it anyway is forbidden.
    before = writes()
    url = reverse("admin:accounts_userprofile_delete", args=[world.alice.pk])
    assert "permission to delete" in html.unescape(client.get(url).content.decode())
    assert client.post(url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:accounts_userprofile_changelist")
    bulk = {"action": "delete_selected", "_selected_action": [world.alice.pk], "post": "yes"}
    assert client.post(changelist, bulk).status_code == 403
    assert writes() == before


@rule("household_members_one_owner")
def _(client: Any, world: World) -> None:
    has_one = "This household already has an owner"
    url = change("chores_household", world.millers.pk)
    owner = {"id": world.owner.pk, "user": world.alice.pk, "role": "owner"}
    child = {"id": world.child.pk, "user": world.bob.pk, "role": "owner"}
    refused(client, url, inline(world.millers, [owner, child]), has_one)
    newcomer = {"user": world.charlie.pk, "role": "owner"}
    refused(
        client, url, inline(world.millers, [owner, {**child, "role": "child"}, newcomer]), has_one
    )
    refused(
        client,
        add("chores_householdmember"),
        {"household": world.millers.pk, "user": world.charlie.pk, "role": "owner"},
        has_one,
    )
    # A new household with two owners: no row is in the database yet, the rows disagree.
    rows = [{"user": world.charlie.pk, "role": "owner"}, {"user": world.bob.pk, "role": "owner"}]
    refused(
        client,
        add("chores_household"),
        {"name": "The Joneses", **inline(Household(), rows)},
        "A household needs exactly one owner",
    )


@rule("household_members_household_user_uniq")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("chores_householdmember"),
        {"household": world.millers.pk, "user": world.bob.pk, "role": "member"},
        "This user is already a member of the household.",
    )
    owner = {"id": world.owner.pk, "user": world.alice.pk, "role": "owner"}
    child = {"id": world.child.pk, "user": world.bob.pk, "role": "child"}
    again = {"user": world.bob.pk, "role": "member"}
    refused(
        client,
        change("chores_household", world.millers.pk),
        inline(world.millers, [owner, child, again]),
        "This user is already a member of the household.",
    )


@rule("household_members_role_valid")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("chores_householdmember"),
        {"household": world.millers.pk, "user": world.charlie.pk, "role": "boss"},
        SELECT_VALID,
    )


RULES["household_members_household_id_fkey"] = missing_reference(
    "chores_householdmember", "household"
)
RULES["household_members_user_id_fkey"] = missing_reference(
    "chores_householdmember", "user", value=str(uuid.UUID(int=7))
)


# templates and tasks ------------------------------------------------------------------------


@rule("task_templates_title_not_blank", "tasks_title_not_blank")
def _(client: Any, world: World) -> None:
    refused(client, add("chores_tasktemplate"), {"title": "  "}, REQUIRED)
    refused(client, change("chores_task", world.dishes.pk), {"title": "  "}, REQUIRED)


@rule("task_templates_effort_points_range", "tasks_effort_points_range")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("chores_tasktemplate"),
        {"title": "Mop", "effort_points": "0"},
        "greater than or equal to 1",
    )
    refused(
        client,
        change("chores_task", world.dishes.pk),
        {"effort_points": "101"},
        "less than or equal to 100",
    )


@rule("task_templates_recurrence_shape", "tasks_recurrence_shape")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("chores_tasktemplate"),
        {"title": "Mop", "recurrence": "WEEKLY"},
        "is not NAME=value",
    )
    refused(
        client,
        change("chores_task", world.dishes.pk),
        {"recurrence": "FREQ=WEEKLY;BYDAY"},
        "is not NAME=value",
    )


@rule("task_templates_global_title_uniq")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("chores_tasktemplate"),
        {"title": "VACUUM"},
        "A global template with this title already exists.",
    )


@rule("task_templates_household_title_uniq")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("chores_tasktemplate"),
        {"household": world.millers.pk, "title": "dishes ROTA"},
        "This household already has a template with this title.",
    )


RULES["task_templates_household_id_fkey"] = missing_reference("chores_tasktemplate", "household")
RULES["tasks_household_id_fkey"] = missing_reference("chores_task", "household")
RULES["tasks_template_id_fkey"] = missing_reference("chores_task", "template")


# assignments ------------------------------------------------------------------------------


@rule("assignments_status_valid")
def _(client: Any, world: World) -> None:
    refused(
        client, change("chores_assignment", world.assignment.pk), {"status": "later"}, SELECT_VALID
    )


@rule("assignments_task_due_uniq")
def _(client: Any, world: World) -> None:
    due = timezone.localtime(world.assignment.due_at)
    refused(
        client,
        add("chores_assignment"),
        {
            "task": world.dishes.pk,
            "due_at_0": f"{due:%Y-%m-%d}",
            "due_at_1": f"{due:%H:%M:%S.%f}",
        },
        "This task already has an assignment due at that time.",
    )


@rule("assignments_task_household_fkey")
def _(client: Any, world: World) -> None:
    # The form has no household: the household follows the task, whatever is posted.
    url = change("chores_assignment", world.assignment.pk)
    response = submit(
        client, url, {"task": world.smiths_task.pk, "assignee": "", "household": world.millers.pk}
    )
    assert response.status_code == 302
    world.assignment.refresh_from_db()
    assert world.assignment.household_id == world.smiths.pk


@rule("assignments_assignee_household_fkey")
def _(client: Any, world: World) -> None:
    refused(
        client,
        change("chores_assignment", world.assignment.pk),
        {"assignee": world.dave_member.pk},
        "The assignee must be a member of the task's household.",
    )


@rule("assignments_check_status")
def _(client: Any, world: World) -> None:
    world.assignment.status = "done"
    world.assignment.save()
    refused(
        client,
        change("chores_assignment", world.assignment.pk),
        {"status": "cancelled"},
        "Status cannot change from done to cancelled",
    )


RULES["assignments_task_id_fkey"] = missing_reference("chores_assignment", "task")
RULES["assignments_assignee_id_fkey"] = missing_reference("chores_assignment", "assignee")


# completions and notifications ------------------------------------------------------------


def new_completion(world: World, **changes: Any) -> dict[str, Any]:
    return {"household": world.millers.pk, "points": "3", **changes}


@rule("completions_points_range")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("chores_completion"),
        new_completion(world, points="1001"),
        "less than or equal to 1000",
    )


@rule("completions_note_length")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("chores_completion"),
        new_completion(world, note="x" * 1001),
        "at most 1000 characters",
    )


@rule("completions_member_household_fkey")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("chores_completion"),
        new_completion(world, member=world.dave_member.pk),
        "The member must belong to the household.",
    )


@rule("completions_task_household_fkey")
def _(client: Any, world: World) -> None:
    refused(
        client,
        change("chores_completion", world.completion.pk),
        {"task": world.smiths_task.pk},
        "The task must belong to the household.",
    )


RULES["completions_household_id_fkey"] = missing_reference("chores_completion", "household")
RULES["completions_assignment_id_fkey"] = missing_reference("chores_completion", "assignment")


def new_notification(world: World, **changes: Any) -> dict[str, Any]:
    return {"recipient": world.bob.pk, "kind": "system", "payload": "{}", **changes}


@rule("notifications_kind_valid")
def _(client: Any, world: World) -> None:
    refused(client, add("chores_notification"), new_notification(world, kind="party"), SELECT_VALID)


@rule("notifications_payload_object")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("chores_notification"),
        new_notification(world, payload="[1, 2]"),
        "The payload must be a JSON object.",
    )


@rule("notifications_channels_valid")
def _(client: Any, world: World) -> None:
    refused(
        client,
        add("chores_notification"),
        new_notification(world, delivered_channels="email,fax"),
        SELECT_VALID,
    )


@rule("notifications_read_after_created")
def _(client: Any, world: World) -> None:
    read = "A notification cannot be read before it was created."
    long_ago = {"read_at_0": "2000-01-01", "read_at_1": "12:00:00"}
    refused(client, add("chores_notification"), new_notification(world, **long_ago), read)
    url = change("chores_notification", world.notification.pk)
    refused(client, url, long_ago, read)


RULES["notifications_recipient_id_fkey"] = missing_reference(
    "chores_notification", "recipient", value=str(uuid.UUID(int=7))
)
RULES["notifications_household_id_fkey"] = missing_reference("chores_notification", "household")


# ---------------------------------------------------------------------------------------


def test_every_rule_of_the_catalog_has_a_form_level_test() -> None:
    needing = {r.name for r in catalog_rules() if not unreachable(r)}
    assert needing, "the catalog query found no rules"
    missing = sorted(needing - set(RULES))
    assert not missing, f"rules with no form-level test in RULES: {missing}"
    stale = sorted(set(RULES) - needing)
    assert not stale, f"RULES entries for rules the catalog no longer has: {stale}"


def test_the_unreachable_rules_are_keys_and_read_only_tables() -> None:
    reasons = {r.name: unreachable(r) for r in catalog_rules()}
    assert reasons["users_pkey"] == "contains the primary key, which no admin form edits"
    assert reasons["tasks_id_household_uniq"].startswith("contains the primary key")
    assert reasons["audit_log_guard"] == "no admin writes this table"
    assert reasons["users_email_lower_uniq"] == ""


@pytest.mark.parametrize("name", sorted(RULES))
def test_the_admin_shows_a_form_error_for(
    name: str, admin_client: Any, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=REFUSED_LOGGER):
        RULES[name](admin_client, world)
    # The form caught it: the last line of defence (a refused write turned into a form
    # error) was not needed.
    assert not [r for r in caplog.records if r.name == REFUSED_LOGGER], caplog.text
