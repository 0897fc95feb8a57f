"""The scratch database of `migrate --rehearse`: a backup restored for one rehearsal.

sqlmigrations may not import dbops (the import contracts), so `migrate --rehearse`
reaches this through SQL_MIGRATIONS["REHEARSAL_SOURCE"], a dotted path to
scratch_database(). It restores a backup into a new database named
`<db>_rehearse_<UTC time>_<hex>`, yields its name, and drops it when the rehearsal
ends, also on a failure or Ctrl-C. A killed run leaves the database behind under that
name: the next rehearsal drops such leftovers once they are an hour old and nobody is
connected to them (the time is in the name; the owner role made them).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from dbops.backups import BackupError, rds_clone
from dbops.backups.interrupts import terminate_as_interrupt
from dbops.backups.rds import RdsError
from dbops.backups.restore import restore_jobs
from dbops.backups.restore_plan import restore_into_new
from dbops.backups.signing import signed_backup
from dbops.backups.store import backup_storage
from dbops.connections.config import ConnInfo, conninfo
from dbops.connections.databases import drop_database, maintenance
from sqlmigrations.redact import redact

MARK = "_rehearse_"
STAMP = "%Y%m%d%H%M%S"
STALE_AFTER = timedelta(hours=1)


def scratch_name(dbname: str, now: datetime | None = None) -> str:
    """`<db>_rehearse_<UTC time>_<hex>`: says what it is and since when (63 bytes at most)."""
    when = (now or datetime.now(UTC)).strftime(STAMP)
    return f"{dbname[:30]}{MARK}{when}_{secrets.token_hex(2)}"


def _leftover_pattern(dbname: str) -> re.Pattern[str]:
    return re.compile(re.escape(dbname[:30] + MARK) + r"(\d{14})_[0-9a-f]{4}")


def stale_scratch(server: ConnInfo, now: datetime | None = None) -> list[str]:
    """The leftover rehearsal databases of this database that may be dropped.

    Only names this module makes, owned by this role, an hour old or more by the time in
    their name, with no session connected: a rehearsal still running is never one.
    """
    now = now or datetime.now(UTC)
    pattern = _leftover_pattern(server.dbname)
    with psycopg.connect(**maintenance(server), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT d.datname FROM pg_database d "
            "WHERE pg_get_userbyid(d.datdba) = current_user "
            "AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)"
        ).fetchall()
    stale = []
    for (name,) in rows:
        match = pattern.fullmatch(name)
        if not match:
            continue
        made = datetime.strptime(match.group(1), STAMP).replace(tzinfo=UTC)
        if now - made >= STALE_AFTER:
            stale.append(name)
    return sorted(stale)


@contextlib.contextmanager
def scratch_database(
    backup_name: str, say: Callable[[str], None], snapshot: str | None = None
) -> Iterator[dict[str, Any]]:
    """Restore backup `backup_name` (or `latest`) into a new database; yield, then drop it.

    Yields {"NAME": the scratch database, "BACKUP": the backup's name}. The backup's
    manifest must be signed (as for `backup restore`). With `snapshot` (an RDS snapshot
    or `latest`), the copy is a new RDS instance cloned from it instead (rds_clone), and
    the dict also has "PLACE" and "SETTINGS" (how to reach it). A copy that could not be
    removed is named under "LEFT_BEHIND". Errors are CommandErrors (exit 1) that say
    what to do. SIGTERM, like Ctrl-C, still removes the copy.
    """
    copy = _scratch(backup_name, say) if snapshot is None else _clone(snapshot, say)
    with terminate_as_interrupt(), copy as scratch:
        yield scratch


@contextlib.contextmanager
def _clone(snapshot: str, say: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    try:
        with rds_clone.snapshot_clone(snapshot, say) as clone:
            yield clone
    except (RdsError, ImproperlyConfigured) as err:
        raise CommandError(f"{redact(str(err))} Nothing was rehearsed.") from err


@contextlib.contextmanager
def _scratch(backup_name: str, say: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    storage = backup_storage()
    try:
        backup, warning = signed_backup(
            storage, settings.BACKUP_ENV, backup_name, allow_unsigned=False
        )
    except BackupError as err:
        raise CommandError(f"{redact(str(err))} Nothing was rehearsed.") from err
    if warning:
        say(warning)
    server = conninfo("owner").named("choregarden-rehearse")
    for leftover in stale_scratch(server):
        say(f"Dropping {leftover}, left by an interrupted rehearsal.")
        with contextlib.suppress(psycopg.Error):
            drop_database(server, leftover)
    scratch = scratch_name(server.dbname)
    say(f"Restoring {backup.name} into scratch database {scratch}...")
    try:
        # Ours alone and dropped afterwards: pg_restore -j is safe (as `backup verify`).
        restore_into_new(storage, backup, server, scratch, jobs=restore_jobs())
    except (BackupError, psycopg.Error) as err:
        raise CommandError(
            f"Restoring {backup.name} into {scratch} failed: {redact(str(err))} "
            "Nothing was rehearsed; `python manage.py backup verify` checks the backup."
        ) from err
    result: dict[str, Any] = {"NAME": scratch, "BACKUP": backup.name}
    try:
        yield result
    finally:
        try:
            drop_database(server, scratch)
        except psycopg.Error as err:
            result["LEFT_BEHIND"] = (
                f"Could not drop the scratch database {scratch}: {redact(str(err))}. Drop it "
                f'with `DROP DATABASE "{scratch}"` as the owner role.'
            )
            say(result["LEFT_BEHIND"])
