"""Backups: the newest complete backup has a copy in the replica that matches its manifest.

Unlike the other checks this one reads the backup storages, not PostgreSQL's views: the
cursor it is given goes unused. With no replica configured it says so (info). On S3 a
copy made by `backup create` carries S3's own SHA256, read back with one HEAD; anything
else is read through and hashed (dbops.backups.replica.stored_checksum). A copy found
good that way is not read again by this process while its dump and manifest keep their
size and modification time, for up to RECHECK_SECONDS: the health page and `dbhealth
--record` look often, and a folder replica's dump may be gigabytes. `backup verify` always
reads it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from dbops.backups import BackupError
from dbops.backups.names import MANIFEST_SUFFIX, check_env
from dbops.backups.replica import MISSING, ReplicaState, check_copy, replica_storage
from dbops.backups.replica import OK as COPY_OK
from dbops.backups.store import Backup, _is_s3, backup_storage, describe, scan
from dbops.health.base import CRITICAL, INFO, OK, WARNING, CheckResult, thresholds
from sqlmigrations.redact import redact

TITLE = "Backup replica"
HINT = (
    "Run `python manage.py backup replicate NAME` (or `--all-missing`), then `backup list "
    "--replica`; a copy that keeps failing: check the replica bucket, its region and the "
    "role's s3:PutObject/GetObject there (docs/backups.md, 'Copies in a second region')."
)


RECHECK_SECONDS = 3600
# (replica, dump, its size and mtime, the manifest's) -> monotonic time it was found good.
_good: dict[tuple[Any, ...], float] = {}


def _stamp(replica: Any, backup: Backup) -> tuple[Any, ...] | None:
    """What a re-read would be for: the copy's size and modification times (None: unknown)."""
    try:
        manifest = backup.name + MANIFEST_SUFFIX
        return (
            describe(replica),
            backup.name,
            backup.sha256,
            replica.size(backup.name),
            replica.get_modified_time(backup.name).timestamp(),
            replica.get_modified_time(manifest).timestamp(),
        )
    except (OSError, NotImplementedError):
        return None


def _check(replica: Any, backup: Backup) -> ReplicaState:
    """check_copy, without hashing a folder copy again that was found good and is unchanged."""
    if _is_s3(replica):  # one HEAD: nothing to save
        return check_copy(replica, backup)
    stamp = _stamp(replica, backup)
    now = time.monotonic()
    seen = _good.get(stamp) if stamp else None
    if seen is not None and now - seen < RECHECK_SECONDS:
        return ReplicaState(
            backup.name,
            COPY_OK,
            f"{backup.name} in {describe(replica)} matched its manifest {int(now - seen)}s ago "
            "and is unchanged since",
            "read",
        )
    state = check_copy(replica, backup)
    if state.ok and stamp is not None:
        _good.clear()  # one entry: the newest backup
        _good[stamp] = now
    return state


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
        state = _check(replica, newest)
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
