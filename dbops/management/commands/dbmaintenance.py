"""`manage.py dbmaintenance`: VACUUM, REINDEX and housekeeping in a window, within a budget.

A dry run (the default) prints the plan. `--execute` runs it, one run at a time, only
inside the window (`--window` or MAINTENANCE_WINDOW) unless `--now`, starting no step the
time left does not cover (docs/operations.md, "Maintenance windows").
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from dbops.connections.config import connect
from dbops.maintenance import MaintenanceError
from dbops.maintenance.plan import DONE, FAILED, Plan, make_plan
from dbops.maintenance.run import APPLICATION_NAME, exclusive, execute
from dbops.maintenance.window import (
    Window,
    WindowError,
    budget_text,
    parse_budget,
    parse_window,
)
from sqlmigrations.management.base import DatabaseCommand


def _window(text: str) -> Window:
    try:
        return parse_window(text)
    except WindowError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _budget(text: str) -> int:
    try:
        return parse_budget(text)
    except WindowError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class Command(DatabaseCommand):
    help = (
        "Database maintenance in a window: VACUUM (ANALYZE) tables over the dead-row "
        "thresholds, REINDEX INDEX CONCURRENTLY bloated indexes, partitions ahead, the "
        "analytics refresh, backups past retention; most valuable first, within --budget. "
        "A dry run unless --execute."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        self._parser = parser
        parser.add_argument(
            "--window",
            type=_window,
            help='When it may run, e.g. "Sun 03:00-05:00 UTC" (default MAINTENANCE_WINDOW).',
        )
        parser.add_argument(
            "--budget",
            type=_budget,
            help="Start no step after this much time, e.g. 30m, 1h30m, 90s "
            "(default MAINTENANCE_BUDGET, 30m).",
        )
        parser.add_argument("--execute", action="store_true", help="Run the plan.")
        parser.add_argument(
            "--now", action="store_true", help="With --execute: run outside the window too."
        )
        parser.add_argument("--json", action="store_true", help="Machine-readable output.")

    def handle(self, *args: Any, **options: Any) -> None:
        began = time.monotonic()
        now = datetime.now(UTC)
        window: Window | None = options["window"] or getattr(settings, "MAINTENANCE_WINDOW", None)
        budget = options["budget"] or getattr(settings, "MAINTENANCE_BUDGET_SECONDS", 1800)
        run, anytime = options["execute"], options["now"]
        if anytime and not run:
            self._parser.error("--now goes with --execute: a dry run may run at any time")
        if run and window is None and not anytime:
            self._parser.error(
                'argument --execute: no window: give --window "Sun 03:00-05:00 UTC" (or set '
                "MAINTENANCE_WINDOW), or --now to run at once"
            )
        inside = window is None or window.contains(now)
        if run and not anytime and not inside:
            raise CommandError(
                f"outside the maintenance window {window} (now {now:%a %H:%M} UTC): nothing "
                "was done; run it in the window, or add --now"
            )
        conn = connect("owner", application_name=APPLICATION_NAME)
        with conn:
            # Maintenance statements run long on purpose; a lock wait has a bound.
            conn.execute("SET statement_timeout = 0")
            lock_ms = int(getattr(settings, "MAINTENANCE_LOCK_TIMEOUT_MS", 30000))
            conn.execute(f"SET lock_timeout = {lock_ms}")
            try:
                if run:
                    with exclusive(conn):
                        plan = make_plan(conn, now)
                        execute(
                            plan, conn, budget=budget, began=began, window=window,
                            anytime=anytime,
                        )  # fmt: skip
                else:
                    plan = make_plan(conn, now)
            except MaintenanceError as err:
                raise CommandError(str(err)) from err
        self._report(plan, options, window, inside, budget, began)
        failed = [s for s in plan.steps if s.status == FAILED]
        if failed:
            raise CommandError(
                f"{len(failed)} maintenance step(s) failed: "
                + "; ".join(f"{s.kind} {s.target}: {s.detail}" for s in failed)
            )

    def _report(
        self,
        plan: Plan,
        options: dict[str, Any],
        window: Window | None,
        inside: bool,
        budget: int,
        began: float,
    ) -> None:
        run = options["execute"]
        seconds = time.monotonic() - began
        counts: dict[str, int] = {}
        for step in plan.steps:
            counts[step.status] = counts.get(step.status, 0) + 1
        if options["json"]:
            data = {
                "dry_run": not run,
                "window": str(window) if window else None,
                "inside_window": inside,
                "now": options["now"],
                "budget_seconds": budget,
                "seconds": round(seconds, 3),
                "counts": counts,
                "steps": [s.as_json() for s in plan.steps],
                "notes": plan.notes,
            }
            self.stdout.write(json.dumps(data, indent=2))
            return
        where = f"window {window}" if window else "no window"
        if window and not inside:
            where += " (outside it now)"
        self.stdout.write(
            f"Maintenance {'run' if run else 'plan (dry run)'}: {where}, "
            f"budget {budget_text(budget)}"
        )
        for n, s in enumerate(plan.steps, 1):
            took = f" in {s.duration:.1f} s" if s.duration is not None else ""
            self.stdout.write(
                f"{n:>3}. {s.statement} -- {s.reason}; estimated {s.estimate:.0f} s: "
                f"{s.status}{took}" + (f" ({s.detail})" if s.detail else "")
            )
        for note in plan.notes:
            self.stdout.write(f"Note: {note}")
        total = sum(s.estimate for s in plan.steps)
        if not plan.steps:
            self.stdout.write("Nothing to do: no table or index is over the thresholds.")
        elif not run:
            self.stdout.write(
                f"DRY RUN: {len(plan.steps)} step(s), estimated {total:.0f} s in all; run "
                "again with --execute in the window (or --execute --now)."
            )
        else:
            summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            self.stdout.write(
                f"{'Done!' if counts.get(DONE) == len(plan.steps) else 'Finished:'} "
                f"{summary}, in {seconds:.1f} s."
            )
