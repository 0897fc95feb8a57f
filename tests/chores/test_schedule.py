"""`manage.py scheduleassignments`: recurrences become assignments, rotating, idempotent."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from accounts.models import UserProfile
from chores.models import Assignment, Household, HouseholdMember, Task
from chores.schedule import materialise

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a Monday morning


def profile(n: int) -> UserProfile:
    return UserProfile.objects.create(cognito_sub=f"sub-{n}", email=f"m{n}@example.com")


@pytest.fixture
def household() -> Household:
    home = Household.objects.create_with_owner(
        profile(0), name="The Millers", timezone="Europe/Berlin"
    )
    for n in (1, 2):
        HouseholdMember.objects.create(household=home, user=profile(n), role="member")
    return home


def task(home: Household, **fields: object) -> Task:
    defaults: dict[str, object] = {"title": "Dishes", "starts_on": date(2026, 1, 1)}
    defaults.update(fields)
    return Task.objects.create(household=home, **defaults)


def test_daily_task_gets_one_assignment_per_day_rotating_members(household: Household) -> None:
    dishes = task(household, recurrence="FREQ=DAILY", due_time=time(19, 0))
    summary = materialise(7, now=NOW)
    assert summary.created == 7
    rows = list(Assignment.objects.filter(task=dishes).order_by("due_at"))
    berlin = ZoneInfo("Europe/Berlin")
    assert [a.due_at.astimezone(berlin).time() for a in rows] == [time(19, 0)] * 7
    assert rows[0].due_at.astimezone(berlin).date() == date(2026, 3, 2)
    order = list(household.members.order_by("joined_at", "id").values_list("id", flat=True))
    assert [a.assignee_id for a in rows] == [order[i % 3] for i in range(7)]
    assert {a.status for a in rows} == {"open"}


def test_running_twice_creates_nothing_and_a_longer_window_continues_the_rotation(
    household: Household,
) -> None:
    dishes = task(household, recurrence="FREQ=DAILY", due_time=time(19, 0))
    materialise(7, now=NOW)
    again = materialise(7, now=NOW)
    assert (again.created, again.existing) == (0, 7)
    assert Assignment.objects.filter(task=dishes).count() == 7

    materialise(14, now=NOW)
    rows = list(Assignment.objects.filter(task=dishes).order_by("due_at"))
    assert len(rows) == 14
    assignees = [a.assignee_id for a in rows]
    assert all(assignees[i] != assignees[i + 1] for i in range(13))
    assert assignees[7] == assignees[4]  # the rotation went on where it stopped


def test_weekly_rule_archived_and_one_off_tasks(household: Household) -> None:
    weekly = task(household, title="Bins", recurrence="FREQ=WEEKLY;BYDAY=TH")
    task(household, title="Old", recurrence="FREQ=DAILY", archived_at=NOW)
    once = task(household, title="Windows", starts_on=date(2026, 3, 4))
    later = task(household, title="Garage", starts_on=date(2026, 5, 1))
    materialise(14, now=NOW)
    bins = Assignment.objects.filter(task=weekly).order_by("due_at")
    berlin = ZoneInfo("Europe/Berlin")
    assert [a.due_at.astimezone(berlin).date() for a in bins] == [
        date(2026, 3, 5),
        date(2026, 3, 12),
    ]
    assert bins[0].due_at.astimezone(berlin).time() == time(23, 59, 59)  # no time: end of day
    assert Assignment.objects.filter(task__title="Old").count() == 0
    assert Assignment.objects.filter(task=once).count() == 1
    assert Assignment.objects.filter(task=later).count() == 0


def test_command_dry_run_and_json(household: Household, capsys: pytest.CaptureFixture[str]) -> None:
    task(household, recurrence="FREQ=DAILY")
    call_command("scheduleassignments", "--days", "3", "--dry-run", "--json")
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True and dry["created"] >= 3
    assert Assignment.objects.count() == 0
    call_command("scheduleassignments", "--days", "3")
    assert "created" in capsys.readouterr().out
    made = Assignment.objects.count()
    assert made == dry["created"]
    call_command("scheduleassignments", "--days", "3", "--json")
    assert json.loads(capsys.readouterr().out)["created"] == 0
    assert Assignment.objects.count() == made


def test_slots_already_taken_by_hand_are_kept(household: Household) -> None:
    dishes = task(household, recurrence="FREQ=DAILY", due_time=time(8, 0))
    berlin = ZoneInfo("Europe/Berlin")
    first_slot = datetime.combine(date(2026, 3, 3), time(8, 0), tzinfo=berlin)
    owner = household.members.get(role="owner")
    Assignment.objects.create(task=dishes, household=household, assignee=owner, due_at=first_slot)
    summary = materialise(3, now=NOW + timedelta(hours=6))
    assert summary.existing == 1
    assert Assignment.objects.get(task=dishes, due_at=first_slot).assignee == owner
