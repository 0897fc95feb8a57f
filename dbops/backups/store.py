"""Backup objects in the STORAGES["backups"] storage (a folder, or S3 through django-storages).

A backup is complete only when its manifest exists: data is streamed to a partial object
(NAME.<host>-<pid>.partial), renamed to NAME after pg_dump exited 0, and NAME.json (size,
sha256) is written last. A killed run therefore leaves at most a partial object or a dump
without manifest, which listing, restore and verify never take for a backup. In a
folder, the writer holds a lock on its partial file for as long as it (or its pg_dump)
lives, so `prune` removes a partial whose writer is gone at once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from django.core.files.storage import FileSystemStorage, Storage, storages

from dbops.backups import BackupError
from dbops.backups.names import (
    MANIFEST_SUFFIX,
    PARTIAL_SUFFIX,
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
    name = dump + MANIFEST_SUFFIX
    data = json.dumps(manifest, indent=2, sort_keys=True).encode()
    if isinstance(storage, FileSystemStorage):
        # Atomic on a folder too: a killed run never leaves half a manifest.
        folder = Path(storage.path(name)).parent
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".manifest-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, storage.path(name))
        return
    out = open_write(storage, name)
    with out:
        out.write(data)


def read_manifest(storage: Storage, dump: str) -> dict[str, Any] | None:
    try:
        data = b"".join(open_read(storage, dump + MANIFEST_SUFFIX))
        manifest = json.loads(data)
    except (OSError, ValueError):
        return None
    except Exception:  # noqa: BLE001 - S3 ClientError (NoSuchKey) and the like
        return None
    return manifest if isinstance(manifest, dict) else None


def project_objects(storage: Storage, env: str) -> list[BackupName]:
    """Every object in the storage whose name is one of this project's for `env`."""
    try:
        _dirs, files = storage.listdir("")
    except FileNotFoundError:
        return []
    found = [parse(name, env) for name in files]
    return [name for name in found if name is not None]


def complete_backups(storage: Storage, env: str) -> list[Backup]:
    """This environment's complete backups, newest first."""
    objects = project_objects(storage, env)
    dumps = {o.name: o for o in objects if o.is_dump}
    manifests = {o.dump for o in objects if o.is_manifest}
    backups = []
    for name, parsed in dumps.items():
        if name not in manifests:
            continue
        manifest = read_manifest(storage, name)
        if not manifest or manifest.get("name") != name:
            continue
        with suppress(OSError):
            size = storage.size(name)
            if size == manifest.get("size"):
                backups.append(
                    Backup(name, parsed.created, size, str(manifest.get("sha256")), manifest)
                )
    return sorted(backups, key=lambda b: b.name, reverse=True)


def find_backup(storage: Storage, env: str, name: str) -> Backup:
    """Return the backup called `name`, or the newest one for `latest`."""
    backups = complete_backups(storage, env)
    if name == "latest":
        if not backups:
            raise BackupError(
                f"There are no complete {env} backups in {describe(storage)}: run "
                "`python manage.py backup create` first."
            )
        return backups[0]
    for backup in backups:
        if backup.name == name:
            return backup
    hint = (
        "a .partial name is a running or interrupted backup"
        if name.endswith(PARTIAL_SUFFIX)
        else ""
    )
    raise BackupError(
        f"No complete backup named {name!r} in {describe(storage)}"
        + (f" ({hint})" if hint else "")
        + ": see `python manage.py backup list`."
    )


def delete_backup_objects(storage: Storage, objects: list[BackupName]) -> None:
    # Manifests first: an interrupted prune leaves a dump nobody takes for a backup.
    for obj in sorted(objects, key=lambda o: not o.is_manifest):
        storage.delete(obj.name)


def prune_plan(
    storage: Storage, env: str, keep_days: int, now: datetime
) -> tuple[list[BackupName], list[Backup]]:
    """Objects to delete, and the complete backups that stay.

    Deleted: this environment's objects older than keep_days, and partials whose writer
    is gone (at any age: a killed backup leaves a dump-sized object behind). Never: a
    partial whose writer still runs, another environment's or project's objects, and the
    newest complete backup, even when it is older than the retention.
    """
    cutoff = now - timedelta(days=keep_days)
    complete = complete_backups(storage, env)
    newest = complete[0].name if complete else None
    doomed = []
    for obj in project_objects(storage, env):
        if obj.dump == newest:
            continue
        alive = writer_alive(storage, obj) if obj.is_partial else None
        if alive is False or (alive is None and obj.created < cutoff):
            doomed.append(obj)
    doomed_dumps = {obj.dump for obj in doomed if not obj.is_partial}
    kept = [b for b in complete if b.name not in doomed_dumps]
    return doomed, kept
