"""`manage.py scheduleassignments`: recurrences become assignments, rotating, idempotent."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import UserProfile
from chores.models import Assignment, Household, HouseholdMember, Task
from chores.schedule import materialise
from tests.deadline import deadline

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


def stored(home: Household, title: str, rule: str) -> Task:
    """A task whose recurrence was written by SQL, past the model's validation."""
    made = task(home, title=title, recurrence="FREQ=DAILY")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tasks SET recurrence = %s WHERE id = %s", [rule, made.pk])
    return made


STORED_PAST_VALIDATION = [
    "FREQ=DAILY;INTERVAL=0",
    "FREQ=SECONDLY",
    "FREQ=MINUTELY",
    "FREQ=HOURLY;BYMINUTE=0,30",
    "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2",
    "FREQ=WEEKLY;BYDAY=1MO",
]


def test_rules_stored_past_validation_are_skipped_with_a_line_each_and_the_rest_scheduled(
    household: Household, capsys: pytest.CaptureFixture[str]
) -> None:
    dishes = task(household, recurrence="FREQ=DAILY", due_time=time(19, 0))
    bad = [stored(household, f"Bad {n}", rule) for n, rule in enumerate(STORED_PAST_VALIDATION)]
    with deadline(20), pytest.raises(CommandError, match="6 tasks were not scheduled"):
        call_command("scheduleassignments", "--household", str(household.pk), "--days", "1")
    out, err = capsys.readouterr()
    assert "would" not in out and "created 1 assignments" in out
    lines = err.strip().splitlines()
    assert len(lines) == len(bad)
    for line, made in zip(lines, bad, strict=True):
        assert line.startswith(f"task {made.pk} {made.title!r} (household {household.pk}, ")
    for line, rule in zip(lines, STORED_PAST_VALIDATION, strict=True):
        assert f"recurrence {rule}) was not scheduled: " in line
    assert "INTERVAL=0 must be a whole number from 1 to 3660" in lines[0]
    assert "FREQ=SECONDLY is too often for a chore" in lines[1]
    assert "gives no day in any year" in lines[4]
    assert Assignment.objects.filter(task=dishes).count() == 1
    assert not Assignment.objects.filter(task__in=bad).exists()


def test_the_issues_hanging_dry_run_now_ends_with_a_clear_message(
    household: Household, capsys: pytest.CaptureFixture[str]
) -> None:
    looping = stored(household, "Loop", "FREQ=DAILY;INTERVAL=0")
    with deadline(20), pytest.raises(CommandError):
        call_command(
            "scheduleassignments", "--household", str(household.pk), "--days", "1", "--dry-run"
        )
    err = capsys.readouterr().err
    assert f"task {looping.pk} 'Loop'" in err and "FREQ=DAILY;INTERVAL=0" in err


def test_json_lists_the_skipped_tasks_and_exits_1(
    household: Household, capsys: pytest.CaptureFixture[str]
) -> None:
    flood = stored(household, "Flood", "FREQ=SECONDLY")
    with pytest.raises(SystemExit) as exit_:
        call_command("scheduleassignments", "--days", "2", "--json")
    assert exit_.value.code == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == [
        {
            "task": flood.pk,
            "household": household.pk,
            "recurrence": "FREQ=SECONDLY",
            "reason": summary["skipped"][0]["reason"],
        }
    ]
    assert "too often for a chore" in summary["skipped"][0]["reason"]


def test_a_household_time_zone_stored_past_validation_skips_its_tasks_only(
    household: Household,
) -> None:
    other = Household.objects.create_with_owner(profile(9), name="Others", timezone="UTC")
    theirs = task(other, recurrence="FREQ=DAILY")
    mine = task(household, recurrence="FREQ=DAILY")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE households SET timezone = 'Mars/Olympus' WHERE id = %s", [household.pk]
        )
    summary = materialise(3, now=NOW)
    assert [s.task.pk for s in summary.skipped] == [mine.pk]
    assert "Mars/Olympus is not an IANA time zone" in str(summary.skipped[0])
    assert Assignment.objects.filter(task=theirs).count() == 3


def test_a_rule_with_until_as_a_date_is_scheduled_up_to_that_day(household: Household) -> None:
    # dateutil refuses a date UNTIL with a time-zone-aware start: this used to stop the run.
    bins = task(household, recurrence="FREQ=DAILY;UNTIL=20260304", due_time=time(6, 0))
    materialise(7, now=NOW)
    days = [a.due_at.astimezone(ZoneInfo("Europe/Berlin")).date() for a in bins.assignments.all()]
    assert sorted(days) == [date(2026, 3, 3), date(2026, 3, 4)]  # 6:00 on the 2nd has passed


def test_a_task_started_centuries_ago_is_scheduled_without_walking_the_centuries(
    household: Household,
) -> None:
    old = task(household, recurrence="FREQ=DAILY", starts_on=date(1, 1, 1), due_time=time(19, 0))
    with deadline(1):
        summary = materialise(14, now=NOW)
    assert summary.created == 14 and old.assignments.count() == 14


def test_a_run_stops_at_max_new_and_the_next_run_goes_on(
    household: Household, capsys: pytest.CaptureFixture[str]
) -> None:
    first = task(household, title="Dishes", recurrence="FREQ=DAILY")
    task(household, title="Bins", recurrence="FREQ=DAILY")
    summary = materialise(7, now=NOW, max_new=10)
    assert summary.created == 10 and summary.capped_at is not None
    assert summary.capped_at.title == "Bins"
    assert first.assignments.count() == 7
    again = materialise(7, now=NOW, max_new=10)
    assert (again.created, again.existing, again.capped_at) == (4, 10, None)
    with pytest.raises(CommandError, match=r"stopped at --max-new 1 new assignments, at task"):
        call_command("scheduleassignments", "--days", "8", "--max-new", "1")


def test_a_task_with_more_occurrences_than_the_cap_is_skipped(household: Household) -> None:
    dishes = task(household, recurrence="FREQ=DAILY")
    summary = materialise(7, now=NOW, max_per_task=3)
    assert [str(s) for s in summary.skipped] == [
        f"task {dishes.pk} 'Dishes' (household {household.pk}, recurrence FREQ=DAILY) was not "
        "scheduled: more than 3 occurrences between 2026-03-02 and 2026-03-09; fix the "
        "recurrence in the admin"
    ]
    assert summary.created == 0
