"""Migration versions compared exactly like Flyway's `MigrationVersion`."""

from __future__ import annotations

import re
from functools import total_ordering
from typing import Any

from sqlmigrations.lib.exceptions import InvalidVersion

# MigrationVersion.SPLIT_REGEX is `\.(?=\d)`: a dot only separates parts when a digit follows,
# so "1..2" and "1." keep the stray dot inside a part and are then rejected. Java's `\d` is
# ASCII-only by default, hence [0-9] here.
_SPLIT = re.compile(r"\.(?=[0-9])")
# Each part goes through `new BigInteger(part)`: an optional sign, then decimal digits (Java's
# Character.digit accepts any Unicode Nd digit, as Python's `\d` and int() do). No spaces or
# underscores, which Python's int() alone would allow.
_PART = re.compile(r"[+-]?\d+")
# fromVersion() maps these words (any case) to marker versions, never to a real migration.
_MARKERS = frozenset({"current", "next", "latest"})


@total_ordering
class Version:
    """Hold one migration version; equal, hashed and ordered as Flyway compares them."""

    __slots__ = ("_parts", "_raw")

    _parts: tuple[int, ...]
    _raw: str

    def __init__(self, text: str) -> None:
        """Parse `text` such as "5", "05", "1.2", "1_2" or "2024_01_31"."""
        if text.lower() in _MARKERS or text == str(2**63 - 1):
            # Flyway turns these into CURRENT/NEXT/LATEST markers; as a file's version they
            # would silently mean "newest possible", so refuse them outright.
            raise InvalidVersion(text)
        # MigrationVersion(String): normalizedVersion = version.replace('_', '.')
        pieces = _SPLIT.split(text.replace("_", "."))
        if not all(_PART.fullmatch(p) for p in pieces):
            raise InvalidVersion(text)
        parts = [int(p) for p in pieces]
        # tokenize() drops trailing zero parts (but never the first), so 1.0 == 1 and both
        # hash alike; a tuple compare of the trimmed parts then equals Flyway's compareTo,
        # which pads the shorter list with zeros.
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        object.__setattr__(self, "_parts", tuple(parts))
        object.__setattr__(self, "_raw", text)

    def __setattr__(self, name: str, value: Any) -> None:
        """Refuse changes: versions are used as dict keys and sort keys."""
        raise AttributeError("Version is immutable")

    @property
    def raw(self) -> str:
        """Return the version exactly as written in the file name."""
        return self._raw

    @property
    def parts(self) -> tuple[int, ...]:
        """Return the numeric parts without trailing zeros, e.g. (1, 2) for "1.2.0"."""
        return self._parts

    def __str__(self) -> str:
        """Return Flyway's display text, which is what it stores in the `version` column."""
        # JdbcTableSchemaHistory stores version.toString() == displayText == raw with '_'
        # turned into '.'; leading and trailing zeros are kept ("05" stays "05").
        return self._raw.replace("_", ".")

    def __repr__(self) -> str:
        """Return a constructor call that rebuilds this version."""
        return f"Version({self._raw!r})"

    def __eq__(self, other: object) -> bool:
        """Compare numerically part by part, ignoring trailing zero parts."""
        if not isinstance(other, Version):
            return NotImplemented
        return self._parts == other._parts

    def __lt__(self, other: object) -> bool:
        """Order numerically part by part: 1 < 1.1 < 1.2 < 2 < 10."""
        if not isinstance(other, Version):
            return NotImplemented
        return self._parts < other._parts

    def __hash__(self) -> int:
        """Hash the trimmed parts so equal versions hash alike."""
        return hash(self._parts)

    def __reduce__(self) -> tuple[type[Version], tuple[str]]:
        """Pickle by the raw text, since __setattr__ is blocked."""
        return (Version, (self._raw,))
