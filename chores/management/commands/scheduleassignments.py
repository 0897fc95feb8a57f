"""`manage.py scheduleassignments`: assignments for the next N days from task recurrences."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from chores.schedule import MAX_NEW, ScheduleSummary, materialise
from dbops.connections.errors import connect_or_explain
from sqlmigrations.management.arguments import whole_number
from sqlmigrations.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Create the assignments of every active task for the next N days from its RRULE, "
        "rotating assignees among the household's members. Idempotent: run it from cron. "
        "Exits 1 when a task was skipped (its rule or time zone is refused) or the run "
        "stopped at --max-new; the other tasks are scheduled."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=whole_number(1, 366), default=14, help="Days ahead (default 14)."
        )
        parser.add_argument("--household", type=int, help="Only this household id.")
        parser.add_argument("--dry-run", action="store_true", help="Count, create nothing.")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")
        parser.add_argument(
            "--max-new",
            type=whole_number(1),
            default=MAX_NEW,
            help=f"Stop after this many new assignments; the next run goes on (default {MAX_NEW}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        connect_or_explain()
        summary = materialise(
            options["days"],
            household_id=options["household"],
            dry_run=options["dry_run"],
            max_new=options["max_new"],
        )
        if options["json"]:
            self.stdout.write(json.dumps(self._payload(summary, options)))
            if summary.skipped or summary.capped_at is not None:
                sys.exit(1)
            return
        verb = "would create" if options["dry_run"] else "created"
        self.stdout.write(
            f"{summary.tasks} active tasks, next {options['days']} days: {verb} "
            f"{summary.created} assignments ({summary.existing} already there, "
            f"{summary.unassigned} without a member to assign)"
        )
        for skipped in summary.skipped:
            self.stderr.write(str(skipped))
        problems = []
        if summary.skipped:
            n = len(summary.skipped)
            were = "task was" if n == 1 else "tasks were"
            problems.append(f"{n} {were} not scheduled (listed above)")
        if summary.capped_at is not None:
            task = summary.capped_at
            problems.append(
                f"the run stopped at --max-new {options['max_new']} new assignments, at task "
                f"{task.pk} {task.title!r}: run it again to go on, or raise --max-new"
            )
        if problems:
            raise CommandError("; ".join(problems))

    @staticmethod
    def _payload(summary: ScheduleSummary, options: dict[str, Any]) -> dict[str, Any]:
        return {
            "tasks": summary.tasks,
            "created": summary.created,
            "existing": summary.existing,
            "unassigned": summary.unassigned,
            "dry_run": options["dry_run"],
            "skipped": [
                {
                    "task": s.task.pk,
                    "household": s.task.household_id,
                    "recurrence": s.task.recurrence,
                    "reason": s.reason,
                }
                for s in summary.skipped
            ],
            "capped_at_task": summary.capped_at.pk if summary.capped_at else None,
        }
