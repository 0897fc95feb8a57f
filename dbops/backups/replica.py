"""Copies of each backup in a second bucket (another region) or a second folder.

The replica is STORAGES["backups_replica"] (settings: BACKUP_REPLICA_BUCKET with
BACKUP_REPLICA_REGION, or BACKUP_REPLICA_DIR). It holds the same names as the primary,
written in the same order: the dump first, checked, then its manifest, so that a replica
copy is a backup there only once its dump is known to match. A copy is checked against
the primary manifest's sha256:

- S3 to S3: a server-side `copy_object` with ChecksumAlgorithm=SHA256 (objects up to
  5 GB), after which S3 holds the full-object SHA256 of what it wrote; HEAD with
  ChecksumMode=ENABLED reads it back, so nothing is downloaded. Bigger objects go through
  boto3's managed multipart copy, whose checksum is a composite of the parts'; those (and
  objects written by anything else, without a SHA256) are read through and hashed.
- a folder, or a folder and a bucket: the bytes are streamed to a partial object
  (store.Partial) renamed into place, then read through and hashed.
"""

from __future__ import annotations

import base64
from contextlib import suppress
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.files.storage import Storage, storages

from dbops.backups import BackupError
from dbops.backups.manifest import ManifestError, check_manifest
from dbops.backups.names import MANIFEST_SUFFIX, parse
from dbops.backups.store import (
    Backup,
    Partial,
    _is_s3,
    _s3_key,
    describe,
    open_read,
    scan,
    stored_sha256,
    write_bytes,
)

ALIAS = "backups_replica"
SINGLE_COPY_MAX = 5 * 1024**3  # copy_object's limit; bigger objects need a multipart copy
OK, MISSING, CORRUPT = "ok", "missing", "corrupt"
NOT_CONFIGURED = (
    "No backup replica is configured: set BACKUP_REPLICA_BUCKET and BACKUP_REPLICA_REGION "
    "(or BACKUP_REPLICA_DIR for a folder) (docs/backups.md, 'Copies in a second region')."
)


class ReplicaError(BackupError):
    """A replica copy is missing, or does not match its manifest: the message says which."""


@dataclass
class ReplicaState:
    """What the replica holds for one backup."""

    name: str
    status: str  # ok, missing or corrupt
    detail: str = ""
    checked_by: str = ""  # "s3 checksum" (read back from S3) or "read" (hashed here)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def replica_storage() -> Storage | None:
    """The replica storage, or None when none is configured."""
    if ALIAS not in settings.STORAGES:
        return None
    try:
        return storages[ALIAS]
    except Exception as err:
        raise BackupError(
            f'STORAGES["{ALIAS}"] is not usable ({err}): check BACKUP_REPLICA_BUCKET, '
            "BACKUP_REPLICA_REGION or BACKUP_REPLICA_DIR (docs/backups.md)."
        ) from err


def require_replica() -> Storage:
    replica = replica_storage()
    if replica is None:
        raise BackupError(NOT_CONFIGURED)
    return replica


def stored_checksum(storage: Storage, name: str) -> tuple[str, str]:
    """The object's sha256 (hex) and how it was found: S3's own checksum, else read through."""
    if _is_s3(storage):
        s3: Any = storage
        head = s3.connection.meta.client.head_object(
            Bucket=s3.bucket_name, Key=_s3_key(s3, name), ChecksumMode="ENABLED"
        )
        value = head.get("ChecksumSHA256")
        # A multipart object's checksum is one of its parts' checksums ("...-N"): not ours.
        if value and "-" not in value and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
            return base64.b64decode(value).hex(), "s3 checksum"
    return stored_sha256(storage, name), "read"


def _exists(storage: Storage, name: str) -> bool:
    try:
        return storage.exists(name)
    except FileNotFoundError:
        return False


def check_dump(replica: Storage, backup: Backup) -> ReplicaState:
    """Whether the replica's dump of `backup` is there with the manifest's size and sha256."""
    name, where = backup.name, describe(replica)
    if not _exists(replica, name):
        return ReplicaState(name, MISSING, f"{name} is missing in {where}")
    size = replica.size(name)
    if size != backup.size:
        return ReplicaState(
            name, CORRUPT, f"{name} in {where} is {size} bytes, the manifest says {backup.size}"
        )
    sha256, how = stored_checksum(replica, name)
    if sha256 != backup.sha256:
        return ReplicaState(
            name, CORRUPT, f"the sha256 of {name} in {where} does not match its manifest", how
        )
    return ReplicaState(name, OK, f"{name} in {where} matches its manifest", how)


