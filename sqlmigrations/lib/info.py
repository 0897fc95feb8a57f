"""Every migration file and history row with its state, as Flyway's `info` reports them.

A translation of Flyway's MigrationInfoServiceImpl.refresh() and MigrationInfoImpl.getState()
(with ResolvedMigration.getState and BaseAppliedMigration.getState): the same states, under
the same display names, decided in the same order.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.history import (
    TYPE_BASELINE,
    TYPE_DELETE,
    TYPE_SQL,
    TYPE_UNDO,
    HistoryRow,
)
from sqlmigrations.lib.versions import Version

# Row types Flyway calls synthetic: markers rather than migrations (CoreMigrationType).
SYNTHETIC_TYPES = frozenset({"SCHEMA", TYPE_BASELINE, TYPE_DELETE})


class State(enum.Enum):
    """Flyway's MigrationState, valued by its display name."""

    PENDING = "Pending"
    ABOVE_TARGET = "Above Target"
    BELOW_BASELINE = "Below Baseline"
    BASELINE_IGNORED = "Ignored (Baseline)"
    BASELINE = "Baseline"
    IGNORED = "Ignored"
    MISSING_SUCCESS = "Missing"
    MISSING_FAILED = "Failed (Missing)"
    SUCCESS = "Success"
    UNDONE = "Undone"
    FAILED = "Failed"
    OUT_OF_ORDER = "Out of Order"
    FUTURE_SUCCESS = "Future"
    FUTURE_FAILED = "Failed (Future)"
    OUTDATED = "Outdated"
    SUPERSEDED = "Superseded"
    DELETED = "Deleted"

    @property
    def applied(self) -> bool:
        return self not in _NOT_APPLIED

    @property
    def failed(self) -> bool:
        return self in (State.FAILED, State.MISSING_FAILED, State.FUTURE_FAILED)


_NOT_APPLIED = frozenset(
    {
        State.PENDING,
        State.ABOVE_TARGET,
        State.BELOW_BASELINE,
        State.BASELINE_IGNORED,
        State.IGNORED,
    }
)


@dataclass(frozen=True)
class MigrationInfo:
    """One line of `info`: a file, a history row, or both."""

    state: State
    version: Version | None
    description: str
    type: str
    script: str
    file: MigrationFile | None
    row: HistoryRow | None
    undoable: str  # "Yes", "No" or "" as Flyway prints it
    checksum_matches: bool | None = None  # None when there is no file or no row

    @property
    def category(self) -> str:
        """Return Flyway's category: Versioned, Repeatable, Baseline, or "" for markers."""
        if self.type == TYPE_BASELINE:
            return "Baseline"
        if self.type in SYNTHETIC_TYPES:
            return ""
        return "Repeatable" if self.version is None else "Versioned"

    def as_json(self) -> dict[str, Any]:
        """Return Flyway's InfoOutput fields (camelCase), plus checksums and the rank."""
        row = self.row
        return {
            "category": self.category,
            "version": str(self.version) if self.version is not None else "",
            "rawVersion": self.version.raw if self.version is not None else "",
            "description": self.description,
            "type": self.type,
            "installedOnUTC": row.installed_on.isoformat() if row else "",
            "state": self.state.value,
            "undoable": self.undoable,
            "filepath": str(self.file.path) if self.file else "",
            "script": self.script,
            "installedBy": row.installed_by if row else "",
            "executionTime": row.execution_time if row else 0,
            "installedRank": row.installed_rank if row else None,
            "checksum": row.checksum if row else None,
            "fileChecksum": self.file.checksum if self.file else None,
            "checksumMatches": self.checksum_matches,
        }


@dataclass
class _Applied:
    row: HistoryRow
    out_of_order: bool = False
    deleted: bool = False
    undone: bool = False


@dataclass
class _Context:
    last_resolved: Version | None = None
    last_applied: Version | None = None
    baseline: Version | None = None
    target: Version | None = None
    out_of_order: bool = False
    latest_repeatable: dict[str, int] = field(default_factory=dict)


def checksum_matches(
    mf: MigrationFile, checksum: int | None, values: Mapping[str, Any] | None
) -> bool:
    """Tell whether a row's checksum is the file's, raw or after placeholders (Flyway's rule)."""
    if checksum is None:
        return False
    return checksum in (mf.checksum, mf.effective_checksum(values))


