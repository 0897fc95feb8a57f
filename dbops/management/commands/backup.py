"""Back up the database to storage, list, prune, restore and verify backups (docs/backups.md)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

from dbops.backups import BackupError
from dbops.backups.doctor import examine
from dbops.backups.dump import create_backup
from dbops.backups.names import check_env
from dbops.backups.progress import Progress, human_size
from dbops.backups.prune import execute_prune, plan_prune
from dbops.backups.replica import (
    ReplicaError,
    both_sides,
    check_copy,
    replica_storage,
    replicate,
    require_replica,
)
from dbops.backups.restore_plan import (
    HOW,
    check_stored_bytes,
    execute_restore,
    plan_restore,
    result_json,
)
from dbops.backups.signing import signed_backup
from dbops.backups.store import backup_storage, describe, scan, writer_alive
from dbops.backups.targets import check_database_name
from dbops.backups.verify import verify_backup
from dbops.connections.config import ConnInfo, conninfo
from dbops.management.commands._backup_rds import RDS_ACTIONS, RdsActions
from sqlmigrations.management.arguments import rate, whole_number
from sqlmigrations.management.base import DatabaseCommand
from sqlmigrations.redact import redact


def one_line(message: str) -> CommandError:
    """A CommandError on one line: pg_restore's and PostgreSQL's DETAIL lines joined."""
    return CommandError(" ".join(line.strip() for line in message.splitlines() if line.strip()))


def age(created: datetime, now: datetime) -> str:
    seconds = int((now - created).total_seconds())
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


def pitr_time(text: str) -> datetime:
    """argparse type of `pitr --to`: a time with its zone (a naive time is a usage error)."""
    import argparse

    from dbops.backups.pitr import parse_target

    try:
        return parse_target(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def owner_database() -> ConnInfo:
    """Return the project's database as the owner role, named for pg_stat_activity."""
    return conninfo("owner").named("choregarden-backup")


