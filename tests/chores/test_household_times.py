"""Assignment and completion times in the admin are on the household's clock, the zone named;
forms read a typed time on the clock they say, and never move a time silently."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import formats
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.models import UserProfile
from chores.models import Assignment, Completion, Household, Task
from dbops.adminsite.datetimes import LocalDateTimes, current, page

pytestmark = pytest.mark.django_db
AUCKLAND = "Pacific/Auckland"
# 18:30 on 6 December in Auckland (NZDT, UTC+13) is 05:30 the same day in UTC.
DUE = datetime(2026, 12, 6, 5, 30, tzinfo=UTC)
CELL = "Dec. 6, 2026, 6:30 p.m. NZDT (Pacific/Auckland)"


@pytest.fixture
def auckland() -> dict[str, Any]:
    mere = UserProfile.objects.create(cognito_sub="sub-mere", email="mere@example.com")
    home = Household.objects.create_with_owner(mere, name="Ponsonby flat", timezone=AUCKLAND)
    task = Task.objects.create(household=home, title="Feed the cat", recurrence="FREQ=DAILY")
    member = home.members.get()
    assignment = Assignment.objects.create(task=task, household=home, assignee=member, due_at=DUE)
    completion = Completion.objects.create(
        household=home, member=member, task=task, assignment=assignment, points=2, completed_at=DUE
    )
    return {"home": home, "task": task, "assignment": assignment, "completion": completion}


def cell(html: str, column: str) -> list[str]:
    return re.findall(rf'<td class="field-{column}[^"]*">(.*?)</td>', html, re.S)


def test_the_assignments_list_shows_the_households_time_and_zone(
    admin_client: Client, auckland: dict[str, Any]
) -> None:
    page_html = admin_client.get(reverse("admin:chores_assignment_changelist")).content.decode()
    assert cell(page_html, "due") == [CELL]


def test_the_completions_list_shows_the_households_time_and_zone(
    admin_client: Client, auckland: dict[str, Any]
) -> None:
    page_html = admin_client.get(reverse("admin:chores_completion_changelist")).content.decode()
    assert cell(page_html, "completed") == [CELL]
    assert "Completed (household time)" in page_html


def test_a_completions_page_shows_and_keeps_its_time_on_the_households_clock(
    admin_client: Client, auckland: dict[str, Any]
) -> None:
    completion = auckland["completion"]
    url = reverse("admin:chores_completion_change", args=[completion.pk])
    html = admin_client.get(url).content.decode()
    assert 'name="completed_at_0" value="2026-12-06"' in html
    assert 'name="completed_at_1" value="18:30:00"' in html
    assert "On the household's clock: Pacific/Auckland (NZDT)." in html
    assert "Times on this page are on the household's clock: Pacific/Auckland." in html
    saved = admin_client.post(
        url,
        {
            "household": auckland["home"].pk,
            "member": completion.member_id,
            "task": completion.task_id,
            "assignment": completion.assignment_id,
            "completed_at_0": "2026-12-06",
            "completed_at_1": "18:30:00",
            "points": 3,
            "note": "",
        },
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    completion.refresh_from_db()
    assert (completion.points, completion.completed_at) == (3, DUE)  # the time did not move


def test_a_new_assignments_due_time_is_read_on_its_households_clock(
    admin_client: Client, auckland: dict[str, Any]
) -> None:
    url = reverse("admin:chores_assignment_add")
    assert "On the clock of the task's household" in admin_client.get(url).content.decode()
    data = {"task": auckland["task"].pk, "assignee": "", "status": "open"}
    saved = admin_client.post(url, {**data, "due_at_0": "2026-12-07", "due_at_1": "18:30:00"})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert Assignment.objects.filter(due_at=DUE + timedelta(days=1)).exists()


def test_a_time_the_households_clock_skips_is_refused_not_moved(
    admin_client: Client, auckland: dict[str, Any]
) -> None:
    # Auckland's clocks go from 02:00 to 03:00 on 27 September 2026: 02:30 never happens.
    before = Assignment.objects.count()
    refused = admin_client.post(
        reverse("admin:chores_assignment_add"),
        {
            "task": auckland["task"].pk,
            "assignee": "",
            "status": "open",
            "due_at_0": "2026-09-27",
            "due_at_1": "02:30:00",
        },
    )
    assert refused.status_code == 200
    assert "Pacific/Auckland" in refused.content.decode()
    assert "errornote" in refused.content.decode()
    assert Assignment.objects.count() == before


def test_a_new_completion_says_its_time_is_read_in_utc_and_keeps_it(
    admin_client: Client, auckland: dict[str, Any]
) -> None:
    url = reverse("admin:chores_completion_add")
    assert "In UTC on this page; once saved, shown on the household" in (
        admin_client.get(url).content.decode()
    )
    home, task = auckland["home"], auckland["task"]
    saved = admin_client.post(
        url,
        {
            "household": home.pk,
            "member": home.members.get().pk,
            "task": task.pk,
            "assignment": "",
            "completed_at_0": "2026-12-08",
            "completed_at_1": "05:30:00",
            "points": 1,
            "note": "",
        },
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert Completion.objects.filter(completed_at=DUE + timedelta(days=2)).exists()


ZONES = [AUCKLAND, "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "UTC"]


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.tuples(
            st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
            st.sampled_from(ZONES),
        ),
        min_size=1,
        max_size=30,
    ),
    fmt=st.sampled_from(["N j, Y, P", "Y-m-d H:i", "N j, Y, P T"]),
)
def test_a_zoned_cell_is_djangos_text_on_that_clock_with_the_zone(
    values: list[tuple[datetime, str]], fmt: str
) -> None:
    with override_settings(DATETIME_FORMAT=fmt), page():
        formatter = current()
        assert isinstance(formatter, LocalDateTimes)
        for value, name in [*values, *values]:  # the second time from the page's memo
            local = value.astimezone(zoneinfo.ZoneInfo(name))
            expected = f"{formats.date_format(local, 'DATETIME_FORMAT')} {local:%Z} ({name})"
            assert current().zoned(value, zoneinfo.ZoneInfo(name)) == expected
    assert current() is not formatter  # outside the page: a new one