def migration_infos(
    files: Iterable[MigrationFile],
    rows: Iterable[HistoryRow],
    *,
    values: Mapping[str, Any] | None = None,
    out_of_order: bool = False,
    target: Version | None = None,
) -> list[MigrationInfo]:
    """Merge the files on disk with the history rows; return them in Flyway's order."""
    files = list(files)
    rows = list(rows)
    versioned = {f.name.version: f for f in files if f.kind == "V"}
    undoable = {f.name.version for f in files if f.kind == "U"}
    repeatable = {f.name.description: f for f in files if f.kind == "R"}
    ctx = _Context(target=target, out_of_order=out_of_order)
    ctx.last_resolved = max(versioned, default=None)  # type: ignore[type-var]

    applied_v = _applied_versioned(rows, ctx)
    applied_r = _applied_repeatable(rows)
    for item in applied_v:
        version = item.row.parsed_version
        assert version is not None
        if ctx.last_applied is None or version > ctx.last_applied:
            if item.row.type != TYPE_DELETE and not item.deleted and not item.undone:
                ctx.last_applied = version
        else:
            item.out_of_order = True
    for item in applied_r:
        if item.deleted and item.row.type == TYPE_DELETE:
            continue
        rank = ctx.latest_repeatable.get(item.row.description)
        if rank is None or item.row.installed_rank > rank:
            ctx.latest_repeatable[item.row.description] = item.row.installed_rank

    infos: list[MigrationInfo] = []
    pending = dict(versioned)
    for item in applied_v:
        row = item.row
        mf = versioned.get(row.parsed_version) if row.type == TYPE_SQL else None
        if mf is not None and not item.deleted and not item.undone:
            pending.pop(mf.name.version, None)
        state = _applied_state(item, mf, ctx, values)
        infos.append(_info(state, row, mf, undoable, values))
    for mf in pending.values():
        infos.append(_info(_pending_state(mf, ctx), None, mf, undoable, values))
    pending_r = dict(repeatable)
    for item in applied_r:
        row = item.row
        mf = repeatable.get(row.description)
        latest = ctx.latest_repeatable.get(row.description) == row.installed_rank
        if (
            mf is not None
            and not item.deleted
            and row.type != TYPE_DELETE
            and latest
            and checksum_matches(mf, row.checksum, values)
        ):
            pending_r.pop(row.description, None)
        infos.append(_info(_applied_state(item, mf, ctx, values), row, mf, undoable, values))
    for mf in pending_r.values():
        infos.append(_info(State.PENDING, None, mf, undoable, values))
    infos.sort(key=_order)
    return infos


def current_version(infos: Iterable[MigrationInfo]) -> Version | None:
    """Return the schema version: the highest applied, not deleted, not undone version."""
    versions = [
        i.version
        for i in infos
        if i.version is not None
        and i.row is not None
        and i.row.success
        and i.state not in (State.DELETED, State.UNDONE)
    ]
    return max(versions, default=None)  # type: ignore[type-var]


def _applied_versioned(rows: list[HistoryRow], ctx: _Context) -> list[_Applied]:
    result: list[_Applied] = []
    for row in rows:
        version = row.parsed_version
        if version is None:
            continue
        if row.type == TYPE_BASELINE and (ctx.baseline is None or version > ctx.baseline):
            ctx.baseline = version
        if row.type == TYPE_DELETE and row.success:
            _mark(result, lambda a, v=version: a.row.parsed_version == v, "deleted")
            continue
        if row.type == TYPE_UNDO:
            # Flyway Teams' undo rows; its info leaves them out of the table.
            if row.success:
                _mark(result, lambda a, v=version: a.row.parsed_version == v, "undone")
            continue
        result.append(_Applied(row))
    return result


def _applied_repeatable(rows: list[HistoryRow]) -> list[_Applied]:
    result: list[_Applied] = []
    for row in rows:
        if row.version is not None:
            continue
        result.append(_Applied(row))
        if row.type == TYPE_DELETE and row.success:
            _mark(result, lambda a, d=row.description: a.row.description == d, "deleted")
    return result


def _mark(applied: list[_Applied], matches: Any, flag: str) -> None:
    """Flag the latest non-marker entry that matches (markAsDeleted and friends)."""
    for item in reversed(applied):
        if item.row.type not in SYNTHETIC_TYPES and matches(item):
            setattr(item, flag, True)
            return


