"""`manage.py cognitosync`: create, update and deactivate profiles from the Cognito pool."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from accounts.cognito import CognitoSyncError, cognito_client
from accounts.sync import BATCH_SIZE, DEFAULT_LIMIT_PERCENT, SyncSummary, sync
from dbops.connections.errors import connect_or_explain
from sqlmigrations.management.arguments import whole_number
from sqlmigrations.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Sync user profiles from the Cognito user pool: create or update them by sub "
        "(email, verified flag, name) and deactivate those whose Cognito user is gone or "
        "disabled. Refuses to deactivate more than COGNITO_DEACTIVATION_LIMIT_PERCENT of "
        "the active profiles. Safe to interrupt and run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user-pool-id",
            default=getattr(settings, "COGNITO_USER_POOL_ID", "")
            or os.environ.get("COGNITO_USER_POOL_ID", ""),
            help="The pool to read (default: COGNITO_USER_POOL_ID).",
        )
        parser.add_argument("--region", default=None, help="AWS region (default: AWS_REGION).")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Report what the run would do, refusals included; change nothing.",
        )
        parser.add_argument(
            "--page-size", type=whole_number(1, 60), default=60, help="Users per request (1-60)."
        )
        parser.add_argument(
            "--batch-size",
            type=whole_number(1),
            default=BATCH_SIZE,
            help=f"Profiles written per transaction (default {BATCH_SIZE}).",
        )
        parser.add_argument(
            "--allow-mass-deactivation",
            action="store_true",
            help="Deactivate however many profiles are gone from the pool (see the limit).",
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        pool_id = options["user_pool_id"]
        if not pool_id:
            raise CommandError(
                "no user pool: pass --user-pool-id or set COGNITO_USER_POOL_ID "
                "(e.g. eu-west-1_AbCdEf123)"
            )
        batch_size = options["batch_size"]
        region = options["region"] or getattr(settings, "AWS_REGION", "") or None
        show_progress = options["verbosity"] >= 1 and not options["json"]

        def progress(page: int, seen: int) -> None:
            if show_progress:
                sys.stderr.write(f"\rpage {page}: {seen} users read")
                sys.stderr.flush()

        connect_or_explain()
        try:
            summary = sync(
                cognito_client(region),
                pool_id,
                dry_run=options["dry_run"],
                page_size=options["page_size"],
                batch_size=batch_size,
                deactivation_limit_percent=getattr(
                    settings, "COGNITO_DEACTIVATION_LIMIT_PERCENT", DEFAULT_LIMIT_PERCENT
                ),
                allow_mass_deactivation=options["allow_mass_deactivation"],
                progress=progress,
            )
        except CognitoSyncError as err:
            if show_progress:
                sys.stderr.write("\n")
            raise CommandError(str(err)) from err
        if show_progress and summary.seen:
            sys.stderr.write("\n")
        self.report(summary, options)
        if summary.failed:
            raise CommandError(
                f"{summary.failed} Cognito users could not be synced (listed above); "
                "fix them in Cognito or the admin and run again"
            )

    def report(self, summary: SyncSummary, options: dict[str, Any]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps({**summary.as_dict(), "dry_run": options["dry_run"]}))
            return
        prefix = "DRY RUN, nothing changed. Would have: " if options["dry_run"] else ""
        self.stdout.write(
            f"{prefix}Read {summary.seen} Cognito users: {summary.created} created, "
            f"{summary.updated} updated, {summary.unchanged} unchanged, "
            f"{summary.deactivated} deactivated, {summary.skipped_deleted} skipped "
            f"(deleted here), {summary.skipped_no_email} skipped (no email), "
            f"{len(summary.conflicts)} conflicts, {len(summary.invalid)} invalid."
        )
        if summary.no_deactivation_reason:
            self.stderr.write(f"  deactivated nobody: {summary.no_deactivation_reason}")
        for conflict in summary.conflicts:
            self.stderr.write(f"  conflict: {conflict}")
        for invalid in summary.invalid:
            self.stderr.write(f"  invalid: {invalid}")
