"""`backup verify`: restore the newest backup into a scratch database and compare every table."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass

import psycopg
from django.core.files.storage import Storage

from dbops.backups.fingerprint import Comparison, compare, fingerprint, from_json
from dbops.backups.progress import Progress
from dbops.backups.restore import restore_jobs
from dbops.backups.restore_plan import restore_into_new
from dbops.backups.store import Backup, find_backup
from dbops.connections.config import ConnInfo
from dbops.connections.databases import drop_database


@dataclass
class VerifyResult:
    backup: Backup
    scratch: str
    tables: list[Comparison]
    snapshot: bool  # compared with the fingerprints taken in the dump's own snapshot

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)


def scratch_name(source: ConnInfo) -> str:
    return f"{source.dbname[:40]}_verify_{secrets.token_hex(4)}"


def verify_backup(
    storage: Storage,
    env: str,
    source: ConnInfo,
    *,
    name: str = "latest",
    progress: Progress | None = None,
    live: bool = False,
    backup: Backup | None = None,
) -> VerifyResult:
    """Restore backup `name` into a scratch database, compare, drop it.

    The reference is the manifest's fingerprints (taken in the dump's snapshot by
    `create --fingerprint`) when it has them, unless `live`; else the source as it is now.
    `backup`, when given, is the one already found (and its signature checked) by the caller.
    """
    if backup is None:
        backup = find_backup(storage, env, name)
    snapshot = "tables" in backup.manifest and not live
    scratch = scratch_name(source)
    try:
        # The scratch database is ours alone and dropped afterwards: pg_restore -j is safe.
        restore_into_new(storage, backup, source, scratch, progress=progress, jobs=restore_jobs())
        restored = fingerprint(source.on(scratch))
        original = from_json(backup.manifest["tables"]) if snapshot else fingerprint(source)
    finally:
        with contextlib.suppress(psycopg.Error):
            drop_database(source, scratch)
    return VerifyResult(
        backup=backup, scratch=scratch, tables=compare(original, restored), snapshot=snapshot
    )
