"""The files' names and version sequence against the history: one view for every tool.

`sqlmigrations validate` and `migrate` read the history; the system check reads it when it
is given a database (`migrate` gives it its own, so does `check --database`), and otherwise
judges by the names and by git alone. Every advice is checked against the files and the
history before it is given: it never asks to rename an applied file, to take a version
another file or a history row holds, or to run an applied file's SQL again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlmigrations.lib.history import TYPE_DELETE, HistoryRow
from sqlmigrations.lib.names import MigrationName, convention_problems
from sqlmigrations.lib.versions import Version

Committed = Callable[[str], "bool | None"]


@dataclass(frozen=True)
class Problem:
    """One validation failure, naming the file (or history row) and the fix."""

    code: str  # edited, missing, failed, ignored, convention, gap, description, deleted, ...
    script: str
    message: str  # what is wrong, then what to do
    fix: str = ""  # what to do alone, where the message ends with it

    def __str__(self) -> str:
        return f"{self.script}: {self.message}"


@dataclass(frozen=True)
class Recorded:
    """What a history says about each version."""

    applied: dict[Version, HistoryRow] = field(default_factory=dict)  # latest success, not deleted
    deleted: dict[Version, HistoryRow] = field(default_factory=dict)  # its DELETE row (repair)
    known: frozenset[Version] = frozenset()  # every version a row names, failed ones too

    @classmethod
    def of(cls, rows: Iterable[HistoryRow]) -> Recorded:
        """Read the rows in installed_rank order, as Flyway does."""
        applied: dict[Version, HistoryRow] = {}
        deleted: dict[Version, HistoryRow] = {}
        known: set[Version] = set()
        for row in rows:
            version = row.parsed_version
            if version is None:
                continue
            known.add(version)
            if not row.success:
                continue
            if row.type == TYPE_DELETE:
                applied.pop(version, None)
                deleted[version] = row
            else:
                applied[version] = row
                deleted.pop(version, None)
        return cls(applied, deleted, frozenset(known))


def sequence_problems(
    names: Iterable[tuple[str, MigrationName]],
    recorded: Recorded | None,
    *,
    committed: Committed | None = None,
) -> list[Problem]:
    """Return the naming and gap problems of the V files, with advice that is safe to take.

    `recorded` is None when the history could not be read; `committed` tells whether a
    file is in git's HEAD (None: cannot tell).
    """
    versioned = sorted(
        ((s, n) for s, n in names if n.kind == "V" and n.version is not None),
        key=lambda item: (item[1].version, item[0]),
    )
    history = recorded or Recorded()
    taken = {n.version for _, n in versioned} | history.known
    problems: list[Problem] = []
    for script, name in versioned:
        if name.version in history.applied:
            continue  # applied under this name: renaming it would make it missing
        others = taken - {name.version}
        for message in convention_problems(name, path=script, taken=others):
            problems.append(Problem("convention", script, message.removeprefix(f"{script}: ")))
    previous: tuple[str, MigrationName] | None = None
    for script, name in versioned:
        assert name.version is not None
        if previous is not None and len(name.version.parts) == 1:
            gap = _gap(previous[1], name, history)
            if gap:
                problems.append(
                    _gap_problem(script, name, previous[0], gap, history, taken, committed)
                )
        previous = (script, name)
    return problems


def _gap(before: MigrationName, after: MigrationName, history: Recorded) -> list[int]:
    """Return the missing integer versions between two files that nothing accounts for."""
    assert before.version is not None and after.version is not None
    if len(before.version.parts) != 1 or after.version.parts[0] <= before.version.parts[0]:
        return []
    gap = [
        n
        for n in range(before.version.parts[0] + 1, after.version.parts[0])
        if Version(str(n)) not in history.deleted  # removed on purpose, marked by repair
    ]
    if gap and all(Version(str(n)) in history.applied for n in gap):
        return []  # applied files that are gone: validate reports them "missing"
    return gap


def _gap_problem(
    script: str,
    name: MigrationName,
    previous: str,
    gap: list[int],
    history: Recorded,
    taken: set[Version],
    committed: Committed | None,
) -> Problem:
    missing = ", ".join(f"V{n}" for n in gap[:5])
    restore = (
        f"restore the deleted {missing} file and its wrapper from version control "
        "(`git log --diff-filter=D --name-only` names the commit)"
    )
    free = Version(str(gap[0]))
    rename = f"V{free}__{name.raw_description}.sql"
    where = committed(script) if committed else None
    if name.version in history.applied:
        fix = f"{script} is already applied, so it keeps its version: {restore}"
    elif where is True:
        fix = (
            f"{script} is committed, so it may already be applied somewhere and must keep "
            f"its version: {restore}"
        )
    elif free in taken:
        fix = f"{restore}; the history holds version {free}, so no file may be renamed to it"
    elif where is False:
        fix = f"rename it to {rename} (and its wrapper): it is not committed yet"
    else:
        fix = (
            f"if {missing} was deleted, {restore}; rename this file to {rename} (and its "
            "wrapper) only if it has never been applied to any database"
        )
    return Problem(
        "gap",
        script,
        f"version {name.version} follows {previous} but {missing} is missing: versions are "
        f"sequential integers with no gaps; {fix}",
        fix,
    )


def above_all(taken: Iterable[Version]) -> Version:
    """Return the next integer version above every version taken."""
    return Version(str(max((v.parts[0] for v in taken), default=0) + 1))
