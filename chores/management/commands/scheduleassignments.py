"""`manage.py scheduleassignments`: assignments for the next N days from task recurrences."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chores.schedule import materialise
from dbops.connections import connect_or_explain
from dbops.management.arguments import whole_number


class Command(BaseCommand):
    help = (
        "Create the assignments of every active task for the next N days from its RRULE, "
        "rotating assignees among the household's members. Idempotent: run it from cron."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=whole_number(1, 366), default=14, help="Days ahead (default 14)."
        )
        parser.add_argument("--household", type=int, help="Only this household id.")
        parser.add_argument("--dry-run", action="store_true", help="Count, create nothing.")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        connect_or_explain()
        summary = materialise(
            options["days"], household_id=options["household"], dry_run=options["dry_run"]
        )
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "tasks": summary.tasks,
                        "created": summary.created,
                        "existing": summary.existing,
                        "unassigned": summary.unassigned,
                        "dry_run": options["dry_run"],
                    }
                )
            )
            return
        verb = "would create" if options["dry_run"] else "created"
        self.stdout.write(
            f"{summary.tasks} active tasks, next {options['days']} days: {verb} "
            f"{summary.created} assignments ({summary.existing} already there, "
            f"{summary.unassigned} without a member to assign)"
        )
