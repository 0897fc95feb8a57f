"""Materialise assignments from task recurrences (issue 4.5).

For every active task, each occurrence of its RRULE (one-off tasks: their day) that falls
in the window [now, now + days] becomes an assignment due at the task's time of day in
the household's time zone (end of day when none is set). A slot that already has an
assignment is left alone (the unique (task_id, due_at) index settles races too, through
INSERT ... ON CONFLICT DO NOTHING), so running it twice creates nothing new.

Assignees rotate through the household's members in the order they joined: each new
occurrence goes to the member after the one who had the task's previous occurrence, so
the rotation continues across runs and survives members joining or leaving.

Bounded whatever the table holds (rows written by SQL skip the model's validation): a
task whose rule or time zone the validators refuse is skipped with the reason, as is a
task with more than one occurrence a day; a run stops adding after `max_new` new
assignments. The other tasks are scheduled all the same.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.validators import validate_timezone
from chores.models import Assignment, HouseholdMember, Task
from chores.recurrence import RecurrenceError, occurrences_between, parse

END_OF_DAY = time(23, 59, 59)
MAX_NEW = 100_000  # new assignments per run: one INSERT batch set, held in memory


class UnschedulableTask(Exception):
    """A stored task whose occurrences cannot be computed; the message says why."""


@dataclass(frozen=True)
class Skipped:
    task: Task
    reason: str

    def __str__(self) -> str:
        return (
            f"task {self.task.pk} {self.task.title!r} (household {self.task.household_id}, "
            f"recurrence {self.task.recurrence or 'none'}) was not scheduled: {self.reason}"
        )


@dataclass
class ScheduleSummary:
    tasks: int = 0
    created: int = 0
    existing: int = 0
    unassigned: int = 0
    per_household: dict[int, int] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    capped_at: Task | None = None  # the task where the run reached max_new


def occurrences(task: Task, start: datetime, end: datetime, *, limit: int) -> list[datetime]:
    """The task's due moments in [start, end], as aware datetimes; at most `limit`."""
    try:
        validate_timezone(task.household.timezone)
    except ValidationError as err:
        raise UnschedulableTask(f"its household's time zone: {err.messages[0]}") from None
    zone = ZoneInfo(task.household.timezone)
    first = datetime.combine(task.starts_on, task.due_time or END_OF_DAY)
    if not task.recurrence:
        due = first.replace(tzinfo=zone)
        return [due] if start <= due <= end else []
    try:
        rule = parse(task.recurrence)
        return occurrences_between(rule, first, start, end, zone=zone, limit=limit)
    except RecurrenceError as err:
        raise UnschedulableTask(f"{err}; fix the recurrence in the admin") from None


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
    max_new: int = MAX_NEW,
    max_per_task: int | None = None,
) -> ScheduleSummary:
    """Create the assignments of the next `days` days; report the tasks left out.

    A task gets at most `max_per_task` occurrences (default: one a day, what a valid rule
    can give); the run stops after `max_new` new assignments (the next run goes on).
    """
    now = now or timezone.now()
    per_task = max_per_task if max_per_task is not None else days + 1
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
        if summary.capped_at is not None:
            break
        crew = members.get(task.household_id, [])
        previous = last.get(task.pk)
        try:
            dues = occurrences(task, now, end, limit=per_task)
        except UnschedulableTask as err:
            summary.skipped.append(Skipped(task, str(err)))
            continue
        for due in dues:
            if (task.pk, due) in taken:
                summary.existing += 1
                previous = taken[(task.pk, due)] or previous
                continue
            if len(new) == max_new:
                summary.capped_at = task
                break
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