def _applied_state(
    item: _Applied, mf: MigrationFile | None, ctx: _Context, values: Mapping[str, Any] | None
) -> State:
    row = item.row
    if item.undone:
        return State.UNDONE
    if item.deleted:
        return State.DELETED
    if row.type == TYPE_DELETE:
        return State.SUCCESS
    if row.type == TYPE_BASELINE:
        return State.BASELINE
    version = row.parsed_version
    is_latest = version is not None or ctx.latest_repeatable.get(row.description) in (
        None,
        row.installed_rank,
    )
    if mf is None and is_latest:
        if row.type == "SCHEMA":
            return State.SUCCESS
        if version is None or (ctx.last_resolved is not None and version < ctx.last_resolved):
            return State.MISSING_SUCCESS if row.success else State.MISSING_FAILED
        return State.FUTURE_SUCCESS if row.success else State.FUTURE_FAILED
    if not row.success:
        return State.FAILED
    if version is None:
        if ctx.latest_repeatable.get(row.description) == row.installed_rank:
            if mf is not None and checksum_matches(mf, row.checksum, values):
                return State.SUCCESS
            return State.OUTDATED
        return State.SUPERSEDED
    if item.out_of_order:
        return State.OUT_OF_ORDER
    return State.SUCCESS


def _pending_state(mf: MigrationFile, ctx: _Context) -> State:
    version = mf.name.version
    assert version is not None
    if ctx.baseline is not None and ctx.last_applied is not None:
        if version < ctx.baseline:
            return State.BELOW_BASELINE
        if version == ctx.baseline:
            return State.BASELINE_IGNORED
    if ctx.target is not None and version > ctx.target:
        return State.ABOVE_TARGET
    if ctx.last_applied is not None and version < ctx.last_applied and not ctx.out_of_order:
        return State.IGNORED
    return State.PENDING


def _info(
    state: State,
    row: HistoryRow | None,
    mf: MigrationFile | None,
    undoable: set[Version | None],
    values: Mapping[str, Any] | None,
) -> MigrationInfo:
    if row is not None:
        version, description, type_, script = (
            row.parsed_version,
            row.description,
            row.type,
            row.script,
        )
    else:
        assert mf is not None
        version, description, type_, script = (
            mf.name.version,
            mf.name.description,
            TYPE_SQL,
            mf.script,
        )
    matches = None
    if row is not None and mf is not None and row.type == TYPE_SQL:
        matches = checksum_matches(mf, row.checksum, values)
    flag = ""
    if version is not None and type_ != TYPE_DELETE and state not in (State.DELETED, State.UNDONE):
        flag = "Yes" if not state.failed and version in undoable else "No"
    return MigrationInfo(state, version, description, type_, script, mf, row, flag, matches)


def _order(info: MigrationInfo) -> tuple[Any, ...]:
    """Sort as MigrationInfoImpl.compareTo does: skipped-by-baseline, applied, pending."""
    if info.state in (State.BELOW_BASELINE, State.BASELINE_IGNORED):
        return (0, info.version, 0, b"")
    if info.row is not None:
        return (1, info.row.installed_rank, 0, b"")
    if info.version is not None:
        return (2, info.version, 0, b"")
    return (3, 0, 0, info.description.encode("utf-16-be", "surrogatepass"))


COLUMNS = ("Category", "Version", "Description", "Type", "Installed On", "State", "Undoable")


def table_rows(infos: Iterable[MigrationInfo]) -> list[list[str]]:
    """Return the cells of Flyway's info table (MigrationInfoDumper.dumpToAsciiTable)."""
    return [
        [
            i.category,
            str(i.version) if i.version is not None else "",
            i.description,
            i.type,
            f"{i.row.installed_on:%Y-%m-%d %H:%M:%S}" if i.row else "",
            i.state.value,
            i.undoable,
        ]
        for i in infos
    ]


def ascii_table(columns: Iterable[str], rows: list[list[str]], empty: str) -> str:
    """Render rows as Flyway's AsciiTable does: +---+ rulers, | padded | cells."""
    columns = list(columns)
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    ruler = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [
        ruler,
        "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |",
        ruler,
    ]
    if not rows:
        lines.append("| " + empty.ljust(len(ruler) - 4) + " |")
    for row in rows:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    lines.append(ruler)
    return "\n".join(lines)
