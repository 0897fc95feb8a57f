"""Errors raised while reading SQL migration files.

Every message starts with the file it is about (relative to the migrations directory where
the caller knows it), then the line where one applies, then what is wrong and what to do
about it. Flyway's own wording is quoted where it helps people searching for it.
"""

from __future__ import annotations


class SqlMigrationError(Exception):
    """Report a problem with the SQL migration files that stops migrating."""

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        """Build the message as `path[:line]: message` and keep the parts for callers."""
        self.path = path
        self.line = line
        self.detail = message
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}")


class InvalidVersion(SqlMigrationError, ValueError):
    """Report a version string Flyway's MigrationVersion would reject."""

    def __init__(self, version: str) -> None:
        """Name the bad version; there is no file yet, so the path is the version itself."""
        # Flyway: "Version may only contain 0..9 and . (dot). Invalid version: <v>"
        super().__init__(
            "a version may only contain digits separated by '.' or '_'"
            f" (Flyway: 'Version may only contain 0..9 and . (dot). Invalid version: {version}')",
            path=f"version {version!r}",
        )
        self.version = version


class InvalidMigrationName(SqlMigrationError):
    """Report a V/U/R file whose name Flyway cannot parse as a migration."""


class InvalidEncoding(SqlMigrationError):
    """Report a file whose bytes cannot be decoded with its encoding."""


class DuplicateVersion(SqlMigrationError):
    """Report two versioned (or two undo) migrations that share one version."""


class DuplicateRepeatable(SqlMigrationError):
    """Report two repeatable migrations that share one description."""


class PlaceholderError(SqlMigrationError):
    """Report a `${...}` placeholder that has no value or is not closed."""


class ScriptConfigError(SqlMigrationError):
    """Report an unknown key or bad value in a `.sql.conf` script config file."""


def line_at(text: str | bytes, index: int) -> int:
    """Return the 1-based line number of `index` in `text`, counting LF, CRLF and lone CR."""
    # Flyway's BufferedReader.readLine() ends a line at LF, CRLF or a lone CR, so a file with
    # old Mac line endings must not be reported as one long line 1.
    head = text[:index]
    if isinstance(head, bytes):
        return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1
    return head.count("\n") + head.count("\r") - head.count("\r\n") + 1
