"""Archive objects in the backup storage: written once, never replaced; read back checked.

An object is created only where none exists: in a folder by a hard link, which fails on
an existing name (files 0600, folders 0700, whatever the umask); on S3 by a conditional
put, IfNoneMatch="*". A part is read as it streams, and `PartStream.finish` proves its
bytes, sha256 and row count are the ones its manifest lists (manifest.py).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import re
import secrets
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from django.core.files.storage import FileSystemStorage, Storage, storages

from dbops.backups.store import describe, open_read
from dbops.partitions import ManifestError, PartitionError
from dbops.partitions.tables import partition_name

if TYPE_CHECKING:
    from dbops.partitions.manifest import Part

ARCHIVE_PREFIX = "archives"
CHUNK = 1024 * 1024
# One PUT up to this size; above it a multipart upload, completed only if the key is free.
S3_SINGLE_PUT = 256 * 1024 * 1024
S3_PART_SIZE = 64 * 1024 * 1024
PART_NAME = re.compile(r"part-([0-9]{8}T[0-9]{6}Z)-([0-9a-f]{8})\.csv\.gz")
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class ObjectExists(PartitionError):
    """The key is taken: archives are write-once, so nothing was written."""


def archive_storage() -> Storage:
    try:
        return storages["backups"]
    except Exception as err:
        raise PartitionError(
            f'STORAGES["backups"] is not usable ({err}): set BACKUP_BUCKET for S3 or '
            "BACKUP_DIR for a folder (docs/backups.md)"
        ) from err


def month_folder(table: str, month: date) -> str:
    return f"{ARCHIVE_PREFIX}/{table}/{month:%Y-%m}"


def legacy_key(table: str, month: date) -> str:
    return f"{ARCHIVE_PREFIX}/{table}/{partition_name(table, month)}.csv.gz"


def new_part_key(table: str, month: date, now: datetime) -> str:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{month_folder(table, month)}/part-{stamp}-{secrets.token_hex(4)}.csv.gz"


class _ChunkReader(io.RawIOBase):
    """A readable stream over chunks; counts them, and hashes them when given a digest."""

    def __init__(self, chunks: Iterator[bytes], digest: Any = None) -> None:
        self.chunks, self.digest, self.pending, self.size = chunks, digest, b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            if self.digest is not None:
                self.digest.update(chunk)
            self.size += len(chunk)
            self.pending = chunk
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count


class PartStream:
    """A part's CSV, decompressed as it streams; `finish` proves the bytes were the listed ones."""

    def __init__(self, storage: Storage, part: Part, where: str) -> None:
        self.part, self.where = part, where
        try:
            self.raw = _ChunkReader(open_read(storage, part.key), hashlib.sha256())
            self.gz = gzip.GzipFile(fileobj=io.BufferedReader(self.raw, CHUNK), mode="rb")
            header = self.gz.readline().decode()
        except Exception as err:  # missing object, S3 error, not gzip
            raise self._damaged(f"cannot be read ({type(err).__name__}: {err})") from err
        columns = next(csv.reader([header]), [])
        if not columns or not all(IDENTIFIER.fullmatch(c) for c in columns):
            raise self._damaged(f"starts with {header.strip()[:80]!r}, not a CSV header")
        if part.columns and tuple(columns) != part.columns:
            raise self._damaged(f"has the columns {columns}, the manifest {list(part.columns)}")
        self.columns = tuple(columns)

    def _damaged(self, problem: str) -> ManifestError:
        return ManifestError(
            f"{self.where} {problem}: the part is damaged or not the one the manifest lists; "
            "nothing was changed"
        )

    def chunks(self) -> Iterator[bytes]:
        """The CSV rows after the header, as bytes."""
        try:
            while data := self.gz.read(CHUNK):
                yield data
        except (OSError, EOFError, zlib.error) as err:
            raise self._damaged(f"is not a whole gzip stream ({err})") from err

    def count_rows(self) -> int:
        text = io.TextIOWrapper(_ChunkReader(self.chunks()), encoding="utf-8", newline="")
        try:
            return sum(1 for _ in csv.reader(text))
        except (UnicodeDecodeError, csv.Error) as err:
            raise self._damaged(f"is not the CSV it should be ({err})") from err

    def finish(self, rows: int) -> None:
        """Refuse unless every byte was read and the bytes, hash and rows are the listed ones."""
        while self.raw.read(CHUNK):
            pass
        if self.raw.size != self.part.bytes or self.raw.digest.hexdigest() != self.part.sha256:
            raise self._damaged(
                f"is {self.raw.size} bytes with sha256 {self.raw.digest.hexdigest()[:12]}... "
                f"where the manifest says {self.part.bytes} bytes, {self.part.sha256[:12]}..."
            )
        if rows != self.part.rows:
            raise self._damaged(f"holds {rows} rows where the manifest says {self.part.rows}")