def check_copy(replica: Storage, backup: Backup) -> ReplicaState:
    """The replica's dump and manifest of `backup`, compared with the primary's manifest."""
    manifest, where = backup.name + MANIFEST_SUFFIX, describe(replica)
    if not _exists(replica, manifest):
        state = ReplicaState(backup.name, MISSING, f"{manifest} is missing in {where}")
        if not _exists(replica, backup.name):
            state.detail = f"{backup.name} and its manifest are missing in {where}"
        return state
    parsed = parse(backup.name)
    assert parsed is not None
    try:
        copy = check_manifest(b"".join(open_read(replica, manifest)), parsed)
    except ManifestError as err:
        return ReplicaState(backup.name, CORRUPT, f"in {where}: {err}")
    if copy != backup.manifest:
        return ReplicaState(
            backup.name, CORRUPT, f"{manifest} in {where} differs from the primary's manifest"
        )
    return check_dump(replica, backup)


def _s3_copy(storage: Any, replica: Any, name: str, size: int) -> None:
    """Server-side copy into the replica bucket, asking S3 for the object's SHA256."""
    client = replica.connection.meta.client
    source = {"Bucket": storage.bucket_name, "Key": _s3_key(storage, name)}
    params = dict(replica.get_object_parameters(name) or {})
    key = _s3_key(replica, name)
    if size <= SINGLE_COPY_MAX:
        client.copy_object(
            Bucket=replica.bucket_name,
            Key=key,
            CopySource=source,
            ChecksumAlgorithm="SHA256",
            **params,
        )
        return
    client.copy(
        source,
        replica.bucket_name,
        key,
        ExtraArgs={**params, "ChecksumAlgorithm": "SHA256"},
        Config=replica.transfer_config,
        SourceClient=storage.connection.meta.client,
    )


def _stream_copy(storage: Storage, replica: Storage, name: str) -> None:
    """Copy through this machine, to a partial renamed into place (never half an object)."""
    partial = Partial(replica, name)
    try:
        out = partial.open()
        with out:
            for chunk in open_read(storage, name):
                out.write(chunk)
        partial.finish(name)
    except BaseException:
        partial.abandon()
        raise


def replicate(storage: Storage, replica: Storage, backup: Backup) -> ReplicaState:
    """Copy `backup` (dump, checked, then manifest) to the replica; ReplicaError if it fails.

    An existing copy is replaced: its manifest goes first, so that the replica never
    holds a manifest over a dump it does not describe.
    """
    dump, manifest = backup.name, backup.name + MANIFEST_SUFFIX
    server_side = _is_s3(storage) and _is_s3(replica)
    with suppress(FileNotFoundError):
        replica.delete(manifest)
    if server_side:
        _s3_copy(storage, replica, dump, backup.size)
    else:
        _stream_copy(storage, replica, dump)
    state = check_dump(replica, backup)
    if not state.ok:
        raise ReplicaError(
            f"The copy of {dump} to {describe(replica)} does not match its manifest "
            f"({state.detail}): run `python manage.py backup replicate {dump}` again."
        )
    if server_side:
        _s3_copy(storage, replica, manifest, 0)
    else:
        write_bytes(replica, manifest, b"".join(open_read(storage, manifest)))
    state = check_copy(replica, backup)
    if not state.ok:
        raise ReplicaError(
            f"The copy of {dump} to {describe(replica)} is not complete ({state.detail}): "
            f"run `python manage.py backup replicate {dump}` again."
        )
    return state


@dataclass
class Row:
    """One backup name, on both sides."""

    name: str
    primary: str  # ok, missing or damaged
    replica: ReplicaState
    size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "primary": self.primary,
            "replica": self.replica.status,
            "replica_detail": self.replica.detail,
            "replica_checked_by": self.replica.checked_by,
        }


def both_sides(storage: Storage, replica: Storage, env: str) -> list[Row]:
    """Every backup name of `env` found on either side, newest first, with each side's state."""
    primary, copies = scan(storage, env), scan(replica, env)
    on_replica = {b.name: b for b in copies.complete}
    rows = []
    for backup in primary.complete:
        rows.append(Row(backup.name, OK, check_copy(replica, backup), backup.size))
    for name, why in primary.damaged.items():
        state = (
            ReplicaState(name, OK, "complete in the replica")
            if name in on_replica
            else ReplicaState(name, MISSING if name not in copies.damaged else CORRUPT, why)
        )
        rows.append(Row(name, "damaged", state))
    known = {row.name for row in rows}
    for backup in copies.complete:
        if backup.name not in known:
            state = ReplicaState(backup.name, OK, "complete in the replica only")
            rows.append(Row(backup.name, MISSING, state, backup.size))
    for name, why in copies.damaged.items():
        if name not in known:
            rows.append(Row(name, MISSING, ReplicaState(name, CORRUPT, why)))
    rows.sort(key=lambda r: r.name, reverse=True)
    return rows
