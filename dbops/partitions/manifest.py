"""A month's archive as its manifests list it: read strictly, written as a new version.

A month's archive lives in one folder of the STORAGES["backups"] storage:

    archives/<table>/<YYYY-MM>/part-<UTC YYYYmmddTHHMMSSZ>-<8 hex>.csv.gz   rows, gzipped CSV
    archives/<table>/<YYYY-MM>/manifest-<NNNNNN>.json                     every part

Manifests are never edited: each version lists every part of the one before (a part's
`restored_at` may be set, nothing else changes) plus what was added, and the newest is
the month's archive. Earlier releases wrote one object per month,
`archives/<table>/<partition>.csv.gz` with `<partition>.manifest.json`: such an archive
is read as the month's first part, and stays where it is.

Everything read is validated strictly: a manifest that does not parse, breaks the chain
of versions or lists a part that is missing or differs is refused with its name, never
read as something else.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from django.core.files.storage import Storage

from dbops.backups.store import describe, open_read
from dbops.partitions import ManifestError, PartitionError
from dbops.partitions.content import Content
from dbops.partitions.store import (
    IDENTIFIER,
    PART_NAME,
    ObjectExists,
    legacy_key,
    month_folder,
    write_once,
)
from dbops.partitions.tables import partition_name
from sqlmigrations.redact import redact

FORMAT = 1
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MANIFEST_NAME = re.compile(r"manifest-([0-9]{6})\.json")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PART_KEYS = {
    "object", "rows", "bytes", "sha256", "exported_at", "source", "columns", "content",
    "restored_at",
}  # fmt: skip
_MANIFEST_KEYS = {"format", "table", "month", "version", "written_at", "parts"}
_LEGACY_KEYS = {"table", "partition", "month", "rows", "sha256", "bytes", "object", "exported_at"}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Part:
    """One archived object: the rows of a month exported by one run."""

    key: str
    rows: int
    bytes: int
    sha256: str
    exported_at: str
    source: str  # the table the rows came from
    columns: tuple[str, ...]  # empty for a legacy part: its CSV header says
    content: Content | None  # None for a legacy part
    restored_at: str | None = None  # set once its rows went back into the table

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def live(self) -> bool:
        """Its rows are in the archive only (not restored into the table since)."""
        return self.restored_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "object": self.key,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "exported_at": self.exported_at,
            "source": self.source,
            "columns": list(self.columns),
            "content": self.content.digest if self.content else None,
            "restored_at": self.restored_at,
        }


@dataclass
class MonthArchive:
    """What the storage holds for one month, as its newest manifest says."""

    table: str
    month: date
    location: str  # where the storage is, for messages
    version: int = 0  # the newest manifest's; 0: none (a legacy archive may still be there)
    parts: list[Part] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # part objects no manifest lists

    @property
    def folder(self) -> str:
        return month_folder(self.table, self.month)

    @property
    def live_parts(self) -> list[Part]:
        return [p for p in self.parts if p.live]

    @property
    def next_manifest(self) -> str:
        return f"{self.folder}/manifest-{self.version + 1:06d}.json"

    def where(self, key: str) -> str:
        return f"{self.location}/{key}"


# --- reading -------------------------------------------------------------------------


def _refuse(where: str, problem: str) -> ManifestError:
    return ManifestError(
        f"{where} {problem}: the archive is refused and nothing was changed; repair that "
        "file or move it aside (older manifest versions stay), then run again"
    )


def _storage_error(location: str, err: Exception) -> PartitionError:
    return PartitionError(
        redact(
            f"cannot reach the archive storage {location}: {err}; check BACKUP_BUCKET or "
            "BACKUP_DIR and the credentials (nothing was changed)"
        )
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate key(s) {', '.join(dupes)}")
    return dict(pairs)


def _load_json(storage: Storage, key: str, where: str) -> dict[str, Any]:
    try:
        data = b"".join(open_read(storage, key))
    except Exception as err:  # OSError, S3's ClientError: the object is unreadable
        raise _refuse(where, f"cannot be read ({type(err).__name__})") from err
    if len(data) > MAX_MANIFEST_BYTES:
        raise _refuse(where, f"is {len(data)} bytes, more than any manifest")
    try:
        doc = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as err:
        raise _refuse(where, f"is not valid JSON ({err})") from err
    if not isinstance(doc, dict):
        raise _refuse(where, "is not a JSON object")
    return doc


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a manifest may hold")


def _count(value: Any, what: str, where: str) -> int:
    if type(value) is not int or value < 0:
        raise _refuse(where, f"has {what} = {value!r}, not a whole number >= 0")
    return value


def _time(value: Any, what: str, where: str) -> str:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise _refuse(where, f"has {what} = {value!r}, not an ISO 8601 time with its zone")
    return str(value)


def _part(item: Any, index: int, archive: MonthArchive, where: str) -> Part:
    at = f"parts[{index}]"
    if not isinstance(item, dict) or set(item) != _PART_KEYS:
        found = sorted(item) if isinstance(item, dict) else type(item).__name__
        raise _refuse(where, f"has {at} = {found}, not the fields {sorted(_PART_KEYS)}")
    key = item["object"]
    legacy = key == legacy_key(archive.table, archive.month)
    folder, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", "")
    if not legacy and not (folder == archive.folder and PART_NAME.fullmatch(name)):
        raise _refuse(where, f"has {at}.object = {key!r}, not a part of this month's folder")
    sha = item["sha256"]
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise _refuse(where, f"has {at}.sha256 = {sha!r}, not 64 hex digits")
    columns, source = item["columns"], item["source"]
    if not isinstance(source, str) or not IDENTIFIER.fullmatch(source):
        raise _refuse(where, f"has {at}.source = {source!r}, not a table name")
    if not isinstance(columns, list) or not all(
        isinstance(c, str) and IDENTIFIER.fullmatch(c) for c in columns
    ):
        raise _refuse(where, f"has {at}.columns = {columns!r}, not a list of column names")
    if len(set(columns)) != len(columns) or (not columns and not legacy):
        raise _refuse(where, f"has {at}.columns = {columns!r}: empty or repeated")
    rows = _count(item["rows"], f"{at}.rows", where)
    content = None
    if item["content"] is not None or not legacy:
        try:
            text = item["content"] if isinstance(item["content"], str) else ""
            content = Content.parse(rows, text)
        except ValueError as err:
            raise _refuse(where, f"has {at}.content = {item['content']!r}: {err}") from err
    restored = item["restored_at"]
    return Part(
        key=key,
        rows=rows,
        bytes=_count(item["bytes"], f"{at}.bytes", where),
        sha256=sha,
        exported_at=_time(item["exported_at"], f"{at}.exported_at", where),
        source=source,
        columns=tuple(columns),
        content=content,
        restored_at=None if restored is None else _time(restored, f"{at}.restored_at", where),
    )


def _manifest(doc: dict[str, Any], version: int, archive: MonthArchive, where: str) -> list[Part]:
    if set(doc) != _MANIFEST_KEYS:
        raise _refuse(where, f"has the fields {sorted(doc)}, not {sorted(_MANIFEST_KEYS)}")
    if doc["format"] != FORMAT:
        raise _refuse(where, f"is format {doc['format']!r}; this release reads format {FORMAT}")
    expected = {"table": archive.table, "month": f"{archive.month:%Y-%m}", "version": version}
    for name, value in expected.items():
        if doc[name] != value:
            raise _refuse(where, f"says {name} = {doc[name]!r} where its name says {value!r}")
    _time(doc["written_at"], "written_at", where)
    if not isinstance(doc["parts"], list):
        raise _refuse(where, "has parts that are not a list")
    parts = [_part(item, i, archive, where) for i, item in enumerate(doc["parts"])]
    keys = [p.key for p in parts]
    if len(set(keys)) != len(keys):
        raise _refuse(where, "lists a part twice")
    return parts


def _legacy(storage: Storage, archive: MonthArchive) -> Part | None:
    key = legacy_key(archive.table, archive.month).removesuffix(".csv.gz") + ".manifest.json"
    if not storage.exists(key):
        return None
    where = archive.where(key)
    doc = _load_json(storage, key, where)
    if set(doc) != _LEGACY_KEYS:
        raise _refuse(where, f"has the fields {sorted(doc)}, not {sorted(_LEGACY_KEYS)}")
    expected = {
        "table": archive.table,
        "partition": partition_name(archive.table, archive.month),
        "month": f"{archive.month:%Y-%m}",
        "object": legacy_key(archive.table, archive.month),
    }
    for name, value in expected.items():
        if doc[name] != value:
            raise _refuse(where, f"says {name} = {doc[name]!r} where its name says {value!r}")
    item = {
        **{k: doc[k] for k in ("object", "rows", "bytes", "sha256", "exported_at")},
        "source": doc["partition"],
        "columns": [],
        "content": None,
        "restored_at": None,
    }
    return _part(item, 0, archive, where)


def _follows(before: list[Part], after: list[Part], where: str) -> None:
    """Every part of the version before is in the next one, unchanged but for restored_at."""
    later = {p.key: p for p in after}
    for part in before:
        now = later.get(part.key)
        if now is None:
            raise _refuse(where, f"leaves out {part.name}, which the version before lists")
        allowed = part.restored_at is None or now.restored_at == part.restored_at
        if replace(now, restored_at=part.restored_at) != part or not allowed:
            raise _refuse(where, f"changes {part.name} from what the version before says")


def read_month(storage: Storage, table: str, month: date) -> MonthArchive:
    """Read and validate the archive of `month` (an empty one when nothing was archived)."""
    archive = MonthArchive(table, month, describe(storage))
    try:
        try:
            _dirs, files = storage.listdir(archive.folder)
        except FileNotFoundError:
            files = []
        legacy = _legacy(storage, archive)
        legacy_object = storage.exists(legacy_key(table, month))
    except ManifestError:
        raise
    except Exception as err:  # OSError, botocore's errors: storage unreachable
        raise _storage_error(archive.location, err) from err
    versions = sorted(int(m[1]) for f in files if (m := MANIFEST_NAME.fullmatch(f)))
    if versions and versions != list(range(1, len(versions) + 1)):
        raise _refuse(
            archive.where(archive.folder),
            f"holds manifest versions {versions}: one is missing (expected 1 to {versions[-1]})",
        )
    previous = [legacy] if legacy else []
    for version in versions:
        key = f"{archive.folder}/manifest-{version:06d}.json"
        where = archive.where(key)
        parts = _manifest(_load_json(storage, key, where), version, archive, where)
        _follows(previous, parts, where)
        previous = parts
    archive.version = versions[-1] if versions else 0
    archive.parts = previous
    listed = {p.key for p in previous}
    archive.unlisted = sorted(
        f"{archive.folder}/{f}"
        for f in files
        if PART_NAME.fullmatch(f) and f"{archive.folder}/{f}" not in listed
    )
    if legacy_object and legacy is None:
        archive.unlisted.insert(0, legacy_key(table, month))
    return archive


def check_present(storage: Storage, archive: MonthArchive) -> None:
    """Refuse unless every listed part exists with the size its manifest says."""
    for part in archive.parts:
        try:
            size = storage.size(part.key)
        except FileNotFoundError:  # S3Storage turns a 404 into this too
            size = None
        except Exception as err:  # OSError, botocore's errors
            raise _storage_error(archive.location, err) from err
        if size is None:
            raise ManifestError(
                f"{archive.where(part.key)} is listed in the manifest of {archive.month:%Y-%m} "
                "but missing: the archive is damaged and nothing was changed; restore the "
                "object from the bucket's versions or a copy"
            )
        if size != part.bytes:
            raise ManifestError(
                f"{archive.where(part.key)} is {size} bytes where the manifest of "
                f"{archive.month:%Y-%m} says {part.bytes}: the archive is damaged and nothing "
                "was changed; restore the object from the bucket's versions or a copy"
            )


# --- writing -------------------------------------------------------------------------


def write_manifest(storage: Storage, archive: MonthArchive, parts: list[Part]) -> str:
    """Write the next manifest version listing `parts`; return its key."""
    key = archive.next_manifest
    doc = {
        "format": FORMAT,
        "table": archive.table,
        "month": f"{archive.month:%Y-%m}",
        "version": archive.version + 1,
        "written_at": utc_now(),
        "parts": [p.to_json() for p in parts],
    }
    data = json.dumps(doc, indent=2, sort_keys=True).encode()
    try:
        write_once(storage, key, io.BytesIO(data), len(data), "application/json")
    except ObjectExists as err:
        raise PartitionError(
            f"{archive.where(key)} was written by another run meanwhile: run again (this "
            "run's part stays unlisted, and the table was not dropped)"
        ) from err
    return key
