"""Replace `${name}` placeholders exactly as Flyway's PlaceholderReplacingReader does.

Facts from Flyway's source that callers rely on:
- Default prefix `${`, suffix `}`, and `:` separates `flyway` from a built-in's name.
- Names are case-insensitive (the reader keeps its map in lower case).
- Replacement is blind to SQL syntax: comments and string literals are replaced too.
- An empty value removes the placeholder; a missing one fails the migration.
- Checksums: versioned migrations are checksummed on the RAW file. Repeatable migrations are
  checksummed AFTER replacement when placeholder replacement is on (SqlMigrationResolver.
  getChecksumForLoadableResource), so changing a value re-runs them, and `${flyway:timestamp}`
  makes one run every time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime

from sqlmigrations.lib.exceptions import PlaceholderError, line_at

PREFIX = "${"
SUFFIX = "}"
SETTING = 'SQL_MIGRATIONS["PLACEHOLDERS"]'
# Built-ins set by ParsingContext.populate() and updateFilenamePlaceholder().
BUILTIN_NAMES = (
    "flyway:defaultSchema",
    "flyway:user",
    "flyway:database",
    "flyway:timestamp",
    "flyway:filename",
    "flyway:workingDirectory",
    "flyway:table",
    "flyway:environment",
)


def builtin_placeholders(
    *,
    schema: str | None,
    user: str,
    database: str | None,
    table: str,
    filename: str,
    environment: str = "default",
    working_directory: str | None = None,
    timestamp: datetime | None = None,
) -> dict[str, str]:
    """Return Flyway's built-in `flyway:*` placeholders for one script."""
    values = {
        "flyway:user": user,
        # SimpleDateFormat("yyyy-MM-dd HH:mm:ss").format(new Date()): local time, no zone.
        "flyway:timestamp": (timestamp or datetime.now()).strftime("%Y-%m-%d %H:%M:%S"),
        # configuration.getWorkingDirectory() or else System.getProperty("user.dir")
        "flyway:workingDirectory": working_directory or os.getcwd(),
        "flyway:table": table,
        # ClassicConfiguration.getCurrentEnvironmentName() falls back to "default".
        "flyway:environment": environment or "default",
        # Set per script from ResourceName.getFilename() (the bare name, no folders).
        "flyway:filename": filename,
    }
    # populate() only puts defaultSchema and database when known; using them otherwise
    # fails with "Failed to populate value for default placeholder".
    if schema is not None:
        values["flyway:defaultSchema"] = schema
    if database is not None:
        values["flyway:database"] = database
    return values


def substitute(sql: str, values: Mapping[str, str | None], *, path: str) -> str:
    """Return `sql` with every `${name}` replaced, or raise PlaceholderError naming it."""
    if PREFIX not in sql:
        return sql
    lookup = {key.lower(): value for key, value in values.items()}
    out: list[str] = []
    start = 0
    end = len(sql)
    while True:
        dollar = sql.find("$", start)
        if dollar < 0 or dollar + 1 >= end:
            out.append(sql[start:])
            return "".join(out)
        if sql[dollar + 1] != "{":
            # The reader reads prefix-length characters after a "$"; on a mismatch it hands
            # them all out unexamined, so in "$${a}" the second "$" cannot start "${a}".
            out.append(sql[start : dollar + 2])
            start = dollar + 2
            continue
        close = sql.find(SUFFIX, dollar + 2)
        if close < 0:
            # Flyway reads to end of file and then chops a character off (or crashes on an
            # empty name); a clear error is kinder and no valid script depends on it.
            raise PlaceholderError(
                f"placeholder {sql[dollar : dollar + 40]!r}... is never closed with '}}';"
                " close it, or if it is not meant as a placeholder, break up the '${'",
                path=path,
                line=line_at(sql, dollar),
            )
        name = sql[dollar + 2 : close]
        key = name.lower()
        if key not in lookup:
            raise _missing(name, path=path, line=line_at(sql, dollar))
        out.append(sql[start:dollar])
        out.append(lookup[key] or "")
        start = close + 1


def _missing(name: str, *, path: str, line: int) -> PlaceholderError:
    """Explain a placeholder with no value."""
    shown = PREFIX + name + SUFFIX
    if name.lower().startswith("flyway:"):
        known = {n.lower() for n in BUILTIN_NAMES}
        if name.lower() in known:
            why = (
                "this built-in has no value here (Flyway: 'Failed to populate value for"
                " default placeholder'); set the default schema / database it comes from"
            )
        else:
            why = f"Flyway has no such built-in; use one of {', '.join(BUILTIN_NAMES)}"
        return PlaceholderError(f"{shown}: {why}", path=path, line=line)
    return PlaceholderError(
        f"no value provided for placeholder {shown} (Flyway: 'No value provided for"
        f" placeholder'); define {name!r} in the project setting {SETTING}",
        path=path,
        line=line,
    )
