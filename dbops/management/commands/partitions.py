"""`manage.py partitions`: monthly partitions of the history tables: ahead, archived, restored."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from datetime import date
from typing import Any

from django.core.management.base import CommandError, CommandParser

from dbops.partitions import PartitionError, archive, restore
from dbops.partitions.store import IDENTIFIER, archive_storage
from dbops.partitions.tables import (
    Partitions,
    as_dict,
    default_table,
    month_add,
    open_partitions,
    parse_month,
    partitioned_tables,
    retention_months,
    this_month,
)
from sqlmigrations.management.arguments import whole_number
from sqlmigrations.management.base import DatabaseCommand

MAX_MONTHS_AHEAD = 60
MAX_KEEP_MONTHS = 1200


def _month(text: str) -> date:
    try:
        return parse_month(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _past_month(text: str) -> date:
    first = _month(text)
    if first >= this_month():
        raise argparse.ArgumentTypeError(
            f"{text} is not over yet: only a past month has an archive (UTC)"
        )
    return first


def _table_name(text: str) -> str:
    if not IDENTIFIER.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a plain table name (lower-case letters, digits and _, at most 63)"
        )
    return text


class Command(DatabaseCommand):
    help = (
        "Monthly partitions of the large history tables: `status`, `create` ahead, "
        "`archive` those past retention (detach, export to storage, verify, drop; a dry run "
        "unless --execute) and `restore` an archived month."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--table", choices=partitioned_tables(), default=default_table())
        parser.add_argument("--json", action="store_true", help="Machine-readable output.")
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("status", help="List partitions with sizes; warn about the default one.")
        create = sub.add_parser("create", help="Create missing monthly partitions ahead.")
        create.add_argument("--months-ahead", type=whole_number(0, MAX_MONTHS_AHEAD), default=6)
        create.add_argument("--from", dest="first", type=_month, help="First month (YYYY-MM).")
        create.add_argument("--dry-run", action="store_true")
        arch = sub.add_parser("archive", help="Archive partitions older than the retention.")
        arch.add_argument(
            "--month", type=_past_month, help="Archive this month only (YYYY-MM, past retention)."
        )
        arch.add_argument(
            "--keep-months",
            type=whole_number(1, MAX_KEEP_MONTHS),
            default=None,
            help="Months to keep (default PARTITION_RETENTION_MONTHS, 24).",
        )
        arch.add_argument(
            "--execute", action="store_true", help="Really detach, export, verify and drop."
        )
        back = sub.add_parser("restore", help="Load an archived month back, checked.")
        back.add_argument("month", type=_past_month, help="The month (YYYY-MM).")
        back.add_argument(
            "--into",
            type=_table_name,
            help="A table of its own (created when absent) instead of the month's partition.",
        )
        back.add_argument(
            "--dry-run", action="store_true", help="Check the archive and the target only."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            parts = open_partitions(options["table"])
        except PartitionError as err:
            raise CommandError(str(err)) from err
        changes = (options["action"] == "archive" and options["execute"]) or (
            options["action"] == "restore" and not options["dry_run"]
        )
        with parts.conn:
            try:
                with parts.exclusive() if changes else nullcontext():
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
        if any(not p.attached for p in items):
            lines.append(
                "attached NO: left by an interrupted archive, rows intact; "
                "`partitions archive --execute` finishes it"
            )
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
        done = "to create" if options["dry_run"] else "created"
        lines.append(f"{len(made)} partition(s) {done}, {len(steps) - len(made)} already there")
        self._emit(options, {"steps": [as_dict(s) for s in steps]}, lines)

    def _archive(self, parts: Partitions, options: dict[str, Any]) -> None:
        show = not options["json"] and options["verbosity"] >= 1
        result = archive.archive_months(
            parts,
            archive_storage(),
            options["keep_months"] or retention_months(),
            options["month"],
            execute=options["execute"],
            progress=(lambda msg: sys.stderr.write(msg + "\n")) if show else None,
        )
        keep, plans = result.keep_months, result.plans
        lines = [
            f"{s.partition}: {s.action} — {s.detail}{'' if s.done else ' (dry run)'}"
            for s in result.steps
        ]
        if not plans:
            lines.append(f"nothing to archive: no partition is older than {keep} months")
        elif not result.execute:
            lines.append(
                f"DRY RUN: {len(plans)} partition(s) ({result.rows} rows) are past the "
                f"{keep}-month retention; run again with --execute to archive them"
            )
        else:
            where = plans[0].archive.location
            lines.append(
                f"Done! Archived {len(plans)} partition(s) ({result.rows} rows) to {where}."
            )
        self._emit(options, result.as_json(), lines)

    def _restore(self, parts: Partitions, options: dict[str, Any]) -> None:
        storage = archive_storage()
        dry = options["dry_run"]
        month = options["month"]
        plan = restore.plan(parts, storage, month, options["into"], read_back=dry)
        steps = plan.steps if dry else restore.run(parts, storage, plan)
        lines = [
            f"{s.partition}: {s.action} — {s.detail}{' (dry run)' if dry else ''}" for s in steps
        ]
        if plan.archive.unlisted:
            lines.append(
                f"left alone: {len(plan.archive.unlisted)} object(s) of interrupted runs that "
                f"no manifest lists ({', '.join(plan.archive.unlisted)})"
            )
        count = f"{plan.rows} rows of {month:%Y-%m} from {len(plan.parts)} part(s)"
        if dry:
            lines.append(
                f"DRY RUN: would restore {count} into {plan.target} ({plan.mode}); every part "
                "matches the manifest"
            )
        else:
            lines.append(f"Done! Restored {count} into {plan.target}, as the manifest says.")
        self._emit(
            options,
            {
                "dry_run": dry,
                "month": f"{month:%Y-%m}",
                "target": plan.target,
                "mode": plan.mode,
                "rows": plan.rows,
                "parts": [p.to_json() for p in plan.parts],
                "unlisted": plan.archive.unlisted,
                "steps": [as_dict(s) for s in steps],
            },
            lines,
        )
