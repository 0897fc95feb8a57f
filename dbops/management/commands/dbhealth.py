"""`dbhealth`: the database-health checks as a table, JSON or CloudWatch metrics."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError

from dbops import health
from dbops.connections.config import database_name
from dbops.health import cloudwatch, history
from sqlmigrations.dberrors import database_error_line
from sqlmigrations.management.base import DatabaseCommand
from sqlmigrations.redact import redact

EXIT = {"warning": 1, "critical": 2}


class Command(DatabaseCommand):
    help = (
        "Check the database's health (connections, long-running and blocked queries, cache, "
        "indexes, sequences, vacuum, slow queries, standbys, replication slots, the read "
        "replica). Exit status with --fail-on: 1 warning, 2 critical (or the database "
        "unreachable). --record also stores the figures for the health page's history."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        self._parser = super().create_parser(prog_name, subcommand, **kwargs)
        return self._parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON for machines")
        parser.add_argument(
            "--fail-on",
            choices=["warning", "critical"],
            help="exit non-zero when a check reaches this level (1 warning, 2 critical)",
        )
        parser.add_argument(
            "--check",
            action="append",
            choices=list(health.CHECKS),
            help="run only this check (repeatable)",
        )
        parser.add_argument(
            "--database",
            default="default",
            choices=list(settings.DATABASES),
            help="connection alias to check (e.g. the reporting replica)",
        )
        parser.add_argument(
            "--cloudwatch",
            action="store_true",
            help="publish the figures with CloudWatch put_metric_data",
        )
        parser.add_argument(
            "--namespace",
            default=cloudwatch.DEFAULT_NAMESPACE,
            help="CloudWatch namespace (default %(default)s)",
        )
        parser.add_argument(
            "--record",
            action="store_true",
            help="store the figures as a snapshot for the health page's history (for cron); "
            "deletes snapshots older than DB_HEALTH_HISTORY_DAYS",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"]
        if options["record"] and (options["check"] or alias != "default"):
            # The history is the primary's, with every figure: a partial snapshot would
            # chart as a drop to zero.
            self._parser.error("--record does not go with --check or --database")
        database = database_name(alias)
        try:
            results = health.run_checks(using=alias, names=options["check"])
        except health.CANNOT_CHECK as err:
            self._unreachable(health.unreachable(alias, err), database, options)
        worst = health.worst_status(results)
        recording, refused = self._record(alias, results) if options["record"] else (None, "")
        if options["json"]:
            self._json(database, worst, results, None, recording, options["record"])
        elif recording:
            self.stdout.write(self._recorded_line(recording))
        else:
            self._table(results)
        # A snapshot that could not be stored stops neither the metrics nor the alert.
        if options["cloudwatch"]:
            self._publish(results, options["namespace"], database)
        if not options["json"] and not recording:
            counts = {
                s: sum(r.status == s for r in results)
                for s in ("ok", "info", "warning", "critical")
            }
            self.stdout.write(
                f"{len(results)} checks: "
                + ", ".join(f"{n} {s}" for s, n in counts.items())
                + f". Overall: {worst}."
            )
        level = options["fail_on"]
        alert = level and health.SEVERITY[worst] >= health.SEVERITY[level]
        if refused:
            raise CommandError(refused, returncode=EXIT[worst] if alert else 1)
        if alert:
            sys.exit(EXIT[worst])

    def _unreachable(
        self, result: health.CheckResult, database: str, options: dict[str, Any]
    ) -> NoReturn:
        """Report a database that cannot be reached or logged into: critical, exit 2."""
        if options["json"]:
            self._json(database, health.CRITICAL, [result], error=result.summary)
        if options["cloudwatch"]:
            try:
                self._publish([result], options["namespace"], database)
            except CommandError as err:
                self.stderr.write(str(err))
        # Critical whatever --fail-on says: the cron job alerts on exit 2.
        raise CommandError(result.summary, returncode=EXIT[health.CRITICAL])

    def _record(
        self, alias: str, results: list[health.CheckResult]
    ) -> tuple[history.Recording | None, str]:
        """Store a snapshot; return it, or why it could not be stored (rolled back)."""
        try:
            return history.record(using=alias, results=results), ""
        except history.HistoryError as err:
            return None, str(err)
        except DatabaseError as err:
            return None, database_error_line(err, "dbhealth --record", alias)

    def _recorded_line(self, recording: history.Recording) -> str:
        snapshot = recording.snapshot
        statements = f"{recording.statements} statement{'' if recording.statements == 1 else 's'}"
        if recording.note:
            statements += f" ({recording.note})"
        return (
            f"Recorded health snapshot {snapshot.pk} at {snapshot.taken_at:%Y-%m-%d %H:%M:%S} "
            f"UTC: status {history.STATUS_NAMES[snapshot.status]}, {statements}; pruned "
            f"{recording.pruned} snapshot{'' if recording.pruned == 1 else 's'} older than "
            f"{history.history_days()} days."
        )

    def _json(
        self,
        database: str,
        status: str,
        results: list[health.CheckResult],
        error: str | None,
        recording: history.Recording | None = None,
        record: bool = False,
    ) -> None:
        payload: dict[str, Any] = {
            "database": database,
            "environment": settings.DJANGO_ENV,
            "status": status,
            "checks": [r.as_dict() for r in results],
            "error": error,
        }
        if recording is None and record:
            payload["recorded"] = None  # the reason is on stderr
        elif recording:
            payload["recorded"] = {
                "snapshot": recording.snapshot.pk,
                "taken_at": recording.snapshot.taken_at.isoformat(),
                "status": history.STATUS_NAMES[recording.snapshot.status],
                "statements": recording.statements,
                "note": recording.note or None,
                "pruned": recording.pruned,
                "retention_days": history.history_days(),
            }
        self.stdout.write(json.dumps(payload, indent=2, default=str))

    def _table(self, results: list[health.CheckResult]) -> None:
        header = ("check", "status", "value", "threshold")
        lines = [(r.name, r.status.upper(), r.value_text(), r.threshold_text()) for r in results]
        widths = [max(len(row[i]) for row in [header, *lines]) for i in range(4)]
        style = {"WARNING": self.style.WARNING, "CRITICAL": self.style.ERROR}
        self.stdout.write(
            "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
        )
        self.stdout.write("  ".join("-" * w for w in widths))
        for row in lines:
            text = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            self.stdout.write(style.get(row[1], str)(text))
        for r in results:
            if r.status in ("warning", "critical") or (r.status == "info" and not r.rows):
                self.stdout.write(f"\n{r.title} ({r.status}): {r.summary}")
                for row in r.rows[:5]:
                    self.stdout.write("  " + " | ".join(health.fmt(c) for c in row))
                if r.hint:
                    self.stdout.write(f"  Hint: {r.hint}")
        self.stdout.write("")

    def _publish(self, results: list[health.CheckResult], namespace: str, database: str) -> None:
        dimensions = {"Environment": settings.DJANGO_ENV, "Database": database}
        try:
            sent = cloudwatch.publish(results, namespace=namespace, dimensions=dimensions)
        except (BotoCoreError, ClientError) as err:
            raise CommandError(
                f"cannot publish to CloudWatch: {redact(str(err))}; check AWS_REGION and the "
                "credentials (the role needs cloudwatch:PutMetricData)."
            ) from err
        self.stderr.write(f"Published {sent} metrics to CloudWatch namespace {namespace}.")