class Command(RdsActions, DatabaseCommand):
    help = "Back up the database to storage (pg_dump -Fc), list, prune, restore and verify."
    # A backup must not wait for, or be blocked by, the project's system checks (some of
    # which query the database): during an incident it has to run whatever they say.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = sub.add_parser("create", help="Dump the database to the backup storage.")
        create.add_argument(
            "--max-rate", type=rate, help="Limit the dump to this many bytes/s (e.g. 20M)."
        )
        create.add_argument(
            "--fingerprint",
            action="store_true",
            help="Also record every table's row count and hash, in the dump's own snapshot "
            "(for `verify` on a database that is being written to).",
        )
        listing = sub.add_parser("list", help="Complete backups of this environment, newest first.")
        listing.add_argument(
            "--replica",
            action="store_true",
            help="Also check each backup's copy in the replica (BACKUP_REPLICA_BUCKET or "
            "BACKUP_REPLICA_DIR): ok, missing or corrupt.",
        )
        copy = sub.add_parser(
            "replicate", help="Copy backups to the replica again (docs/backups.md)."
        )
        which = copy.add_mutually_exclusive_group(required=True)
        which.add_argument("name", nargs="?", help="A backup name from `backup list`, or `latest`.")
        which.add_argument(
            "--all-missing",
            action="store_true",
            help="Every complete backup whose replica copy is missing or does not match.",
        )
        copy.add_argument("--json", action="store_true", help="Machine-readable output.")
        prune = sub.add_parser("prune", help="Delete this environment's backups past retention.")
        prune.add_argument(
            "--keep-days",
            type=whole_number(1),
            help="Keep backups this many days (default: BACKUP_RETENTION_DAYS).",
        )
        prune.add_argument(
            "--keep-min",
            type=whole_number(1),
            help="Always keep this many newest good backups, however old "
            "(default: BACKUP_KEEP_MIN).",
        )
        prune.add_argument(
            "--dry-run", action="store_true", help="List exactly what prune would delete."
        )
        restore = sub.add_parser("restore", help="Restore a backup into a named database.")
        restore.add_argument("name", help="A backup name from `backup list`, or `latest`.")
        restore.add_argument("--database", required=True, help="Target database (created).")
        restore.add_argument(
            "--force",
            action="store_true",
            help="Replace a non-empty target (swapped out once the restore is verified).",
        )
        restore.add_argument(
            "--replace-live",
            action="store_true",
            help="With --force: allow the target to be the project's own database.",
        )
        restore.add_argument(
            "--dry-run",
            action="store_true",
            help="Run the pre-checks, read the backup through, say what would be done.",
        )
        restore.add_argument(
            "--no-privileges",
            action="store_true",
            help="Skip GRANTs (when the target server lacks the application role).",
        )
        verify = sub.add_parser("verify", help="Restore into a scratch database and compare.")
        verify.add_argument("--backup", default="latest", help="Backup to verify (latest).")
        verify.add_argument(
            "--live",
            action="store_true",
            help="Compare with the database as it is now, even if the backup has fingerprints.",
        )
        doctor = sub.add_parser(
            "doctor",
            help="Check the backup storage: public access, TLS only, history, KMS, signing key.",
        )
        doctor.add_argument("--json", action="store_true", help="Machine-readable output.")
        pitr = sub.add_parser(
            "pitr",
            help="Recover the local cluster to a moment from its pgBackRest archive, into a "
            "new data folder on a port of its own, read-only (docs/backups.md).",
        )
        moment = pitr.add_mutually_exclusive_group(required=True)
        moment.add_argument(
            "--to", type=pitr_time, metavar="TIME", help='e.g. "2026-12-06 10:15:00+00".'
        )
        moment.add_argument(
            "--latest", action="store_true", help="Replay everything archived (after a crash)."
        )
        pitr.add_argument("--cluster-dir", required=True, help="New, empty data folder.")
        pitr.add_argument("--port", required=True, type=whole_number(1), help="A free port.")
        pitr.add_argument(
            "--salvage-wal-from",
            metavar="DIR",
            help="With --latest: the crashed cluster's data folder; its WAL not yet archived "
            "is replayed too (only read).",
        )
        pitr.add_argument("--json", action="store_true", help="Machine-readable output.")
        self.add_rds_arguments(sub)  # rds-pitr, rds-replication (_backup_rds.py)
        for command in (restore, verify):
            command.add_argument(
                "--allow-unsigned",
                action="store_true",
                help="Go on when the manifest's signature cannot be checked (a backup from "
                "before signing, or another key), with a warning. A wrong signature is "
                "always refused.",
            )
        for command in (create, listing, prune, restore, verify):
            command.add_argument("--json", action="store_true", help="Machine-readable output.")
            if command is not listing and command is not prune:
                command.add_argument(
                    "--progress",
                    action="store_true",
                    help="Show progress on stderr (the default on a terminal).",
                )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "pitr":  # the cluster's archive, not the backup storage
                self.do_pitr(options)
                return
            if options["action"] in RDS_ACTIONS:  # RDS's own backups, not the storage
                getattr(self, "do_" + options["action"].replace("-", "_"))(options)
                return
            env = check_env(settings.BACKUP_ENV)
            action = options["action"]
            getattr(self, f"do_{action}")(backup_storage(), env, options)
        except (BackupError, ImproperlyConfigured, ValueError) as err:
            raise one_line(redact(str(err))) from err
        except (BotoCoreError, ClientError) as err:
            raise one_line(
                f"The backup storage refused: {redact(str(err))}. Check BACKUP_BUCKET, "
                "BACKUP_REGION, the AWS credentials and the role's s3:PutObject/GetObject/"
                "DeleteObject/ListBucket permissions on the prefix."
            ) from err
        except OSError as err:
            raise one_line(
                f"{err.strerror or err}: {err.filename or ''} - check BACKUP_DIR and its "
                "permissions (docs/backups.md)."
            ) from err

    def do_pitr(self, options: dict[str, Any]) -> None:
        from pathlib import Path

        from dbops.backups.pitr import recover
        from dbops.localdb import default_cluster

        if options["salvage_wal_from"] and not options["latest"]:
            raise CommandError("--salvage-wal-from goes with --latest.", returncode=2)
        result = recover(
            default_cluster(),
            target=options["to"],
            cluster_dir=Path(options["cluster_dir"]),
            port=options["port"],
            salvage_from=Path(options["salvage_wal_from"]) if options["salvage_wal_from"] else None,
        )
        where = "the end of the archive" if result.target is None else result.target.isoformat()
        commands = result.commands()
        salvaged = (
            f" Replayed {len(result.salvaged)} segment(s) not archived before the crash "
            f"({', '.join(result.salvaged)})."
            if result.salvaged
            else ""
        )
        text = "\n".join(
            [
                f"Done! Recovered the cluster to {where} (backup {result.backup}, WAL replayed "
                f"to {result.replay_lsn}) into {result.cluster_dir}.{salvaged}",
                f"It runs read-only on 127.0.0.1:{result.port} (default_transaction_read_only; "
                "SSL, the local cluster's roles and passwords: `devdb url --role owner "
                "--reveal` shows the owner's). It archives nothing and keeps running until "
                "you stop it.",
                f"  look:  {commands['psql']}",
                f"  dump:  {commands['pg_dump']}",
                f"  write: {commands['write']}   (in the session that writes)",
                f"  stop:  {commands['stop']}",
            ]
        )
        self.emit(options, result.as_json(), text)

    def progress(self, label: str, options: dict[str, Any], total: int | None = None) -> Any:
        tty = sys.stderr.isatty()
        if not (options.get("progress") or tty):
            return None
        return Progress(label, sys.stderr, total=total, tty=tty)

    def emit(self, options: dict[str, Any], data: Any, text: str) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str) if options["json"] else text)

    def do_create(self, storage: Any, env: str, options: dict[str, Any]) -> None:
        started = datetime.now(UTC)
        backup = create_backup(
            owner_database(),
            storage,
            env,
            progress=self.progress("pg_dump", options),
            max_rate=options["max_rate"],
            now=started,
            with_fingerprint=options["fingerprint"],
        )
        seconds = (datetime.now(UTC) - started).total_seconds()
        text = (
            f"Done! Backed up {backup.manifest['database']} to {describe(storage)}/"
            f"{backup.name}: {human_size(backup.size)} in {seconds:.1f}s."
        )
        replica = replica_storage()
        if replica is None:
            self.emit(options, backup.manifest, text)
            return
        try:  # the primary backup is complete whatever happens here
            state = replicate(storage, replica, backup)
        except (ReplicaError, BotoCoreError, ClientError, OSError) as err:
            self.emit(options, {**backup.manifest, "replica": {"status": "failed"}}, text)
            raise one_line(
                f"Backup {backup.name} is complete in {describe(storage)}, but its copy to "
                f"the replica {describe(replica)} failed: {redact(str(err))}. Run `python "
                f"manage.py backup replicate {backup.name}` once the replica is reachable."
            ) from err
        self.emit(
            options,
            {**backup.manifest, "replica": state.as_dict()},
            f"{text}\nCopied to {describe(replica)} (sha256 checked: {state.checked_by}).",
        )

    def do_replicate(self, storage: Any, env: str, options: dict[str, Any]) -> None:
        """Copy one backup, or every one whose copy is missing or wrong, to the replica."""
        replica = require_replica()
        if options["all_missing"]:
            backups = [b for b in scan(storage, env).complete if not check_copy(replica, b).ok]
        else:
            # The primary's bytes are read through first: a damaged backup is never copied
            # over a copy that may be good.
            backup = self.signed(storage, env, options["name"], {"allow_unsigned": True})
            check_stored_bytes(storage, backup)
            backups = [backup]
        done, failed = [], []
        for backup in backups:
            try:
                if options["all_missing"]:
                    check_stored_bytes(storage, backup)
                state = replicate(storage, replica, backup)
            except BackupError as err:
                if not options["all_missing"]:
                    raise
                failed.append(str(err))  # the others are still copied
                continue
            done.append(state.as_dict())
            if not options["json"]:
                self.stdout.write(f"Copied {backup.name} ({state.checked_by}).")
        self.emit(
            options,
            {"replica": describe(replica), "copied": done, "failed": failed},
            f"Done! {len(done)} backup(s) copied to {describe(replica)}, each checked "
            "against its manifest.",
        )
        if failed:
            raise one_line(f"{len(failed)} backup(s) not copied: {' '.join(failed)}")

    def list_both(self, storage: Any, env: str, options: dict[str, Any]) -> None:
        """`list --replica`: each backup on both sides."""
        replica = require_replica()
        rows = both_sides(storage, replica, env)
        if options["json"]:
            self.stdout.write(json.dumps([r.as_dict() for r in rows], indent=2))
        else:
            self.stdout.write(f"{'NAME':<46} {'SIZE':>10}  {'PRIMARY':<8} REPLICA")
            for r in rows:
                size = human_size(r.size) if r.size is not None else "-"
                self.stdout.write(f"{r.name:<46} {size:>10}  {r.primary:<8} {r.replica.status}")
            self.stdout.write(
                f"{len(rows)} {env} backup(s): primary {describe(storage)}, replica "
                f"{describe(replica)}."
            )
        for r in rows:
            if not r.replica.ok or r.primary != "ok":
                self.stderr.write(f"  {r.name}: primary {r.primary}; {r.replica.detail}")

    def do_list(self, storage: Any, env: str, options: dict[str, Any]) -> None:
        if options.get("replica"):
            self.list_both(storage, env, options)
            return
        now = datetime.now(UTC)
        listing = scan(storage, env)
        backups = listing.complete
        complete = {b.name for b in backups} | set(listing.damaged)
        incomplete = [o for o in listing.objects if o.dump not in complete]
        if options["json"]:
            rows = [
                {"name": b.name, "created": b.created.isoformat(), "size": b.size,
                 "age_seconds": int((now - b.created).total_seconds()), "sha256": b.sha256,
                 "signed": "signature" in b.manifest}
                for b in backups
            ]  # fmt: skip
            self.stdout.write(json.dumps(rows, indent=2))
            return
        self.stdout.write(f"{'NAME':<46} {'SIZE':>10} {'AGE':>8}  CREATED (UTC)")
        for b in backups:
            self.stdout.write(
                f"{b.name:<46} {human_size(b.size):>10} {age(b.created, now):>8}  "
                f"{b.created:%Y-%m-%d %H:%M:%S}"
            )
        running = [o for o in incomplete if o.is_partial and writer_alive(storage, o)]
        left = len(incomplete) - len(running)
        summary = f"{len(backups)} complete {env} backup(s) in {describe(storage)}."
        if running:
            summary += f" {len(running)} backup(s) running ({', '.join(o.name for o in running)})."
        if left:
            summary += (
                f" {left} object(s) of interrupted backups ignored (`backup prune` removes "
                "them: a partial whose writer is gone at once, the rest after the retention)."
            )
        unsigned = [b.name for b in backups if "signature" not in b.manifest]
        if unsigned:
            summary += (
                f" {len(unsigned)} unsigned (from before signing; a restore needs "
                "--allow-unsigned)."
            )
        if listing.damaged:
            summary += f" {len(listing.damaged)} damaged backup(s) ignored (below)."
        self.stdout.write(summary)
        for reason in sorted(listing.damaged.values()):
            self.stderr.write(f"  damaged: {reason}")

    def do_prune(self, storage: Any, env: str, options: dict[str, Any]) -> None:
        keep_days = options["keep_days"]
        if keep_days is None:
            keep_days = settings.BACKUP_RETENTION_DAYS
        keep_min = options["keep_min"]
        if keep_min is None:
            keep_min = getattr(settings, "BACKUP_KEEP_MIN", 2)
        replica = replica_storage()
        plan = plan_prune(storage, env, keep_days, keep_min, datetime.now(UTC), replica)
        if options["dry_run"]:
            if plan.refusal:
                raise CommandError(plan.refusal)
            doomed = [o.name for o in plan.delete]
        else:
            doomed = execute_prune(storage, plan, replica)
        partial = {o.name for o in plan.delete if o.is_partial}
        verb = "Would delete" if options["dry_run"] else "Deleted"
        data = {"dry_run": options["dry_run"], "keep_days": keep_days, "keep_min": keep_min,
                "deleted": doomed, "kept": [b.name for b in plan.kept], "good": plan.good,
                "bad": plan.bad}  # fmt: skip
        lines = [
            f"{verb} {name}" + (" (an interrupted backup)" if name in partial else "")
            for name in doomed
        ]
        if replica is not None:
            data["replica_deleted"] = [o.name for o in plan.replica_delete]
            lines = [
                f"{verb} {o.name} in the replica {describe(replica)}" for o in plan.replica_delete
            ] + lines
        lines += [f"Not good: {name}: {why}" for name, why in sorted(plan.bad.items())]
        lines.append(
            f"Done! {verb} {len(doomed)} object(s) older than {keep_days} days or abandoned; "
            f"{len(plan.kept)} complete backup(s) kept, the newest {len(plan.good)} of them "
            f"good (kept whatever their age)."
        )
        self.emit(options, data, "\n".join(lines))

    def do_restore(self, storage: Any, env: str, options: dict[str, Any]) -> None:
        database = check_database_name(options["database"])
        if options["replace_live"] and not options["force"]:
            raise CommandError("--replace-live goes with --force: it only allows the target.")
        backup = self.signed(storage, env, options["name"], options)
        admin = owner_database()
        live = {admin.dbname, conninfo("app").dbname}
        plan = plan_restore(
            backup,
            admin,
            database,
            force=options["force"],
            replace_live=options["replace_live"],
            live=live,
        )
        if options["dry_run"]:
            check_stored_bytes(storage, backup)
            self.dry_run_restore(plan, options)
            return
        result = execute_restore(
            storage,
            plan,
            admin,
            progress=self.progress("pg_restore", options, total=backup.size),
            privileges=not options["no_privileges"],
        )
        skipped = sorted(result.skipped_extensions)
        if skipped:
            extension_entries = {f"EXTENSION {n}" for n in skipped}
            extension_entries |= {f"COMMENT {e}" for e in extension_entries}
            members = [e for e in result.left_out if e not in extension_entries]
            self.stderr.write(
                f"Left out extension(s) {', '.join(skipped)}: only a superuser may create "
                "them (or they exist already)"
                + (
                    f", and what the dump grants on their objects ({'; '.join(members)})"
                    if members
                    else ""
                )
                + ". If the database needs them, run CREATE EXTENSION as a superuser (on "
                "RDS, the master user)."
            )
        if result.kept_aside:
            self.stderr.write(
                f"The replaced database was kept as {result.kept_aside}: drop it when you "
                "no longer need it."
            )
        if result.note:
            self.stderr.write(result.note)
        self.note_leftovers(plan.leftovers)
        jobs = f", pg_restore --jobs={result.jobs}" if result.jobs > 1 else ""
        self.emit(
            options,
            result_json(result),
            f"Done! Restored {backup.name} into database {result.database!r} ({result.how}{jobs}).",
        )

    def dry_run_restore(self, plan: Any, options: dict[str, Any]) -> None:
        steps = plan.describe()
        data = {
            "dry_run": True,
            "backup": plan.backup.name,
            "database": plan.database,
            "target": HOW[plan.action],
            "steps": plan.steps,
            "leftovers": plan.leftovers,
        }
        text = [
            f"DRY RUN, nothing changed. Pre-checks passed; a restore of {plan.backup.name} "
            f"into {plan.database!r} would:"
        ]
        text += [f"  {n}. {step}" for n, step in enumerate(steps, start=1)]
        self.note_leftovers(plan.leftovers)
        self.emit(options, data, "\n".join(text))

    def note_leftovers(self, leftovers: list[str]) -> None:
        for name in leftovers:
            self.stderr.write(
                f"Left by an interrupted restore: database {name} "
                + (
                    "(the database a restore replaced; drop it when you no longer need it)."
                    if "_old_" in name
                    else "(an unfinished restore; drop it)."
                )
            )

    def do_doctor(self, storage: Any, env: str, options: dict[str, Any]) -> None:
        replica = replica_storage()
        findings = examine(storage, replica)
        failed = [f for f in findings if not f.ok]
        where = describe(storage) + (f" and {describe(replica)}" if replica is not None else "")
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "storage": describe(storage),
                        "replica": describe(replica) if replica is not None else None,
                        "ok": not failed,
                        "checks": [vars(f) for f in findings],
                    },
                    indent=2,
                )
            )
        else:
            width = max(len(f.check) for f in findings)
            for f in findings:
                line = f"{'OK' if f.ok else 'FAIL':<4} {f.check:<{width}}  {f.detail}"
                self.stdout.write(line + (f". Fix: {f.fix}." if f.fix else "."))
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(findings)} checks of {where} failed: "
                f"{', '.join(f.check for f in failed)}."
            )
        if not options["json"]:
            self.stdout.write(f"Done! {len(findings)} checks of {where}: all OK.")

    def signed(self, storage: Any, env: str, name: str, options: dict[str, Any]) -> Any:
        """The backup called `name`, refused unless its manifest is signed by the backup key."""
        backup, warning = signed_backup(
            storage, env, name, allow_unsigned=options["allow_unsigned"]
        )
        if warning:
            self.stderr.write(self.style.ERROR(warning))
        return backup

    def do_verify(self, storage: Any, env: str, options: dict[str, Any]) -> None:
        source = owner_database()
        backup = self.signed(storage, env, options["backup"], options)
        result = verify_backup(
            storage,
            env,
            source,
            name=backup.name,
            progress=self.progress("pg_restore", options),
            live=options["live"],
            backup=backup,
        )
        replica = replica_storage()
        copy = check_copy(replica, backup) if replica is not None else None
        reference = (
            f"{source.dbname!r} as of the backup (fingerprints in its manifest)"
            if result.snapshot
            else f"{source.dbname!r} as it is now"
        )
        rows = [
            {"table": t.table, "ok": t.ok,
             "source_rows": t.source.rows if t.source else None,
             "backup_rows": t.restored.rows if t.restored else None,
             "source_hash": t.source.digest if t.source else None,
             "backup_hash": t.restored.digest if t.restored else None}
            for t in result.tables
        ]  # fmt: skip
        bad = [r for r in rows if not r["ok"]]
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "backup": result.backup.name,
                        "ok": result.ok and (copy is None or copy.ok),
                        "tables": rows,
                        **({"replica": copy.as_dict()} if copy else {}),
                    },
                    indent=2,
                )
            )
        else:
            width = max([len(r["table"]) for r in rows] + [5])
            self.stdout.write(
                f"{'TABLE':<{width}} {'SOURCE ROWS':>12} {'BACKUP ROWS':>12} "
                f"{'SOURCE HASH':<16} {'BACKUP HASH':<16} OK"
            )
            for r in rows:
                cells = [r["source_rows"], r["backup_rows"], r["source_hash"], r["backup_hash"]]
                src_rows, bk_rows, src_hash, bk_hash = ("-" if c is None else c for c in cells)
                self.stdout.write(
                    f"{r['table']:<{width}} {src_rows:>12} {bk_rows:>12} {src_hash:<16} "
                    f"{bk_hash:<16} {'yes' if r['ok'] else 'NO'}"
                )
        if bad:
            hint = (
                "The restore does not reproduce the data the dump read: do not trust this "
                "backup; take a new one."
                if result.snapshot
                else "Rows written since the backup also differ: take a fresh backup with "
                "`backup create --fingerprint` and verify it, or verify in a quiet moment."
            )
            raise CommandError(
                f"Backup {result.backup.name} differs from {reference} in {len(bad)} "
                f"table(s): {', '.join(r['table'] for r in bad)}. {hint}"
            )
        if copy is not None and not copy.ok:
            assert replica is not None
            raise CommandError(
                f"Backup {result.backup.name} restores correctly, but its copy in the replica "
                f"is {copy.status}: {copy.detail}. Run `python manage.py backup replicate "
                f"{result.backup.name}`."
            )
        if not options["json"]:
            self.stdout.write(
                f"Done! {result.backup.name} matches {reference}: {len(rows)} tables, "
                f"scratch database {result.scratch} dropped."
            )
            if copy is not None:
                self.stdout.write(f"Its copy in the replica: {copy.detail}.")
