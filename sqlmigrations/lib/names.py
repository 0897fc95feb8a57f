"""Parse migration file names the way Flyway's ResourceNameParser does.

Flyway defaults: prefixes `V` (versioned), `U` (undo, a Teams feature; core Flyway ignores
these files) and `R` (repeatable), separator `__`, suffix `.sql`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from sqlmigrations.lib.exceptions import InvalidMigrationName, InvalidVersion
from sqlmigrations.lib.versions import Version

Kind = Literal["V", "U", "R"]
PREFIXES: tuple[Kind, ...] = ("V", "U", "R")
SEPARATOR = "__"
SUFFIX = ".sql"
EXPECTED = "V{version}__{description}.sql"

_SNAKE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
_PLAIN_INT = re.compile(r"[1-9][0-9]*")


@dataclass(frozen=True)
class MigrationName:
    """Hold what a migration's file name says about it."""

    kind: Kind
    version: Version | None  # None for repeatables
    description: str  # Flyway's: the text after `__` with every `_` turned into a space
    script: str  # the file name that was parsed

    @property
    def raw_description(self) -> str:
        """Return the description as written, underscores intact."""
        head = len(self.kind) + (len(self.version.raw) if self.version else 0)
        rest = self.script[head : len(self.script) - len(SUFFIX)]
        return rest[len(SEPARATOR) :] if rest.startswith(SEPARATOR) else ""


def is_candidate(filename: str) -> bool:
    """Tell whether Flyway would try to resolve `filename` as a V, U or R migration."""
    # Scanner.getResources(prefix, suffixes) -> StringUtils.startsAndEndsWith: the prefix is
    # case-sensitive, the suffix is compared upper-cased, and the name must be longer than
    # prefix + suffix (so "V.sql" is skipped). README.md or V1__x.sql.conf never qualify.
    return (
        filename[:1] in PREFIXES
        and filename.upper().endswith(SUFFIX.upper())
        and len(filename) > len(SUFFIX) + 1
    )


def parse_name(filename: str, *, path: str | None = None) -> MigrationName:
    """Parse a V/U/R file name, raising InvalidMigrationName where Flyway finds it invalid."""
    shown = path or filename
    if not is_candidate(filename):
        raise InvalidMigrationName(
            f"not a migration file name; name it {EXPECTED} (or R__{{description}}.sql)",
            path=shown,
        )
    kind: Kind = filename[0]  # type: ignore[assignment]
    body = filename[1 : len(filename) - len(SUFFIX)]
    # StringUtils.splitAtFirstSeparator: everything before the FIRST "__" is the version;
    # with no "__" at all the whole body is the version and the description is empty.
    version_text, _, raw_description = body.partition(SEPARATOR)
    example = raw_description or "description"
    if kind == "R":
        if version_text:
            # "Invalid repeatable migration / callback name format: ... (It cannot contain
            # a version and should look like this: R__desc.sql)"
            raise InvalidMigrationName(
                "a repeatable migration cannot have a version"
                f" (Flyway: 'Invalid repeatable migration / callback name format');"
                f" rename it to R__{example}{filename[-len(SUFFIX) :]}",
                path=shown,
            )
        return MigrationName(kind, None, raw_description.replace("_", " "), filename)
    if not version_text:
        raise InvalidMigrationName(
            f"a {_kind_word(kind)} migration must contain a version"
            " (Flyway: 'Invalid versioned migration name format');"
            f" rename it to {kind}1__{example}.sql, i.e. {EXPECTED}",
            path=shown,
        )
    try:
        version = Version(version_text)
    except InvalidVersion:
        raise InvalidMigrationName(
            f"could not recognise version number {version_text!r}: a version is digits"
            " separated by '.' or '_', followed by a DOUBLE underscore and the description;"
            f" rename it to {EXPECTED}, e.g. {kind}1__add_users.sql",
            path=shown,
        ) from None
    # ResourceNameParser: description = splitName.getRight().replace("_", " ")
    return MigrationName(kind, version, raw_description.replace("_", " "), filename)


def versioned_name(script: str) -> MigrationName | None:
    """Parse the name of a V file (a path with "/" or a bare name); None for anything else."""
    try:
        name = parse_name(script.rsplit("/", 1)[-1])
    except InvalidMigrationName:
        return None
    return name if name.kind == "V" and name.version is not None else None


def convention_problems(
    name: MigrationName | str, *, path: str | None = None, taken: Collection[Version] = ()
) -> list[str]:
    """List how a file breaks this project's stricter naming rules, each with its fix.

    `taken` are the versions of the other files and of the history: a suggested version
    is never one of them.
    """
    if isinstance(name, str):
        name = parse_name(name, path=path)
    shown = path or name.script
    problems: list[str] = []
    raw = name.raw_description
    suffix = name.script[-len(SUFFIX) :]
    fixed_desc = raw if _SNAKE.fullmatch(raw) else _snake(raw)
    fixed_version = ""
    if name.version is not None:
        fixed_version = name.version.raw
        if not _PLAIN_INT.fullmatch(name.version.raw):
            fixed_version = next_free(name.version.raw, taken)
            problems.append(
                f"{shown}: version {name.version.raw!r} must be a plain positive integer"
                " (no dots, underscores, signs or leading zeros); use the next free"
                f" integer, e.g. {fixed_version}"
            )
    if not raw:
        problems.append(
            f"{shown}: missing `__description`; add a snake_case description after a"
            " double underscore"
        )
    elif raw != fixed_desc:
        problems.append(
            f"{shown}: description {raw!r} must be snake_case (lowercase letters, digits and"
            f" single underscores); use {fixed_desc!r}"
        )
    if suffix != SUFFIX:
        problems.append(f"{shown}: suffix {suffix!r} must be lowercase {SUFFIX!r}")
    if problems:
        better = f"{name.kind}{fixed_version}__{fixed_desc or 'description'}{SUFFIX}"
        problems.append(f"{shown}: rename it to {better}")
    return problems


def _kind_word(kind: Kind) -> str:
    """Name the kind for messages."""
    return {"V": "versioned", "U": "undo", "R": "repeatable"}[kind]


def _snake(text: str) -> str:
    """Suggest a snake_case spelling of a description."""
    return "_".join(re.findall(r"[a-z0-9]+", text.lower()))


def next_free(raw: str, taken: Collection[Version]) -> str:
    """Suggest a plain integer for a version that no version in `taken` equals: its first
    part, or else the integer above every version taken."""
    candidate = _plain_int(raw)
    if Version(candidate) not in taken:
        return candidate
    return str(max(v.parts[0] for v in taken) + 1)


def _plain_int(raw: str) -> str:
    """Suggest a plain integer for a version: its first part without leading zeros."""
    digits = re.findall(r"[0-9]+", raw)
    first = int(digits[0]) if digits else 0
    return str(first if first > 0 else 1)
