"""`dbalarms sync`: the CloudWatch alarms on the database's health figures and RDS metrics."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

from dbops.connections.config import database_name
from dbops.health import alarms
from dbops.health.cloudwatch import DEFAULT_NAMESPACE
from sqlmigrations.management.base import DatabaseCommand
from sqlmigrations.redact import redact

PAST = {"create": "created", "update": "updated", "delete": "deleted"}


class Command(DatabaseCommand):
    help = (
        "Create or update the CloudWatch alarms on the figures `dbhealth --cloudwatch` "
        "publishes and on RDS's metrics; --prune deletes the ones no longer wanted "
        "(docs/monitoring-playbook.md)."
    )
    requires_system_checks: list[str] = []  # no database needed: only CloudWatch is read

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        sync = sub.add_parser(
            "sync", help="Print the plan and make CloudWatch's alarms match the settings."
        )
        sync.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
        sync.add_argument(
            "--prune",
            action="store_true",
            help="delete this environment's alarms (by their prefix) the settings no longer want",
        )
        sync.add_argument(
            "--namespace",
            default=DEFAULT_NAMESPACE,
            help="the namespace dbhealth publishes to (default %(default)s)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.sync(options)
        except (alarms.AlarmError, ImproperlyConfigured) as err:
            raise CommandError(" ".join(redact(str(err)).split())) from err

    def sync(self, options: dict[str, Any]) -> None:
        dry_run, prune = options["dry_run"], options["prune"]
        prefix = alarms.alarm_prefix()
        client = alarms.client()
        region = client.meta.region_name
        topic = alarms.sns_topic(region)
        if not topic and settings.PRODUCTION and not dry_run:
            raise CommandError(
                "ALARM_SNS_TOPIC_ARN is not set: production's alarms would notify nobody. Set "
                "it to the SNS topic's ARN (--dry-run shows the plan without it); nothing changed."
            )
        wanted = alarms.desired(
            namespace=options["namespace"], database=database_name("default"), topic=topic
        )
        changes = alarms.plan(wanted.alarms, alarms.existing(client, prefix), prune)

        self.stdout.write(
            f"Alarms {prefix}* in {region}, notifying {topic or 'nobody'}"
            f"{' (dry run)' if dry_run else ''}:"
        )
        width = max((len(c.name) for c in changes), default=0)
        for change in changes:
            self.stdout.write(self.line(change, width))
        for note in wanted.notes:
            self.stdout.write(f"Note: {note}")
        if not dry_run:
            alarms.apply(client, changes, prefix)
        self.stdout.write(self.summary(changes, dry_run))

    def line(self, change: alarms.Change, width: int) -> str:
        if change.action == "update":
            detail = "; ".join(change.differences)
        elif change.alarm is not None:
            detail = change.alarm.condition()
        elif change.action == "delete":
            detail = "no longer wanted"
        else:
            detail = "no longer wanted: --prune deletes it"
        text = f"  {change.action:<9}  {change.name:<{width}}  {detail}"
        style = {"create": self.style.SUCCESS, "update": self.style.WARNING}
        return style.get(change.action, self.style.ERROR if change.alarm is None else str)(text)

    def summary(self, changes: list[alarms.Change], dry_run: bool) -> str:
        counts = {a: sum(c.action == a for c in changes) for a in PAST}
        unchanged = sum(c.action == "unchanged" for c in changes)
        left = sum(c.action == "left" for c in changes)
        if dry_run:
            parts = [f"{n} to {a}" for a, n in counts.items()]
        else:
            parts = [f"{n} {PAST[a]}" for a, n in counts.items()]
        parts.append(f"{unchanged} unchanged")
        if left:
            parts.append(f"{left} left (--prune deletes them)")
        head = "Dry run" if dry_run else "Done"
        return f"{head}: {', '.join(parts)}" + ("; nothing changed." if dry_run else ".")
