"""Materialise assignments from task recurrences (issue 4.5).

For every active task, each occurrence of its RRULE (one-off tasks: their day) that falls
in the window [now, now + days] becomes an assignment due at the task's time of day in
the household's time zone (end of day when none is set). A slot that already has an
assignment is left alone (the unique (task_id, due_at) index settles races too, through
INSERT ... ON CONFLICT DO NOTHING), so running it twice creates nothing new.

Assignees rotate through the household's members in the order they joined: each new
occurrence goes to the member after the one who had the task's previous occurrence, so
the rotation continues across runs and survives members joining or leaving.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chores.models import Assignment, HouseholdMember, Task

END_OF_DAY = time(23, 59, 59)


@dataclass
class ScheduleSummary:
    tasks: int = 0
    created: int = 0
    existing: int = 0
    unassigned: int = 0
    per_household: dict[int, int] = field(default_factory=dict)


def occurrences(task: Task, start: datetime, end: datetime) -> list[datetime]:
    """The task's due moments in [start, end], as aware datetimes."""
    zone = ZoneInfo(task.household.timezone)
    first = datetime.combine(task.starts_on, task.due_time or END_OF_DAY, tzinfo=zone)
    if not task.recurrence:
        return [first] if start <= first <= end else []
    rule = rrulestr(task.recurrence.removeprefix("RRULE:"), dtstart=first)
    return list(rule.between(start, end, inc=True))


def _rotation(members: list[HouseholdMember], previous: int | None) -> int:
    """Index of the member after `previous` (a member id), or the first one."""
    ids = [m.pk for m in members]
    if previous in ids:
        return (ids.index(previous) + 1) % len(ids)
    return 0


def materialise(
    days: int,
    *,
    now: datetime | None = None,
    household_id: int | None = None,
    dry_run: bool = False,
) -> ScheduleSummary:
    now = now or timezone.now()
    end = now + timedelta(days=days)
    summary = ScheduleSummary()
    tasks = Task.objects.filter(archived_at__isnull=True).select_related("household")
    tasks = tasks.filter(
        Q(recurrence__isnull=False) | Q(starts_on__gte=(now - timedelta(days=1)).date())
    )
    if household_id is not None:
        tasks = tasks.filter(household_id=household_id)
    tasks = list(tasks.order_by("household_id", "id"))
    summary.tasks = len(tasks)
    task_ids = [t.pk for t in tasks]

    members: dict[int, list[HouseholdMember]] = defaultdict(list)
    for member in HouseholdMember.objects.filter(
        household_id__in={t.household_id for t in tasks}
    ).order_by("joined_at", "id"):
        members[member.household_id].append(member)
    taken: dict[tuple[int, datetime], int | None] = {
        (task_id, due_at): assignee_id
        for task_id, due_at, assignee_id in Assignment.objects.filter(
            task_id__in=task_ids, due_at__gte=now, due_at__lte=end
        ).values_list("task_id", "due_at", "assignee_id")
    }
    # The assignee of each task's latest occurrence before the window continues the rotation.
    last: dict[int, int | None] = dict(
        Assignment.objects.filter(task_id__in=task_ids, due_at__lt=now)
        .order_by("task_id", "-due_at")
        .distinct("task_id")
        .values_list("task_id", "assignee_id")
    )

    new: list[Assignment] = []
    for task in tasks:
        crew = members.get(task.household_id, [])
        previous = last.get(task.pk)
        for due in occurrences(task, now, end):
            if (task.pk, due) in taken:
                summary.existing += 1
                previous = taken[(task.pk, due)] or previous
                continue
            assignee = None
            if crew:
                assignee = crew[_rotation(crew, previous)]
                previous = assignee.pk
            else:
                summary.unassigned += 1
            new.append(
                Assignment(task=task, household_id=task.household_id, assignee=assignee, due_at=due)
            )
            summary.per_household[task.household_id] = (
                summary.per_household.get(task.household_id, 0) + 1
            )
    if not dry_run and new:
        with transaction.atomic():
            created = Assignment.objects.bulk_create(new, ignore_conflicts=True, batch_size=1000)
        summary.created = len(created)
    else:
        summary.created = len(new)
    return summary
