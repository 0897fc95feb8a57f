"""Demo data for the development database: a few households with a month of chores.

Everything is keyed by natural keys (Cognito sub, household name, task title, due time),
so a second run in the same week creates nothing. Assignments are the occurrences of each
task's RRULE from three weeks back to the end of the current week, so a run in a later
week adds that week's.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import UserProfile
from chores.audit import set_actor
from chores.models import (
    Assignment,
    Completion,
    Household,
    HouseholdMember,
    Notification,
    Task,
    TaskTemplate,
)

ACTOR = "system:demodata"
PEOPLE = [  # cognito sub, email, display name, time zone, locale
    ("demo-alice", "alice@demo.choregarden.app", "Alice Miller", "Europe/London", "en-GB"),
    ("demo-bob", "bob@demo.choregarden.app", "Bob Miller", "Europe/London", "en-GB"),
    ("demo-chloe", "chloe@demo.choregarden.app", "Chloe Miller", "Europe/London", "en-GB"),
    ("demo-dan", "dan@demo.choregarden.app", "Dan Okafor", "America/New_York", "en-US"),
    ("demo-eve", "eve@demo.choregarden.app", "Eve Santos", "America/New_York", "pt-BR"),
    ("demo-farid", "farid@demo.choregarden.app", "Farid Haddad", "America/New_York", "en"),
]
HOUSEHOLDS = {  # name: (time zone, [(member sub, role)], [(title, points, rrule, due time)])
    "The Millers": (
        "Europe/London",
        [("demo-alice", "owner"), ("demo-bob", "admin"), ("demo-chloe", "child")],
        [
            ("Take out the bins", 2, "FREQ=WEEKLY;BYDAY=TH", time(19, 0)),
            ("Hoover the living room", 3, "FREQ=WEEKLY;BYDAY=SA", time(11, 0)),
            ("Feed the cat", 1, "FREQ=DAILY", time(8, 0)),
            ("Clean the bathroom", 5, "FREQ=WEEKLY;BYDAY=SU", time(16, 0)),
        ],
    ),
    "Flat 3B": (
        "America/New_York",
        [("demo-dan", "owner"), ("demo-eve", "member"), ("demo-farid", "member")],
        [
            ("Take out the bins", 2, "FREQ=WEEKLY;BYDAY=MO,TH", time(20, 0)),
            ("Water the plants", 1, "FREQ=WEEKLY;BYDAY=WE,SA", time(9, 0)),
            ("Kitchen deep clean", 8, "FREQ=MONTHLY;BYMONTHDAY=1", time(18, 0)),
        ],
    ),
}
TEMPLATES = [
    ("Take out the bins", 2, "FREQ=WEEKLY"),
    ("Hoover the living room", 3, "FREQ=WEEKLY"),
    ("Water the plants", 1, "FREQ=WEEKLY;BYDAY=WE,SA"),
    ("Clean the bathroom", 5, "FREQ=WEEKLY"),
]
WEEKS_BACK = 3
PAST_OUTCOMES = ["done", "done", "done", "missed", "skipped", "done"]


class Tally(Counter[str]):
    def record(self, kind: str, created: bool) -> None:
        self[kind] += int(created)


def week_start() -> datetime:
    today = timezone.now().date()
    monday = today - timedelta(days=today.weekday())
    return datetime.combine(monday, time(0), tzinfo=UTC)


@transaction.atomic
def load() -> dict[str, int]:
    """Create what is missing of the demo data; return how many rows of each kind were made."""
    set_actor(ACTOR)
    tally = Tally()
    start = week_start()
    with connection.cursor() as cursor:  # months the history touches must have partitions
        cursor.execute(
            "SELECT choregarden_create_completion_partitions(%s, %s)",
            [(start - timedelta(weeks=WEEKS_BACK)).date(), (start + timedelta(weeks=1)).date()],
        )
    users = {}
    for sub, email, name, tz, locale in PEOPLE:
        users[sub], created = UserProfile.all_objects.get_or_create(
            cognito_sub=sub,
            defaults={
                "email": email,
                "display_name": name,
                "timezone": tz,
                "locale": locale,
                "email_verified": True,
            },
        )
        tally.record("users", created)
    for title, points, rrule in TEMPLATES:
        _, created = TaskTemplate.objects.get_or_create(
            household=None, title=title, defaults={"effort_points": points, "recurrence": rrule}
        )
        tally.record("task templates", created)
    for name, (tz, roster, chores) in HOUSEHOLDS.items():
        household = Household.objects.filter(name=name).first()
        if household is None:
            household = Household.objects.create_with_owner(
                users[roster[0][0]], name=name, timezone=tz
            )
            tally.record("households", True)
            tally.record("members", True)  # its owner
        members = []
        for sub, role in roster:
            m, created = HouseholdMember.objects.get_or_create(
                household=household, user=users[sub], defaults={"role": role}
            )
            members.append(m)
            tally.record("members", created)
        for i, (title, points, rrule, due) in enumerate(chores):
            task, created = Task.objects.get_or_create(
                household=household,
                title=title,
                defaults={
                    "effort_points": points,
                    "recurrence": rrule,
                    "due_time": due,
                    "starts_on": (start - timedelta(weeks=WEEKS_BACK)).date(),
                    "template": TaskTemplate.objects.filter(household=None, title=title).first(),
                },
            )
            tally.record("tasks", created)
            _assign(task, members, i, start, due, tally)
        _notify(household, members, tally)
    return {kind: n for kind, n in tally.items() if n}


def _assign(
    task: Task,
    members: list[HouseholdMember],
    offset: int,
    start: datetime,
    due: time,
    tally: Tally,
) -> None:
    # The occurrences of the task's RRULE from starts_on to the end of this week, in the
    # household's time zone (what the schedule command materialises), rotating assignees.
    zone = ZoneInfo(task.household.timezone)
    rule = rrulestr(task.recurrence or "FREQ=WEEKLY", dtstart=datetime.combine(task.starts_on, due))
    last = datetime.combine((start + timedelta(days=6)).date(), time(23, 59))
    now = timezone.now()
    for n, local in enumerate(rule.between(datetime.combine(task.starts_on, time(0)), last)):
        due_at = local.replace(tzinfo=zone)
        assignee = members[(n + offset) % len(members)]
        if due_at > now - timedelta(days=1):
            status = "open"  # upcoming, or overdue since yesterday
        else:
            status = PAST_OUTCOMES[(n + offset) % len(PAST_OUTCOMES)]
        assignment, created = Assignment.objects.get_or_create(
            task=task, due_at=due_at, defaults={"assignee": assignee, "status": status}
        )
        tally.record("assignments", created)
        if created and status == "done":
            Completion.objects.create(
                household=task.household,
                member=assignee,
                task=task,
                assignment=assignment,
                points=task.effort_points,
                completed_at=due_at - timedelta(hours=1),
                note="Done!" if n % 3 == 0 else "",
            )
            tally.record("completions", True)


def _notify(household: Household, members: list[HouseholdMember], tally: Tally) -> None:
    for m in members:
        overdue = Assignment.objects.filter(
            assignee=m, status="open", due_at__lt=timezone.now()
        ).select_related("task")
        for assignment in overdue:
            _, created = Notification.objects.get_or_create(
                recipient=m.user,
                household=household,
                kind="assignment_overdue",
                payload={"assignment_id": assignment.pk, "title": assignment.task.title},
                defaults={"delivered_channels": ["in_app"]},
            )
            tally.record("notifications", created)


def describe(made: dict[str, Any]) -> str:
    parts = [f"{n} {kind}" for kind, n in sorted(made.items()) if n]
    return ", ".join(parts) if parts else "nothing new (the demo data was already there)"
