"""`backup prune`: the plan of what goes, which `--dry-run` prints and the real run deletes.

Deleted: this environment's objects older than the retention, and partials whose writer
is gone (at any age: a killed backup leaves a dump-sized object behind). Never: a
partial whose writer still runs, another environment's or project's objects, and the
`keep_min` newest good backups, however old (a good backup is complete and its stored
bytes match its manifest's sha256, read through when age would otherwise take it).

Each backup goes manifest first, then its dump: a prune killed in between leaves a dump
without a manifest, which nothing takes for a backup, never a manifest without its dump.

With a replica (dbops.backups.replica), the replica's objects of the same backups go too,
behind the same pre-check, and before the primary's: a prune killed in between leaves
them on the primary, where the next prune finds them again and finishes the replica's
side; the other way round, the replica's copies would be orphans no plan names. The
replica loses nothing else: copies whose primary is already gone are left to a person.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.files.storage import Storage

from dbops.backups import BackupError
from dbops.backups.names import BackupName
from dbops.backups.store import Backup, scan, stored_sha256, writer_alive


class PruneRefused(BackupError):
    """Too few good backups to delete any: nothing was deleted."""


@dataclass
class PrunePlan:
    keep_days: int
    keep_min: int
    delete: list[BackupName] = field(default_factory=list)  # in the order they go
    kept: list[Backup] = field(default_factory=list)  # complete backups that stay
    good: list[str] = field(default_factory=list)  # kept whatever their age
    bad: dict[str, str] = field(default_factory=dict)  # backup: why it is not good
    refusal: str = ""
    replica_delete: list[BackupName] = field(default_factory=list)  # the same names, replica


def _order(obj: BackupName) -> tuple[str, int]:
    # Oldest backup first; within one, the manifest before the dump and its partials.
    return (obj.dump, 0 if obj.is_manifest else 1 if obj.is_dump else 2)


def _gone(storage: Storage, obj: BackupName, cutoff: datetime) -> bool:
    """Whether `obj` may go: a partial whose writer is gone, or anything past the cutoff."""
    alive = writer_alive(storage, obj) if obj.is_partial else None
    return alive is False or (alive is None and obj.created < cutoff)


def plan_prune(
    storage: Storage,
    env: str,
    keep_days: int,
    keep_min: int,
    now: datetime,
    replica: Storage | None = None,
) -> PrunePlan:
    """Work out what prune deletes and keeps; read no more of the storage than needed.

    With `replica`, it also deletes the replica's objects of the backups it deletes, and
    the replica's partials whose writer is gone (a killed `backup replicate`).
    """
    cutoff = now - timedelta(days=keep_days)
    listing = scan(storage, env)
    plan = PrunePlan(keep_days, keep_min, bad=dict(listing.damaged))
    if any(b.created < cutoff for b in listing.complete):
        for backup in listing.complete:  # newest first, until keep_min are good
            if len(plan.good) == keep_min:
                break
            if stored_sha256(storage, backup.name) == backup.sha256:
                plan.good.append(backup.name)
            else:
                plan.bad[backup.name] = f"the sha256 of {backup.name} does not match its manifest"
    else:  # age takes no complete backup: no need to read them
        plan.good = [b.name for b in listing.complete[:keep_min]]

    by_dump: dict[str, list[BackupName]] = defaultdict(list)
    for obj in listing.objects:
        by_dump[obj.dump].append(obj)
    for dump, objects in by_dump.items():
        if dump in plan.good:
            continue
        for obj in objects:
            if _gone(storage, obj, cutoff):
                plan.delete.append(obj)
    plan.delete.sort(key=_order)
    if replica is not None:
        doomed_dumps = {obj.dump for obj in plan.delete} - set(plan.good)
        for obj in scan(replica, env).objects:
            if obj.dump in plan.good:
                continue
            if (obj.is_partial and _gone(replica, obj, cutoff)) or (
                not obj.is_partial and obj.dump in doomed_dumps
            ):
                plan.replica_delete.append(obj)
        plan.replica_delete.sort(key=_order)
    doomed = {obj.dump for obj in plan.delete if obj.is_dump}
    plan.kept = [b for b in listing.complete if b.name not in doomed]

    backups_deleted = sorted({obj.dump for obj in plan.delete if obj.is_manifest})
    if len(plan.good) < keep_min and backups_deleted:
        why = "; ".join(f"{name}: {reason}" for name, reason in sorted(plan.bad.items()))
        plan.refusal = (
            f"Refusing to prune: only {len(plan.good)} good {env} backup(s), fewer than the "
            f"{keep_min} to keep (BACKUP_KEEP_MIN or --keep-min), and prune would delete "
            f"{len(backups_deleted)} older backup(s) ({', '.join(backups_deleted)}). "
            "Nothing was deleted."
            + (f" Not good: {why}." if why else "")
            + " Find out why (`backup list`, `backup verify`), or lower --keep-min."
        )
    return plan


def execute_prune(storage: Storage, plan: PrunePlan, replica: Storage | None = None) -> list[str]:
    """Delete what the plan says, in its order (the replica's first); return the primary's
    names deleted (the replica's are plan.replica_delete)."""
    if plan.refusal:
        raise PruneRefused(plan.refusal)
    protected = [obj.name for obj in plan.delete + plan.replica_delete if obj.dump in plan.good]
    if protected:  # the plan never holds one: a guard, checked before the first delete
        raise BackupError(f"prune would delete {protected[0]}, one of the good backups")
    if plan.replica_delete and replica is None:
        raise BackupError("prune planned deletes in the replica, but was given no replica")
    for obj in plan.replica_delete:
        assert replica is not None
        replica.delete(obj.name)
    deleted = []
    for obj in plan.delete:
        storage.delete(obj.name)
        deleted.append(obj.name)
    return deleted
