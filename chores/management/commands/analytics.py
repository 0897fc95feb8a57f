"""`manage.py analytics refresh|status`: the usage rollups (V12) and where they stand."""

from __future__ import annotations

import json
import re
import time
from argparse import ArgumentTypeError
from datetime import date, timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import connection
from django.utils import timezone

from chores.analytics.refresh import DayDone, RefreshError, RefreshResult, refresh
from dbops.connections.errors import connect_or_explain
from sqlmigrations.management.base import DatabaseCommand

PROGRESS_DAYS = 30  # a progress line every this many days, or every PROGRESS_SECONDS
PROGRESS_SECONDS = 5.0
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
TABLES = ("household_daily_stats", "member_daily_stats", "service_daily_stats")


def day(text: str) -> date:
    """Parse YYYY-MM-DD (a usage error otherwise)."""
    try:
        if not _DAY.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ArgumentTypeError(
            f"{text!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-30"
        ) from None


class Command(DatabaseCommand):
    help = (
        "Usage analytics rollups: `refresh` rewrites the days changed since the last run (one "
        "transaction per day: an interrupted run loses nothing and the next one continues); "
        "`status` shows the watermark, the last day refreshed in full and the rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("refresh", help="Rewrite the days changed since the last refresh.")
        self._refresh_parser = run
        which = run.add_mutually_exclusive_group()
        which.add_argument("--since", type=day, help="Also rewrite every day from this date.")
        which.add_argument(
            "--full", action="store_true", help="Rewrite every day from the first data."
        )
        run.add_argument("--json", action="store_true", help="Machine-readable output.")
        status = sub.add_parser("status", help="Watermark, last day refreshed in full, rows.")
        status.add_argument("--json", action="store_true", help="Machine-readable output.")

    def handle(self, *args: Any, **options: Any) -> None:
        since = options.get("since")
        if since is not None and since > timezone.now().date() + timedelta(days=1):
            # Every time zone's today is at most a day after UTC's: a later date has no data.
            self._refresh_parser.error(
                f"argument --since: {since} is in the future: give a past date (YYYY-MM-DD)"
            )
        connect_or_explain()
        if options["action"] == "status":
            self._status(options)
            return
        self._last_line = time.monotonic()
        try:
            result = refresh(since=options["since"], full=options["full"], progress=self._progress)
        except RefreshError as err:
            raise CommandError(str(err)) from err
        if options["json"]:
            self.stdout.write(json.dumps(self._payload(result)))
            return
        if result.replica_note:
            self.stderr.write(f"Note: {result.replica_note}.")
        days = f"{result.days[0]}..{result.days[-1]}" if result.days else "none"
        self.stdout.write(
            f"Done! Refreshed {len(result.days)} day{'' if len(result.days) == 1 else 's'} "
            f"({days}; {result.skipped} up to date), "
            f"{result.rows:,} row{'' if result.rows == 1 else 's'}, in {result.seconds:.1f} s, "
            f"reading {result.read_from}; "
            f"watermark {result.watermark:%Y-%m-%d %H:%M:%S} UTC, through {result.through_day}."
        )

    def _progress(self, done: DayDone) -> None:
        now = time.monotonic()
        if done.index == done.total or (
            done.index % PROGRESS_DAYS and now - self._last_line < PROGRESS_SECONDS
        ):
            return
        self._last_line = now
        self.stderr.write(
            f"analytics refresh: {done.day} done ({done.index}/{done.total} days, "
            f"{done.rows:,} row{'' if done.rows == 1 else 's'} in {done.seconds:.2f} s)"
        )

    @staticmethod
    def _payload(result: RefreshResult) -> dict[str, Any]:
        return {
            "days": len(result.days),
            "first_day": str(result.days[0]) if result.days else None,
            "last_day": str(result.days[-1]) if result.days else None,
            "skipped": result.skipped,
            "rows": result.rows,
            "seconds": round(result.seconds, 3),
            "read_from": result.read_from,
            "replica_note": result.replica_note or None,
            "watermark": result.watermark.isoformat() if result.watermark else None,
            "through_day": str(result.through_day) if result.through_day else None,
        }

    def _status(self, options: dict[str, Any]) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT watermark, through_day, updated_at FROM analytics_refresh_state"
                " WHERE rollup = 'daily'"
            )
            watermark, through, updated = cursor.fetchone() or (None, None, None)
            cursor.execute("SELECT count(*), min(day), max(day) FROM service_daily_stats")
            days, first, last = cursor.fetchone()
            # Estimates: an exact count of the per-member table reads millions of rows.
            cursor.execute(
                "SELECT relname, reltuples::bigint FROM pg_class"
                " WHERE relname = ANY(%s) AND relkind = 'r'",
                [list(TABLES)],
            )
            estimates = dict(cursor.fetchall())
            for table in TABLES:
                if estimates.get(table, -1) < 0:  # never analysed: small enough to count
                    cursor.execute(f"SELECT count(*) FROM {table}")
                    estimates[table] = cursor.fetchone()[0]
        estimates["service_daily_stats"] = days
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "watermark": watermark.isoformat() if watermark else None,
                        "through_day": str(through) if through else None,
                        "updated_at": updated.isoformat() if updated else None,
                        "first_day": str(first) if first else None,
                        "last_day": str(last) if last else None,
                        "rows": {table: estimates.get(table, 0) for table in TABLES},
                    }
                )
            )
            return
        if watermark is None and through is None:
            self.stdout.write("Never refreshed: run `manage.py analytics refresh`.")
        else:
            self.stdout.write(
                f"Watermark {watermark:%Y-%m-%d %H:%M:%S} UTC, through {through}, "
                f"last change {updated:%Y-%m-%d %H:%M:%S} UTC."
                if watermark
                else f"An interrupted first run: through {through}; run `analytics refresh`."
            )
        self.stdout.write(f"Days {first or '-'}..{last or '-'}.")
        for table in TABLES:
            prefix = "" if table == "service_daily_stats" else "~"
            self.stdout.write(f"{table:<24} {prefix}{estimates.get(table, 0):,} rows")