def verify_part(storage: Storage, part: Part, where: str) -> None:
    """Read the part back: its bytes, sha256, header and row count are the listed ones."""
    stream = PartStream(storage, part, where)
    stream.finish(stream.count_rows())


# --- writing -------------------------------------------------------------------------


def write_once(storage: Storage, key: str, data: IO[bytes], size: int, content_type: str) -> None:
    """Create object `key` from `data`; raise ObjectExists, never replace one."""
    if isinstance(storage, FileSystemStorage):
        _write_once_folder(storage, key, data)
        return
    from storages.backends.s3 import S3Storage

    if isinstance(storage, S3Storage):
        _write_once_s3(storage, key, data, size, content_type)
        return
    raise PartitionError(
        f"archives are written once and never replaced, which {type(storage).__name__} "
        'cannot promise: make STORAGES["backups"] a folder (BACKUP_DIR) or S3 (BACKUP_BUCKET)'
    )


def _make_folders(root: Path, folder: Path) -> None:
    """Create `folder` and its missing parents up to `root` as 0700 (whatever the umask)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder == root or folder.parent == folder:
            break
        folder = folder.parent
    for path in reversed(missing):
        with suppress(FileExistsError):
            path.mkdir(mode=0o700)
            path.chmod(0o700)


def _write_once_folder(storage: FileSystemStorage, key: str, data: IO[bytes]) -> None:
    path = Path(storage.path(key))
    _make_folders(Path(storage.location), path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(data, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails where the name is taken
        except FileExistsError as err:
            raise ObjectExists(f"{path} exists: archives are never replaced") from err
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _write_once_s3(storage: Any, key: str, data: IO[bytes], size: int, content_type: str) -> None:
    from botocore.exceptions import ClientError

    client = storage.connection.meta.client
    params = {**storage.get_object_parameters(key), "ContentType": content_type}
    if storage.default_acl and "ACL" not in params:
        params["ACL"] = storage.default_acl
    target = {"Bucket": storage.bucket_name, "Key": storage._normalize_name(key)}
    try:
        if size <= S3_SINGLE_PUT:
            client.put_object(**target, Body=data, IfNoneMatch="*", **params)
            return
        upload = client.create_multipart_upload(**target, **params)["UploadId"]
        try:
            done = []
            while chunk := data.read(S3_PART_SIZE):
                number = len(done) + 1
                sent = client.upload_part(**target, UploadId=upload, PartNumber=number, Body=chunk)
                done.append({"ETag": sent["ETag"], "PartNumber": number})
            client.complete_multipart_upload(
                **target, UploadId=upload, MultipartUpload={"Parts": done}, IfNoneMatch="*"
            )
        except BaseException:
            with suppress(Exception):
                client.abort_multipart_upload(**target, UploadId=upload)
            raise
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in (
            "PreconditionFailed",
            "ConditionalRequestConflict",
        ):
            raise ObjectExists(f"{describe(storage)}/{key} exists: never replaced") from err
        raise
