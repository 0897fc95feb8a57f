"""Back up the database to storage, list, prune, restore and verify backups (docs/backups.md)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dbops.backups import BackupError
from dbops.backups.dump import create_backup
from dbops.backups.names import check_env
from dbops.backups.pgclient import source_from_settings
from dbops.backups.progress import Progress, human_size
from dbops.backups.restore import restore_backup
from dbops.backups.store import (
    backup_storage,
    complete_backups,
    delete_backup_objects,
    describe,
    find_backup,
    project_objects,
    prune_plan,
    writer_alive,
)
from dbops.backups.verify import verify_backup
from dbops.management.arguments import rate, whole_number
from dbops.redact import redact


def age(created: datetime, now: datetime) -> str:
    seconds = int((now - created).total_seconds())
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


class Command(BaseCommand):
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
        prune = sub.add_parser("prune", help="Delete this environment's backups past retention.")
        prune.add_argument(
            "--keep-days",
            type=whole_number(1),
            help="Keep backups this many days (default: BACKUP_RETENTION_DAYS).",
        )
        prune.add_argument("--dry-run", action="store_true", help="Only say what would go.")
        restore = sub.add_parser("restore", help="Restore a backup into a named database.")
        restore.add_argument("name", help="A backup name from `backup list`, or `latest`.")
        restore.add_argument("--database", required=True, help="Target database (created).")
        restore.add_argument(
            "--force", action="store_true", help="Drop and recreate a non-empty target."
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
            env = check_env(settings.BACKUP_ENV)
            action = options["action"]
            getattr(self, f"do_{action}")(backup_storage(), env, options)
        except (BackupError, ImproperlyConfigured, ValueError) as err:
            raise CommandError(redact(str(err))) from err
        except (BotoCoreError, ClientError) as err:
            raise CommandError(
                f"The backup storage refused: {redact(str(err))}. Check BACKUP_BUCKET, "
                "BACKUP_REGION, the AWS credentials and the role's s3:PutObject/GetObject/"
                "DeleteObject/ListBucket permissions on the prefix."
            ) from err
        except psycopg.Error as err:
            raise CommandError(f"Database error: {redact(str(err).strip())}") from err
        except OSError as err:
            raise CommandError(
                f"{err.strerror or err}: {err.filename or ''} - check BACKUP_DIR and its "
                "permissions (docs/backups.md)."
            ) from err

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
            source_from_settings(),
            storage,
            env,
            progress=self.progress("pg_dump", options),
            max_rate=options["max_rate"],
            now=started,
            with_fingerprint=options["fingerprint"],
        )
        seconds = (datetime.now(UTC) - started).total_seconds()
        self.emit(
            options,
            backup.manifest,
            f"Done! Backed up {backup.manifest['database']} to {describe(storage)}/"
            f"{backup.name}: {human_size(backup.size)} in {seconds:.1f}s.",
        )

    def do_list(self, storage: Any, env: str, options: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        backups = complete_backups(storage, env)
        complete = {b.name for b in backups}
        incomplete = [o for o in project_objects(storage, env) if o.dump not in complete]
        if options["json"]:
            rows = [
                {"name": b.name, "created": b.created.isoformat(), "size": b.size,
                 "age_seconds": int((now - b.created).total_seconds()), "sha256": b.sha256}
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
        self.stdout.write(summary)

    def do_prune(self, storage: Any, env: str, options: dict[str, Any]) -> None:
        keep_days = options["keep_days"]
        if keep_days is None:
            keep_days = settings.BACKUP_RETENTION_DAYS
        doomed, kept = prune_plan(storage, env, keep_days, datetime.now(UTC))
        if not options["dry_run"]:
            delete_backup_objects(storage, doomed)
        verb = "Would delete" if options["dry_run"] else "Deleted"
        data = {"dry_run": options["dry_run"], "keep_days": keep_days,
                "deleted": [o.name for o in doomed], "kept": [b.name for b in kept]}  # fmt: skip
        lines = [
            f"{verb} {o.name}" + (" (an interrupted backup)" if o.is_partial else "")
            for o in doomed
        ]
        lines.append(
            f"Done! {verb} {len(doomed)} object(s) older than {keep_days} days or abandoned; "
            f"{len(kept)} complete backup(s) kept."
        )
        self.emit(options, data, "\n".join(lines))

    def do_restore(self, storage: Any, env: str, options: dict[str, Any]) -> None:
        backup = find_backup(storage, env, options["name"])
        result = restore_backup(
            storage,
            backup,
            source_from_settings(),
            options["database"],
            force=options["force"],
            progress=self.progress("pg_restore", options, total=backup.size),
            privileges=not options["no_privileges"],
        )
        how = "replaced" if result.replaced else "created" if result.created else "empty"
        skipped = sorted(result.skipped_extensions)
        data = {"backup": backup.name, "database": result.database, "target": how,
                "skipped_extensions": skipped, "left_out": result.left_out}  # fmt: skip
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
        self.emit(
            options,
            data,
            f"Done! Restored {backup.name} into database {result.database!r} ({how}).",
        )

    def do_verify(self, storage: Any, env: str, options: dict[str, Any]) -> None:
        source = source_from_settings()
        result = verify_backup(
            storage,
            env,
            source,
            name=options["backup"],
            progress=self.progress("pg_restore", options),
            live=options["live"],
        )
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
                    {"backup": result.backup.name, "ok": result.ok, "tables": rows}, indent=2
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
        if not options["json"]:
            self.stdout.write(
                f"Done! {result.backup.name} matches {reference}: {len(rows)} tables, "
                f"scratch database {result.scratch} dropped."
            )
