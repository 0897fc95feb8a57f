"""A bad recurrence in the admin is a form error on the field, never a server error."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import UserProfile
from chores.models import Household, Task, TaskTemplate
from chores.recurrence import RecurrenceError, parse
from tests.deadline import deadline

pytestmark = pytest.mark.django_db
TASK_ADD = reverse("admin:chores_task_add")
TEMPLATE_ADD = reverse("admin:chores_tasktemplate_add")


@pytest.fixture
def home() -> Household:
    owner = UserProfile.objects.create(cognito_sub="sub-o", email="owner@example.com")
    return Household.objects.create_with_owner(owner, name="The Millers", timezone="Europe/Berlin")


def task_form(home: Household, recurrence: str, **changes: str) -> dict[str, str]:
    return {
        "household": str(home.pk),
        "title": "Dishes",
        "description": "",
        "effort_points": "2",
        "recurrence": recurrence,
        "starts_on": "2026-03-01",
        "due_time": "19:00",
        "archived_at_0": "",
        "archived_at_1": "",
        **changes,
    }


def field_errors(page: bytes) -> str:
    """The text of the page's error lists."""
    text = html.unescape(page.decode())
    return " ".join(chunk.split("</ul>")[0] for chunk in text.split('class="errorlist')[1:])


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL=0 must be a whole number from 1 to 3660"),
        ("FREQ=SECONDLY", "FREQ=SECONDLY is too often for a chore"),
        ("FREQ=MINUTELY;INTERVAL=5", "FREQ=MINUTELY is too often for a chore"),
        ("FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2", "gives no day in any year"),
        ("FREQ=DAILY;BYHOUR=7,19", "BYHOUR is not supported"),
        ("FREQ=WEEKLY;UNTIL=tomorrow", "UNTIL=tomorrow is not a date"),
    ],
)
def test_the_task_and_template_forms_say_why_a_rule_is_refused(
    admin_client: Any, home: Household, rule: str, reason: str
) -> None:
    with deadline(10):
        response = admin_client.post(TASK_ADD, task_form(home, rule))
    assert response.status_code == 200
    assert reason in field_errors(response.content)
    assert not Task.objects.exists()

    template = {"household": "", "title": "Dishes", "effort_points": "2", "recurrence": rule}
    with deadline(10):
        response = admin_client.post(TEMPLATE_ADD, template)
    assert response.status_code == 200
    assert reason in field_errors(response.content)
    assert not TaskTemplate.objects.exists()


@pytest.mark.parametrize(
    ("rule", "a_start_that_works"),
    [
        ("FREQ=YEARLY;UNTIL=20250101", "2024-06-01"),  # it ended before 2026-03-01
        ("FREQ=DAILY;INTERVAL=7;BYDAY=MO", "2026-03-02"),  # from a Sunday, never a Monday
        ("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", "2024-02-25"),  # 2026, 2030: no leap
    ],
)
def test_a_rule_that_never_comes_from_the_start_date_is_a_form_error(
    admin_client: Any, home: Household, rule: str, a_start_that_works: str
) -> None:
    response = admin_client.post(TASK_ADD, task_form(home, rule))
    assert response.status_code == 200
    assert f"{rule} has no occurrence in the 400 years from 2026-03-01" in field_errors(
        response.content
    )
    response = admin_client.post(TASK_ADD, task_form(home, rule, starts_on=a_start_that_works))
    assert response.status_code == 302


def test_a_task_whose_stored_rule_is_refused_opens_and_asks_for_a_fix(
    admin_client: Any, home: Household
) -> None:
    made = Task.objects.create(household=home, title="Dishes", recurrence="FREQ=DAILY")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tasks SET recurrence = 'FREQ=SECONDLY' WHERE id = %s", [made.pk])
    change = reverse("admin:chores_task_change", args=[made.pk])
    assert admin_client.get(reverse("admin:chores_task_changelist")).status_code == 200
    assert admin_client.get(change).status_code == 200
    response = admin_client.post(change, task_form(home, "FREQ=SECONDLY"))
    assert response.status_code == 200
    assert "too often for a chore" in field_errors(response.content)
    assert admin_client.post(change, task_form(home, "FREQ=DAILY")).status_code == 302


rules = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="FREQ=DAILYWKMONTHSCBYINTVUL;,0123456789-+", max_size=40),
    st.tuples(
        st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY", "HOURLY", "SECONDLY"]),
        st.sampled_from(["", ";INTERVAL=", ";COUNT=", ";BYMONTHDAY=", ";BYDAY=", ";UNTIL="]),
        st.text(alphabet="0123456789-+,MOTUWEFRSAZT", max_size=10),
    ).map(lambda t: f"FREQ={t[0]}{t[1]}{t[2]}"),
)


@settings(
    max_examples=30,
    deadline=None,
    print_blob=True,
    # One household and one signed-in client serve every example; each POST stands alone.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rule=rules)
def test_any_rule_typed_in_the_task_form_gets_a_page_not_a_server_error(
    admin_client: Any, home: Household, rule: str
) -> None:
    with deadline(10):
        response = admin_client.post(TASK_ADD, task_form(home, rule))
    assert response.status_code in (200, 302)
    if response.status_code == 302:
        saved = Task.objects.latest("id")
        try:
            parse(saved.recurrence or "FREQ=DAILY")
        except RecurrenceError as err:
            pytest.fail(f"the admin saved a refused rule {saved.recurrence!r}: {err}")
