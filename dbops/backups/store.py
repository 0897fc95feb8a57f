"""Backup objects in the STORAGES["backups"] storage (a folder, or S3 through django-storages).

A backup is complete only when its manifest exists and describes it (manifest.py): data
is streamed to a partial object (NAME.<host>-<pid>.partial), renamed to NAME after
pg_dump exited 0, and NAME.json (size, sha256) is written last. A killed run therefore
leaves at most a partial object or a dump without manifest, which listing, restore and
verify never take for a backup. In a folder, the writer holds a lock on its partial file
for as long as it (or its pg_dump) lives, so `prune` removes a partial whose writer is
gone at once.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.core.files.storage import FileSystemStorage, Storage, storages

from dbops.backups import BackupError
from dbops.backups.manifest import ManifestError, check_manifest
from dbops.backups.names import (
    DUMP_SUFFIX,
    MANIFEST_SUFFIX,
    PROJECT,
    BackupName,
    parse,
    partial_name,
    this_host,
)

CHUNK = 1024 * 1024
S3_PART_SIZE = 16 * 1024 * 1024  # 10,000 parts of 16 MiB: dumps up to ~160 GB


@dataclass
class Backup:
    """A complete backup: its dump object and the manifest written after it."""

    name: str
    created: datetime
    size: int
    sha256: str
    manifest: dict[str, Any] = field(default_factory=dict)


def backup_storage() -> Storage:
    try:
        return storages["backups"]
    except Exception as err:
        raise BackupError(
            f'STORAGES["backups"] is not usable ({err}): set BACKUP_BUCKET for S3 or '
            "BACKUP_DIR for a folder (docs/backups.md)."
        ) from err


def _is_s3(storage: Storage) -> bool:
    return hasattr(storage, "bucket") and hasattr(storage, "_normalize_name")


def _s3_key(storage: Any, name: str) -> str:
    return str(storage._normalize_name(name))


def describe(storage: Storage) -> str:
    if isinstance(storage, FileSystemStorage):
        return str(storage.location)
    if _is_s3(storage):
        return f"s3://{storage.bucket_name}/{storage.location}".rstrip("/")  # type: ignore[attr-defined]
    return type(storage).__name__


def open_write(storage: Storage, name: str) -> IO[bytes]:
    """Open `name` for streaming writes (S3: a multipart upload, completed on close)."""
    if isinstance(storage, FileSystemStorage):
        path = Path(storage.path(name))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        return os.fdopen(fd, "wb", buffering=CHUNK)
    if _is_s3(storage):
        from storages.backends.s3 import S3File

        return S3File(_s3_key(storage, name), "wb", storage, buffer_size=S3_PART_SIZE)  # type: ignore[return-value]
    return storage.open(name, "wb")  # type: ignore[return-value]


def open_read(storage: Storage, name: str) -> Iterator[bytes]:
    """Yield the object's bytes in chunks, without a local copy."""
    if isinstance(storage, FileSystemStorage):
        with open(storage.path(name), "rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk
        return
    if _is_s3(storage):
        body = storage.bucket.Object(_s3_key(storage, name)).get()["Body"]  # type: ignore[attr-defined]
        yield from body.iter_chunks(CHUNK)
        return
    with storage.open(name, "rb") as fh:
        yield from fh.chunks(CHUNK)


def rename(storage: Storage, old: str, new: str) -> None:
    if isinstance(storage, FileSystemStorage):
        os.replace(storage.path(old), storage.path(new))
        return
    if _is_s3(storage):
        s3: Any = storage
        params = s3.get_object_parameters(new)
        s3.bucket.Object(_s3_key(s3, new)).copy(
            {"Bucket": s3.bucket_name, "Key": _s3_key(s3, old)},
            ExtraArgs=params or None,
            Config=s3.transfer_config,
        )
        s3.delete(old)
        return
    out = open_write(storage, new)
    with out:
        for chunk in open_read(storage, old):
            out.write(chunk)
    storage.delete(old)


class Partial:
    """A partial object that this process writes, until it is finished or abandoned.

    In a folder the file is created locked (flock) under a temporary name and renamed
    into place, so that no moment exists when it is there unlocked while its writer
    lives; the lock goes when the last process holding it (this one, or the pg_dump it
    handed `lock_fd` to) ends.
    """

    def __init__(self, storage: Storage, dump: str) -> None:
        self.storage = storage
        self.name = partial_name(dump, this_host(), os.getpid())
        self.lock_fd: int | None = None
        if isinstance(storage, FileSystemStorage):
            path = self.path
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")  # mode 0600
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(tmp, path)
            self.lock_fd = fd

    @property
    def path(self) -> Path:
        return Path(self.storage.path(self.name))

    def open(self) -> IO[bytes]:
        """A file to stream into (S3: a multipart upload, completed on close)."""
        if self.lock_fd is not None:
            return os.fdopen(os.dup(self.lock_fd), "wb", buffering=CHUNK)  # the lock stays
        return open_write(self.storage, self.name)

    def finish(self, final: str) -> None:
        """Rename to `final` (still locked, so prune never sees it unlocked), then unlock."""
        rename(self.storage, self.name, final)
        self._unlock()

    def abandon(self) -> None:
        """Delete what was written, then unlock."""
        with suppress(Exception):
            self.storage.delete(self.name)
        self._unlock()

    def _unlock(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def writer_alive(storage: Storage, obj: BackupName) -> bool | None:
    """Whether the process writing partial `obj` still runs; None when it cannot be told.

    A folder answers by the writer's lock; elsewhere (S3) the name's host and pid answer
    for a writer on this machine, and nothing does for one elsewhere.
    """
    if isinstance(storage, FileSystemStorage):
        try:
            fd = os.open(storage.path(obj.name), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return True
            raise
        finally:
            os.close(fd)
        return False
    if obj.writer_pid is None or obj.writer_host != this_host():
        return None
    try:
        os.kill(obj.writer_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def write_manifest(storage: Storage, dump: str, manifest: dict[str, Any]) -> None:
    write_bytes(
        storage, dump + MANIFEST_SUFFIX, json.dumps(manifest, indent=2, sort_keys=True).encode()
    )


def write_bytes(storage: Storage, name: str, data: bytes) -> None:
    """Write a small object whole: on a folder atomically (a killed run never leaves half a
    manifest), on S3 as one upload (an object appears only when complete)."""
    if isinstance(storage, FileSystemStorage):
        folder = Path(storage.path(name)).parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".manifest-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, storage.path(name))
        return
    out = open_write(storage, name)
    with out:
        out.write(data)


def read_manifest(storage: Storage, dump: BackupName) -> dict[str, Any]:
    """The checked manifest of `dump`; ManifestError (naming it) when missing or bad."""
    name = dump.dump + MANIFEST_SUFFIX
    try:
        data = b"".join(open_read(storage, name))
    except FileNotFoundError as err:
        raise ManifestError(f"{name} is missing") from err
    return check_manifest(data, dump)


def project_objects(storage: Storage, env: str) -> list[BackupName]:
    """Every object in the storage whose name is one of this project's for `env`."""
    try:
        _dirs, files = storage.listdir("")
    except FileNotFoundError:
        return []
    found = [parse(name, env) for name in files]
    return [name for name in found if name is not None]


@dataclass
class Listing:
    """What the storage holds for one environment."""

    complete: list[Backup]  # newest first
    damaged: dict[str, str]  # dump name: why its manifest does not make it a backup
    objects: list[BackupName]


def scan(storage: Storage, env: str) -> Listing:
    """Sort this environment's objects into complete backups, damaged ones and the rest.

    A dump without a manifest is an interrupted backup, not a damaged one; a manifest
    that is bad, whose size differs from its dump's, or whose dump is gone, is damaged.
    """
    objects = project_objects(storage, env)
    dumps = {o.name: o for o in objects if o.is_dump}
    complete, damaged = [], {}
    for manifest in (o for o in objects if o.is_manifest):
        dump = dumps.get(manifest.dump)
        if dump is None:
            damaged[manifest.dump] = f"{manifest.name} has no dump {manifest.dump} beside it"
            continue
        try:
            data = read_manifest(storage, dump)
        except ManifestError as err:
            damaged[dump.name] = str(err)
            continue
        size = storage.size(dump.name)
        if size != data["size"]:
            damaged[dump.name] = (
                f"{dump.name} is {size} bytes, its manifest {manifest.name} says {data['size']}"
            )
            continue
        complete.append(Backup(dump.name, dump.created, size, data["sha256"], data))
    complete.sort(key=lambda b: b.name, reverse=True)
    return Listing(complete, damaged, objects)


def complete_backups(storage: Storage, env: str) -> list[Backup]:
    """This environment's complete backups, newest first."""
    return scan(storage, env).complete


def check_backup_name(name: str, env: str) -> None:
    """Refuse anything but `latest` or a backup name of this environment (CLI input)."""
    if name == "latest":
        return
    parsed = parse(name)
    if parsed is None or "/" in name:
        raise BackupError(
            f"{name!r} is not a backup name: use `latest` or a name from `backup list`, "
            f"e.g. {PROJECT}-{env}-20261126T030000Z{DUMP_SUFFIX}."
        )
    if parsed.env != env:
        raise BackupError(
            f"{name} is a backup of environment {parsed.env!r}, and this is {env!r} "
            "(BACKUP_ENV): set BACKUP_ENV to restore another environment's backup."
        )
    if parsed.is_partial:
        raise BackupError(
            f"No complete backup named {name!r} (a .partial name is a running or "
            "interrupted backup): see `python manage.py backup list`."
        )
    if not parsed.is_dump:
        raise BackupError(f"{name} is a manifest: name its dump, {parsed.dump}.")


def find_backup(storage: Storage, env: str, name: str) -> Backup:
    """Return the backup called `name`, or the newest one for `latest`; refuse a damaged one."""
    check_backup_name(name, env)
    listing = scan(storage, env)
    if name == "latest":
        if not listing.complete:
            raise BackupError(
                f"There are no complete {env} backups in {describe(storage)}: run "
                "`python manage.py backup create` first."
            )
        newest = listing.complete[0]
        newer_damaged = sorted((n for n in listing.damaged if n > newest.name), reverse=True)
        if newer_damaged:
            raise ManifestError(
                f"The newest backup {newer_damaged[0]} is damaged "
                f"({listing.damaged[newer_damaged[0]]}): `latest` would restore the older "
                f"{newest.name}; name the backup to restore (`backup list`)."
            )
        return newest
    if name in listing.damaged:
        raise ManifestError(f"Backup {name} is not restored: {listing.damaged[name]}.")
    for backup in listing.complete:
        if backup.name == name:
            return backup
    raise BackupError(
        f"No complete backup named {name!r} in {describe(storage)}: see "
        "`python manage.py backup list`."
    )


def stored_sha256(storage: Storage, name: str) -> str:
    """The sha256 of the stored object, read through once."""
    digest = hashlib.sha256()
    for chunk in open_read(storage, name):
        digest.update(chunk)
    return digest.hexdigest()
