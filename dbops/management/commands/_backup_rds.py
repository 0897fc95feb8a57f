"""`backup rds-pitr` and `backup rds-replication`: the RDS actions of `manage.py backup`.

A mixin of backup's Command (the file name starts with "_": Django lists no command for
it). The AWS calls and checks are dbops.backups.rds; this is the arguments and the report.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from dbops.backups import rds
from dbops.backups.interrupts import terminate_as_interrupt
from sqlmigrations.management.arguments import whole_number

RDS_ACTIONS = ("rds-pitr", "rds-replication")


def rds_time(text: str) -> datetime:
    """argparse type of `rds-pitr --to`: a time with its zone (a naive one: exit 2)."""
    try:
        return rds.aware_time(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def rds_identifier(text: str) -> str:
    """argparse type of `--target-instance`: RDS's identifier rule."""
    try:
        return rds.instance_identifier(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class RdsActions:
    """The RDS subcommands; mixed into backup's Command (stdout, stderr, emit)."""

    stdout: Any
    stderr: Any

    def add_rds_arguments(self, sub: Any) -> None:
        drill = sub.add_parser(
            "rds-pitr",
            help="Restore drill on RDS: restore RDS_INSTANCE_ID to a moment into a new "
            "instance, check it (migrations, rows, application role), delete it.",
        )
        moment = drill.add_mutually_exclusive_group(required=True)
        moment.add_argument(
            "--to",
            type=rds_time,
            metavar="TIME",
            help='A moment with its zone, e.g. "2026-12-06T10:15:00+00:00".',
        )
        moment.add_argument("--latest", action="store_true", help="RDS's latest restorable time.")
        drill.add_argument(
            "--target-instance",
            required=True,
            type=rds_identifier,
            metavar="NAME",
            help="Identifier of the new instance (refused if it exists).",
        )
        drill.add_argument(
            "--keep", action="store_true", help="Keep the instance after the checks."
        )
        drill.add_argument(
            "--timeout",
            type=whole_number(1),
            default=7200,
            metavar="S",
            help="Seconds to wait for the instance to be available (7200).",
        )
        drill.add_argument("--json", action="store_true", help="Machine-readable output.")
        replication = sub.add_parser(
            "rds-replication",
            help="Replication of the RDS instance's automated backups to "
            "BACKUP_REPLICA_REGION: status, start, stop.",
        )
        replication.add_argument("operation", choices=("status", "start", "stop"))
        replication.add_argument(
            "--retention",
            type=whole_number(1, 35),
            metavar="DAYS",
            help="With start: days the second region keeps (default: the source's).",
        )
        replication.add_argument("--json", action="store_true", help="Machine-readable output.")

    def do_rds_pitr(self, options: dict[str, Any]) -> None:
        rds.require_instance_id(settings.RDS_INSTANCE_ID)  # the first setting to name
        client = rds.rds_client(settings.AWS_REGION)
        drill = rds.RestoreDrill(
            client,
            settings.RDS_INSTANCE_ID,
            options["target_instance"],
            options["to"],
            keep=options["keep"],
            timeout=options["timeout"],
            reach=rds.endpoint_conninfo,
        )
        try:
            with terminate_as_interrupt():
                result = drill.run()
        except KeyboardInterrupt:
            raise CommandError(f"Interrupted. {self.instance_fate(drill.result)}") from None
        if options["json"]:
            self.stdout.write(json.dumps(result.as_json(), indent=2, default=str))
        else:
            self.stdout.write("\n".join(self.drill_lines(result)))
        if not result.ok:
            raise CommandError(f"Restore drill FAILED: {self.failure(result)}")
        if not options["json"]:
            v = result.verification
            assert v is not None
            rows = sum(t.rows or 0 for t in v.tables)
            self.stdout.write(
                f"Done! Restore drill passed: {result.source} at {self.moment(result)} "
                f"restored into {result.target}, {v.migrations} migrations valid, "
                f"{len(v.tables)} tables ({rows} rows) readable by the application role. "
                f"{self.instance_fate(result)}"
            )

    @staticmethod
    def moment(result: rds.DrillResult) -> str:
        """The moment asked, and with --latest the latest restorable time it meant."""
        if result.restore_time == "latest" and result.restored_to:
            return f"latest ({result.restored_to})"
        return result.restore_time

    @staticmethod
    def instance_fate(result: rds.DrillResult) -> str:
        if not result.created:
            return "No instance was created."
        if result.kept:
            return (
                f"Instance {result.target} kept (--keep): delete it when done, e.g. `aws rds "
                f"delete-db-instance --db-instance-identifier {result.target} "
                "--skip-final-snapshot --delete-automated-backups`."
            )
        if result.deleted:
            return f"Instance {result.target} deleted (no final snapshot)."
        return result.cleanup_error or f"Instance {result.target} NOT deleted: delete it by hand."

    @staticmethod
    def failure(result: rds.DrillResult) -> str:
        reasons = [result.error] if result.error else []
        v = result.verification
        if v is not None:
            reasons += v.problems
            if v.unreadable:
                reasons.append(
                    f"the application role cannot read {len(v.unreadable)} table(s): "
                    f"{', '.join(v.unreadable)} (`manage.py dbroles check` on the source "
                    "says why)"
                )
        if result.cleanup_error:
            reasons.append(result.cleanup_error)
        text = "; ".join(r.rstrip(".") for r in reasons) or "no checks ran"
        fate = "" if result.cleanup_error else f" {RdsActions.instance_fate(result)}"
        return f"{text}.{fate}"

    @staticmethod
    def drill_lines(result: rds.DrillResult) -> list[str]:
        lines = [
            f"Restore drill: RDS instance {result.source} ({result.region}) at "
            f"{RdsActions.moment(result)} into {result.target}"
            + (f", endpoint {result.endpoint}" if result.endpoint else "")
        ]
        labels = {
            "restore_request": "restore requested",
            "wait_available": "instance available",
            "verify": "checks",
            "delete": "delete requested" if result.deleted else "delete attempted",
        }
        for step, seconds in result.steps.items():
            lines.append(f"  {labels.get(step, step):<20} {seconds:>9.1f}s")
        v = result.verification
        if v is None:
            return lines
        version = f"schema version {v.schema_version}" if v.schema_version else "no version"
        pending = f", {v.pending} newer file(s) not applied at that time" if v.pending else ""
        lines.append(
            f"Migrations: {v.migrations} validated ({version}{pending}), "
            + (f"{len(v.problems)} problem(s):" if v.problems else "no problems.")
        )
        lines += [f"  - {p}" for p in v.problems]
        if not v.tables:
            return lines
        width = max([len(t.table) for t in v.tables] + [5])
        lines.append(f"{'TABLE':<{width}} {'ROWS':>12}  APP CAN READ")
        for t in v.tables:
            rows = "-" if t.rows is None else str(t.rows)
            lines.append(f"{t.table:<{width}} {rows:>12}  {'yes' if t.app_can_read else 'NO'}")
        return lines

    def do_rds_replication(self, options: dict[str, Any]) -> None:
        rds.require_instance_id(settings.RDS_INSTANCE_ID)  # the first setting to name
        source_client = rds.rds_client(settings.AWS_REGION)
        region = rds.replica_region(
            str(source_client.meta.region_name), settings.BACKUP_REPLICA_REGION
        )
        replica_client = rds.rds_client(region)
        operation = options["operation"]
        source_id = settings.RDS_INSTANCE_ID
        answer: dict[str, Any] | None = None
        if operation == "status":
            status = rds.replication_status(source_client, replica_client, source_id)
        elif operation == "start":
            status, answer = rds.start_replication(
                source_client,
                replica_client,
                source_id,
                retention_days=options["retention"],
                kms_key_id=getattr(settings, "BACKUP_REPLICA_KMS_KEY_ID", ""),
            )
        else:
            status, answer = rds.stop_replication(source_client, replica_client, source_id)
        if options["json"]:
            data = {"operation": operation, **status.as_json()}
            if operation != "status":
                data["changed"] = answer is not None
                data["answer"] = answer
            self.stdout.write(json.dumps(data, indent=2, default=str))
            return
        self.stdout.write("\n".join(self.replication_lines(status)))
        where = f"{status.source}'s automated backups to {status.region}"
        if operation == "start":
            self.stdout.write(
                f"Replication of {where} runs already: nothing to do."
                if answer is None
                else f"Done! Started replicating {where} (status "
                f"{answer.get('Status', 'pending')}); `backup rds-replication status` shows "
                "when it is replicating."
            )
        elif operation == "stop":
            self.stdout.write(
                f"{where.capitalize()} are not replicated: nothing to stop."
                if answer is None
                else f"Done! Stopped replicating {where}; the copies there stay until their "
                "retention ends."
            )

    @staticmethod
    def replication_lines(status: rds.Replication) -> list[str]:
        data = status.as_json()
        lines = [
            f"RDS instance {status.source} ({status.source_region}): automated backups "
            f"replicated to {status.region}: {'yes' if status.replicating else 'no'}."
        ]
        for b in data["backups"]:
            lines.append(
                f"  {b['arn']}: {b['status']}, kept {b['retention_days']} days, restorable "
                f"{b['earliest'] or '?'} to {b['latest'] or '?'}"
                + (f", KMS key {b['kms_key_id']}" if b["kms_key_id"] else "")
            )
        listed = set(status.listed_on_source) - {b["arn"] for b in data["backups"]}
        lines += [f"  {arn}: listed on the source, not yet in {status.region}" for arn in listed]
        return lines
