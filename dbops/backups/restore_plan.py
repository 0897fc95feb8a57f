"""`backup restore`: pre-checks that can refuse, the plan `--dry-run` prints, and its run.

Rules (docs/backups.md, "Restore"):
- an absent target is restored into a scratch database, verified, then renamed to the
  target: the name appears only when the restore is complete;
- an existing empty target is restored into in place (one transaction), after the
  stored bytes were checked against the manifest: it is the one restore that people can
  see while it fills, so it keeps pg_restore --single-transaction (a failure leaves it
  empty). Every other restore fills a database created for it (`pg_restore -j N`, see
  restore.py): nobody connects to it, a failure drops it, and it takes the target's
  name only after the verification, so its being filled by parallel transactions is
  never seen;
- a non-empty target is replaced only with --force, and then never dropped first: the
  scratch database is restored and verified, given the target's owner, privileges and
  settings, and swapped in by two renames in one transaction; the old database is dropped
  only after that committed. A kill at any point leaves the old or the new database under
  the target's name (and at most a scratch or the old one beside it, which a later run
  names). Refused: the project's own database without --replace-live, a database this
  role does not own, and one that sessions are connected to (a restore disconnects
  nobody).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from django.core.files.storage import Storage

from dbops.backups import BackupError
from dbops.backups import targets as db
from dbops.backups.fingerprint import compare, fingerprint, from_json
from dbops.backups.progress import Progress
from dbops.backups.restore import Restored, restore_jobs, run_pg_restore
from dbops.backups.store import Backup, stored_sha256
from dbops.connections.config import ConnInfo
from dbops.connections.databases import drop_database
from sqlmigrations.redact import redact

HOW = {"create": "created", "fill": "empty", "replace": "replaced"}
STEPS = {
    "create": ["check", "create", "restore", "verify", "rename"],
    "fill": ["check", "restore"],
    "replace": ["check", "create", "restore", "verify", "copy", "swap", "drop"],
}


class RestoreRefused(BackupError):
    """A pre-check said no: nothing was changed."""


@dataclass
class RestorePlan:
    backup: Backup
    database: str
    action: str  # create, fill or replace
    steps: list[str]
    leftovers: list[str] = field(default_factory=list)
    jobs: int = 1  # pg_restore --jobs into the scratch database (not for "fill")

    def describe(self, scratch: str = "", aside: str = "") -> list[str]:
        """One line per step, as a person reads it."""
        name, backup = self.database, self.backup.name
        scratch = scratch or db.scratch_name(name, "<hex>")
        aside = aside or db.aside_name(name, "<UTC time>")
        tables = len(self.backup.manifest.get("tables", {}))
        into = name if self.action == "fill" else scratch
        text = {
            "check": f"read {backup} through and check its size and sha256",
            "create": f"create database {scratch}",
            "restore": f"pg_restore {backup} into {into} (one transaction; size and sha256 checked)"
            if self.action == "fill" or self.jobs == 1
            else f"pg_restore --jobs={self.jobs} {backup} into {into} (its size and sha256 "
            "checked first)",
            "verify": f"compare its {tables} tables with the manifest's fingerprints"
            if tables
            else "no fingerprints in the manifest: the checksum is the check",
            "rename": f"rename {scratch} to {name}",
            "copy": f"give {scratch} the owner, privileges, settings and comment of {name}",
            "swap": f"rename {name} to {aside} and {scratch} to {name}, in one transaction",
            "drop": f"drop {aside} (the replaced database)",
        }
        return [text[step] for step in self.steps]


@dataclass
class RestoreResult:
    backup: Backup
    database: str
    action: str
    steps: list[str]
    skipped_extensions: set[str]
    left_out: list[str] = field(default_factory=list)
    kept_aside: str = ""  # the replaced database, when dropping it failed
    jobs: int = 1  # pg_restore --jobs used; 1: one streamed transaction
    note: str = ""  # why pg_restore --jobs was not used where it could have been

    @property
    def how(self) -> str:
        return HOW[self.action]


def plan_restore(
    backup: Backup,
    admin: ConnInfo,
    database: str,
    *,
    force: bool = False,
    replace_live: bool = False,
    live: Collection[str] = (),
) -> RestorePlan:
    """Run every pre-check against the server as it is; return the plan or refuse."""
    db.check_database_name(database)
    try:
        if not db.can_create_databases(admin):
            raise RestoreRefused(
                f"Role {admin.user!r} may not create databases (CREATEDB): a restore "
                "needs one; restore as the owner role (MIGRATION_DATABASE_URL)."
            )
        state = db.inspect(admin, database)
        left = db.leftovers(admin, database)
    except psycopg.Error as err:
        raise BackupError(
            f"Cannot inspect database {database!r}: {redact(str(err).strip())}"
        ) from err
    if not state.exists:
        return RestorePlan(backup, database, "create", STEPS["create"], left, restore_jobs())
    if state.relations == 0:
        return RestorePlan(backup, database, "fill", STEPS["fill"], left)
    if not force:
        raise RestoreRefused(
            f"Database {database!r} is not empty ({state.relations} tables, views or "
            "sequences): restore into a new database name, or add --force to replace it "
            "(it is swapped out once the restore is complete and verified, then dropped)."
        )
    if database in live and not replace_live:
        raise RestoreRefused(
            f"Database {database!r} is the project's own database (DATABASES['default']): "
            "replacing it replaces what the application serves. Stop the application, "
            "then add --replace-live as well as --force."
        )
    if not state.mine:
        raise RestoreRefused(
            f"Database {database!r} belongs to {state.owner!r}, and {admin.user!r} can "
            "neither rename nor drop it: restore as its owner, or into a new name."
        )
    if state.sessions:
        raise RestoreRefused(_connected(database, state.sessions))
    return RestorePlan(backup, database, "replace", STEPS["replace"], left, restore_jobs())


def _connected(database: str, sessions: tuple[db.Session, ...]) -> str:
    listed = ", ".join(str(s) for s in sessions[:5])
    more = f" and {len(sessions) - 5} more" if len(sessions) > 5 else ""
    return (
        f"{len(sessions)} session(s) are connected to {database!r}: {listed}{more}. "
        "Stop them (the application, psql, ...) and run again: a restore disconnects nobody."
    )


def check_stored_bytes(storage: Storage, backup: Backup) -> None:
    """Read the stored object through; refuse when it does not match its manifest."""
    if stored_sha256(storage, backup.name) != backup.sha256:
        raise RestoreRefused(
            f"{backup.name} does not match its manifest (sha256 differs): the stored "
            "object is damaged; restore an older backup. Nothing was changed."
        )


@contextlib.contextmanager
def _exclusive(admin: ConnInfo, database: str) -> Iterator[None]:
    """Hold a lock that a second restore into `database` on this server is refused by."""
    with db.connect(admin, database) as conn:
        row = conn.execute(
            "SELECT pg_try_advisory_lock(hashtext('choregarden backup restore: ' || %s))",
            [database],
        ).fetchone()
        if not (row and row[0]):
            raise RestoreRefused(f"Another restore into {database!r} is running: wait for it.")
        yield


def restore_into_new(
    storage: Storage,
    backup: Backup,
    admin: ConnInfo,
    name: str,
    *,
    progress: Progress | None = None,
    privileges: bool = True,
    jobs: int = 1,
) -> Restored:
    """Check the stored bytes, create database `name` and restore into it (dropped on failure).

    The bytes are checked before pg_restore reads any of them: a replaced dump is SQL that
    pg_restore would run as the owner role, even if its transaction were rolled back.
    With jobs > 1, run_pg_restore checks them itself, on the local file pg_restore -j
    reads (one read instead of two). `name` is new and nobody else's, so pg_restore -j's
    parallel transactions are safe in it (restore.py).
    """
    if jobs == 1:
        check_stored_bytes(storage, backup)
    db.create_database(admin, name)
    try:
        return run_pg_restore(
            storage, backup, admin.on(name), progress=progress, privileges=privileges, jobs=jobs
        )
    except BaseException:
        with contextlib.suppress(psycopg.Error):
            drop_database(admin, name)
        raise


def _verify(admin: ConnInfo, backup: Backup, scratch: str) -> None:
    tables = backup.manifest.get("tables")
    if not tables:
        return
    differ = [
        c.table for c in compare(from_json(tables), fingerprint(admin.on(scratch))) if not c.ok
    ]
    if differ:
        raise BackupError(
            f"The restore of {backup.name} differs from the fingerprints in its manifest in "
            f"{len(differ)} table(s) ({', '.join(differ)}): it was not put in place."
        )


def execute_restore(
    storage: Storage,
    plan: RestorePlan,
    admin: ConnInfo,
    *,
    progress: Progress | None = None,
    privileges: bool = True,
) -> RestoreResult:
    """Carry out the plan; every step before the swap leaves the target as it was."""
    backup, database = plan.backup, plan.database
    done: list[str] = []
    result = RestoreResult(backup, database, plan.action, done, set())
    with _exclusive(admin, database):
        if plan.action == "fill":
            check_stored_bytes(storage, backup)
            done.append("check")
            # In place, under the target's name: one transaction (module docstring).
            restored = run_pg_restore(
                storage, backup, admin.on(database), progress=progress, privileges=privileges
            )
            result.skipped_extensions, result.left_out = restored.skipped, restored.left_out
            done.append("restore")
            return result
        scratch = db.scratch_name(database, secrets.token_hex(4))
        aside = db.aside_name(database, datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
        restored = restore_into_new(
            storage,
            backup,
            admin,
            scratch,
            progress=progress,
            privileges=privileges,
            jobs=plan.jobs,
        )
        result.skipped_extensions, result.left_out = restored.skipped, restored.left_out
        result.jobs, result.note = restored.jobs, restored.note
        done += ["check", "create", "restore"]
        try:
            _verify(admin, backup, scratch)
            done.append("verify")
            if plan.action == "create":
                db.rename(admin, scratch, database)
                done.append("rename")
                return result
            db.copy_properties(admin, database, scratch)
            done.append("copy")
            _swap(admin, database, scratch, aside)
            done.append("swap")
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                drop_database(admin, scratch)
            raise
        try:
            drop_database(admin, aside)
            done.append("drop")
        except psycopg.Error as err:
            result.kept_aside = f"{aside} ({redact(str(err).strip())})"
    return result


def _swap(admin: ConnInfo, database: str, scratch: str, aside: str) -> None:
    with db.connect(admin, database) as conn:
        connected = db.sessions(conn, database)
    if connected:
        raise RestoreRefused(_connected(database, connected) + " Nothing was replaced.")
    try:
        db.swap(admin, database, scratch, aside)
    except psycopg.errors.ObjectInUse as err:
        with db.connect(admin, database) as conn:
            connected = db.sessions(conn, database)
        raise RestoreRefused(_connected(database, connected) + " Nothing was replaced.") from err


def restore_backup(
    storage: Storage,
    backup: Backup,
    admin: ConnInfo,
    database: str,
    *,
    force: bool = False,
    replace_live: bool = False,
    live: Collection[str] = (),
    progress: Progress | None = None,
    privileges: bool = True,
) -> RestoreResult:
    """Plan and run the restore of `backup` into `database` on admin's server."""
    plan = plan_restore(backup, admin, database, force=force, replace_live=replace_live, live=live)
    return execute_restore(storage, plan, admin, progress=progress, privileges=privileges)


def result_json(result: RestoreResult) -> dict[str, Any]:
    return {
        "backup": result.backup.name,
        "database": result.database,
        "target": result.how,
        "steps": result.steps,
        "skipped_extensions": sorted(result.skipped_extensions),
        "left_out": result.left_out,
        "kept": result.kept_aside or None,
        "jobs": result.jobs,
    }
