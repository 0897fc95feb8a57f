"""`manage.py partitions`: monthly partitions of the history tables, created ahead, archived."""

from __future__ import annotations

import json
import sys
from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dbops.backups import BackupError
from dbops.connections import unavailable
from dbops.management.arguments import month, whole_number
from dbops.partitions import (
    PARTITIONED_TABLES,
    PartitionError,
    Partitions,
    as_dict,
    month_add,
    open_partitions,
    retention_months,
    this_month,
)


class Command(BaseCommand):
    help = (
        "Monthly partitions of the large history tables: `status`, `create` ahead, and "
        "`archive` (detach, export to storage, verify, drop) those past retention. "
        "Destructive steps are a dry run unless --execute is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--table", choices=PARTITIONED_TABLES, default="completions")
        parser.add_argument("--json", action="store_true", help="Machine-readable output.")
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="List partitions with sizes; warn about the default one.")
        create = sub.add_parser("create", help="Create missing monthly partitions ahead.")
        create.add_argument("--months-ahead", type=whole_number(0), default=6)
        create.add_argument("--from", dest="first", type=month, help="First month (YYYY-MM).")
        create.add_argument("--dry-run", action="store_true")
        archive = sub.add_parser("archive", help="Archive partitions older than the retention.")
        archive.add_argument(
            "--keep-months",
            type=whole_number(1),
            default=None,
            help="Months to keep (default PARTITION_RETENTION_MONTHS, 24).",
        )
        archive.add_argument(
            "--execute", action="store_true", help="Really detach, export, verify and drop."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            parts = open_partitions(options["table"])
        except (PartitionError, BackupError) as err:
            raise CommandError(str(err)) from err
        except psycopg.OperationalError as err:
            # The owner role's connection (source_from_settings), told as every command does.
            owner = getattr(settings, "MIGRATION_DATABASE", None) or settings.DATABASES["default"]
            raise unavailable("partitions", owner, err) from err
        with parts.conn:
            try:
                getattr(self, f"_{options['action']}")(parts, options)
            except PartitionError as err:
                raise CommandError(str(err)) from err

    def _emit(self, options: dict[str, Any], data: Any, lines: list[str]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(data, default=str))
        else:
            for line in lines:
                self.stdout.write(line)

    def _status(self, parts: Partitions, options: dict[str, Any]) -> None:
        items = parts.list()
        default_rows = parts.default_rows()
        ahead = [p.month for p in items if p.month and p.month >= this_month()]
        lines = [f"{'partition':<28} {'month':<8} {'attached':<9} {'rows':>12} {'size':>10}"]
        for p in items:
            month = f"{p.month:%Y-%m}" if p.month else "DEFAULT"
            rows = f"{p.rows:,}" if p.rows_exact else f"~{p.rows:,}"
            lines.append(
                f"{p.name:<28} {month:<8} {'yes' if p.attached else 'NO':<9} "
                f"{rows:>12} {p.size:>10}"
            )
        lines.append(f"months ahead covered: {len(ahead)}")
        if not all(p.rows_exact for p in items):
            lines.append("~N: estimated from the table statistics (large partitions)")
        if default_rows:
            lines.append(
                f"WARNING: the DEFAULT partition holds {default_rows} rows: create the "
                "missing months (partitions create --from YYYY-MM) and move the rows"
            )
        self._emit(
            options,
            {
                "partitions": [as_dict(p) for p in items],
                "default_rows": default_rows,
                "months_ahead": len(ahead),
            },
            lines,
        )

    def _create(self, parts: Partitions, options: dict[str, Any]) -> None:
        first = options["first"] or this_month()
        last = month_add(this_month(), options["months_ahead"])
        if first > last:
            raise CommandError(f"--from {first:%Y-%m} is after the last month {last:%Y-%m}")
        steps = parts.create(first, last, execute=not options["dry_run"])
        made = [s for s in steps if s.action == "create"]
        verb = "would create" if options["dry_run"] else "created"
        lines = [f"{s.partition}: {verb}" for s in made]
        lines.append(f"{len(made)} partitions {verb}, {len(steps) - len(made)} already there")
        self._emit(options, {"steps": [as_dict(s) for s in steps]}, lines)

    def _archive(self, parts: Partitions, options: dict[str, Any]) -> None:
        keep = options["keep_months"] if options["keep_months"] is not None else retention_months()
        if keep < 1:
            raise CommandError("--keep-months must be at least 1 (the current month stays)")
        execute = options["execute"]
        show = not options["json"] and options["verbosity"] >= 1
        due = parts.due(keep)
        steps = []
        for partition in due:
            steps += parts.archive(
                partition,
                execute=execute,
                progress=(lambda msg: sys.stderr.write(msg + "\n")) if show else None,
            )
        lines = [
            f"{s.partition}: {s.action} — {s.detail}{'' if s.done else ' (dry run)'}" for s in steps
        ]
        if not due:
            lines.append(f"nothing to archive: no partition is older than {keep} months")
        elif not execute:
            lines.append(
                f"DRY RUN: {len(due)} partitions are past the {keep}-month retention; "
                "run again with --execute to archive them"
            )
        else:
            lines.append(f"archived {len(due)} partitions")
        self._emit(
            options,
            {"execute": execute, "keep_months": keep, "steps": [as_dict(s) for s in steps]},
            lines,
        )
