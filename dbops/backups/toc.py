"""Read the table of contents of a pg_dump custom-format archive, with each entry's dependencies.

`pg_restore --list` prints the entries but not what each depends on; the dependencies
say which object an ACL or COMMENT entry decorates, and whether the archive defines that
object at all. The layout is pg_backup_archiver.c's ReadHead and ReadToc (archive
versions 1.12 to 1.16: PostgreSQL 11 to 18); the table of contents comes first in the
file, so only the archive's first bytes are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MAGIC = b"PGDMP"
FORMAT_CUSTOM = 1
OLDEST, NEWEST = (1, 12), (1, 16)


class ArchiveFormatError(ValueError):
    """The bytes are not a custom-format archive of a version this reader knows."""


@dataclass(frozen=True)
class TocEntry:
    """One entry of the archive: `dump_id` is the number `pg_restore --list` starts a line with."""

    dump_id: int
    desc: str
    namespace: str
    tag: str
    owner: str
    deps: tuple[int, ...]


class _Reader:
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = bytearray()
        self.int_size = 4
        self.offset_size = 8

    def take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise ArchiveFormatError("the archive ends inside its table of contents")
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def byte(self) -> int:
        return self.take(1)[0]

    def int(self) -> int:
        # A sign byte, then int_size bytes, least significant first.
        sign = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if sign else value

    def str(self) -> str | None:
        length = self.int()
        return None if length < 0 else self.take(length).decode("utf-8", errors="replace")


def read_entries(chunks: Iterable[bytes]) -> list[TocEntry]:
    """Return the entries of the archive whose bytes `chunks` yields (only its head is read)."""
    r = _Reader(chunks)
    if r.take(len(MAGIC)) != MAGIC:
        raise ArchiveFormatError("not a pg_dump archive (no PGDMP header)")
    version = (r.byte(), r.byte())
    r.byte()  # revision
    if not OLDEST <= version <= NEWEST:
        raise ArchiveFormatError(
            f"archive version {version[0]}.{version[1]} is not one this reader knows "
            f"({OLDEST[0]}.{OLDEST[1]} to {NEWEST[0]}.{NEWEST[1]})"
        )
    r.int_size, r.offset_size = r.byte(), r.byte()
    if r.byte() != FORMAT_CUSTOM:
        raise ArchiveFormatError("not a custom-format (-Fc) archive")
    if version >= (1, 15):
        r.byte()  # compression algorithm
    else:
        r.int()  # compression level
    for _ in range(7):  # creation time: sec, min, hour, day, month, year, isdst
        r.int()
    for _ in range(3):  # database name, server version, pg_dump version
        r.str()
    return [_entry(r, version) for _ in range(r.int())]


def _entry(r: _Reader, version: tuple[int, int]) -> TocEntry:
    dump_id = r.int()
    r.int()  # had dumper
    r.str(), r.str()  # catalog id: table oid, oid
    tag, desc = r.str() or "", r.str() or ""
    r.int()  # section
    r.str(), r.str(), r.str()  # definition, drop statement, copy statement
    namespace = r.str() or ""
    r.str()  # tablespace
    if version >= (1, 14):
        r.str()  # table access method
    if version >= (1, 16):
        r.int()  # relkind
    owner = r.str() or ""
    r.str()  # "with oids", always "false"
    deps: list[int] = []
    while (dep := r.str()) is not None:
        deps.append(int(dep))
    r.take(1 + r.offset_size)  # custom format: data state and offset
    return TocEntry(dump_id, desc, namespace, tag, owner, tuple(deps))
