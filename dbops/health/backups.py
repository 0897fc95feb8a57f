"""Backups: the newest complete backup has a copy in the replica that matches its manifest.

Unlike the other checks this one reads the backup storages, not PostgreSQL's views: the
cursor it is given goes unused. With no replica configured it says so (info). On S3 a
copy made by `backup create` carries S3's own SHA256, read back with one HEAD; anything
else is read through and hashed (dbops.backups.replica.stored_checksum).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from dbops.backups import BackupError
from dbops.backups.names import check_env
from dbops.backups.replica import MISSING, check_copy, replica_storage
from dbops.backups.store import backup_storage, describe, scan
from dbops.health.base import CRITICAL, INFO, OK, WARNING, CheckResult, thresholds
from sqlmigrations.redact import redact

TITLE = "Backup replica"
HINT = (
    "Run `python manage.py backup replicate NAME` (or `--all-missing`), then `backup list "
    "--replica`; a copy that keeps failing: check the replica bucket, its region and the "
    "role's s3:PutObject/GetObject there (docs/backups.md, 'Copies in a second region')."
)


def _result(status: str, summary: str, **values: Any) -> CheckResult:
    return CheckResult(
        name="backup_replica",
        title=TITLE,
        status=status,
        summary=summary,
        values=values,
        thresholds=dict(thresholds("backup_replica")),
        hint=HINT if status in (WARNING, CRITICAL) else "",
    )


def check_backup_replica(cursor: Any, now: datetime | None = None) -> CheckResult:
    """Critical when the newest backup's copy is corrupt, or missing past the grace period
    (a warning within it: `backup create` may still be copying)."""
    del cursor  # nothing to ask PostgreSQL
    try:
        replica = replica_storage()
        if replica is None:
            return _result(INFO, "No backup replica is configured (BACKUP_REPLICA_BUCKET).")
        storage = backup_storage()
        env = check_env(settings.BACKUP_ENV)
        complete = scan(storage, env).complete
        if not complete:
            return _result(INFO, f"No complete {env} backup in {describe(storage)} to look for.")
        newest = complete[0]
        state = check_copy(replica, newest)
    except (BackupError, BotoCoreError, ClientError, OSError) as err:
        return _result(CRITICAL, f"The backup storages cannot be read: {redact(str(err))}")
    age = int(((now or datetime.now(UTC)) - newest.created).total_seconds())
    if state.ok:
        return _result(OK, f"{newest.name}: {state.detail}.", copy_ok=1, backup_age_seconds=age)
    grace = thresholds("backup_replica")["grace_seconds"]
    status = WARNING if state.status == MISSING and age < grace else CRITICAL
    return _result(
        status,
        f"The newest backup's copy is {state.status}: {state.detail}.",
        copy_ok=0,
        backup_age_seconds=age,
    )
