"""pg_restore of a stored backup into one database: streamed, checked, extensions left out."""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
from pathlib import Path

import psycopg
from django.core.files.storage import Storage

from dbops.backups import BackupError
from dbops.backups.progress import Progress
from dbops.backups.store import Backup, open_read
from dbops.backups.toc import ArchiveFormatError, TocEntry, read_entries
from dbops.connections import pgtools
from dbops.connections.config import ConnInfo
from dbops.connections.pgtools import find_tool, server_major
from sqlmigrations.lib import processes
from sqlmigrations.redact import redact

# Entries that only decorate an object: its privileges, comment or security label.
DECORATIONS = {"ACL", "COMMENT", "SECURITY LABEL"}
# Schemas every database has before a restore: their objects are never an extension's.
TEMPLATE_SCHEMAS = {"", "pg_catalog", "information_schema"}
# The `pg_restore --list` line of an extension: `2; 3079 16389 EXTENSION - pg_stat_statements`
_TOC_EXTENSION = re.compile(r"^\d+; \d+ \d+ EXTENSION - (?P<name>\S+)")


def read_toc(storage: Storage, backup: Backup, pg_restore: Path, target: ConnInfo) -> list[str]:
    """The archive's table of contents (`pg_restore --list`), read from its first bytes."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as stderr:
        # Reads the archive only: no login.
        proc = pgtools.popen(
            [str(pg_restore), "--list"], None, stdin=processes.PIPE, stdout=out, stderr=stderr
        )
        assert proc.stdin is not None
        try:
            for chunk in open_read(storage, backup.name):
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it has read the table of contents and stopped
        if proc.wait() != 0:
            stderr.seek(0)
            raise BackupError(
                f"{backup.name} is not a readable pg_dump archive: "
                f"{stderr.read().decode(errors='replace').strip()}"
            )
        out.seek(0)
        return out.read().decode(errors="replace").splitlines()


def extensions_to_skip(target: ConnInfo, toc: list[str]) -> set[str]:
    """Extensions in the archive that this role cannot create, or that already exist."""
    names = {m["name"] for line in toc if (m := _TOC_EXTENSION.match(line))}
    if not names:
        return set()
    with psycopg.connect(**target) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        if row and row[0]:
            return set()
        skip = set()
        for name in names:
            trusted = conn.execute(
                "SELECT bool_or(trusted) FROM pg_available_extension_versions WHERE name = %s",
                [name],
            ).fetchone()
            exists = conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s", [name])
            if exists.fetchone() is not None or (trusted is not None and trusted[0] is False):
                skip.add(name)
    return skip


def entries_to_leave_out(entries: list[TocEntry], extensions: set[str]) -> list[TocEntry]:
    """The entries of `extensions`, and the decorations of their objects, by dependency.

    pg_dump never defines an extension's member objects, only their changed privileges:
    an ACL (or comment, or label) whose object the archive does not define, in a schema
    of its own rather than the template's, belongs to an extension. With the extension
    left out, that object will not exist, and a GRANT on it would fail the restore.
    """
    out = {e.dump_id: e for e in entries if e.desc == "EXTENSION" and e.tag in extensions}
    if not out:
        return []
    defined = {e.dump_id for e in entries}
    for entry in entries:
        if entry.desc not in DECORATIONS:
            continue
        of_left_out = any(dep in out for dep in entry.deps)
        of_member = (
            entry.namespace not in TEMPLATE_SCHEMAS
            and bool(entry.deps)
            and not any(dep in defined for dep in entry.deps)
        )
        if of_left_out or of_member:
            out[entry.dump_id] = entry
    return sorted(out.values(), key=lambda e: e.dump_id)


def _archive_entries(storage: Storage, backup: Backup) -> list[TocEntry]:
    with contextlib.closing(open_read(storage, backup.name)) as chunks:
        try:
            return read_entries(chunks)
        except ArchiveFormatError as err:
            raise BackupError(
                f"Cannot read the table of contents of {backup.name} ({err}): restore it "
                "as a superuser, or with --no-privileges."
            ) from err


def describe_entry(entry: TocEntry) -> str:
    """`ACL public TABLE pg_stat_statements`, as `pg_restore --list` names an entry."""
    return " ".join(part for part in (entry.desc, entry.namespace, entry.tag) if part)


def run_pg_restore(
    storage: Storage,
    backup: Backup,
    target: ConnInfo,
    *,
    progress: Progress | None = None,
    privileges: bool = True,
) -> tuple[set[str], list[str]]:
    """Stream the backup into pg_restore (one transaction); check its size and sha256.

    Extensions that only a superuser may create (pg_stat_statements, ...) are left out
    when the role is not one, with the privileges of their objects; return their names
    and the entries left out, so that the caller can say so.
    """
    pg_restore = find_tool("pg_restore", server_major(target))
    toc = read_toc(storage, backup, pg_restore, target)
    skipped = extensions_to_skip(target, toc)
    left_out = entries_to_leave_out(_archive_entries(storage, backup), skipped) if skipped else []
    with contextlib.ExitStack() as stack:
        argv = pgtools.command(
            pg_restore,
            target,
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            *([] if privileges else ["--no-privileges"]),
        )
        if left_out:
            ids = {str(entry.dump_id) for entry in left_out}
            listing = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".list"))
            for line in toc:
                if line.split(";", 1)[0] not in ids:
                    listing.write(line + "\n")
            listing.flush()
            argv.append(f"--use-list={listing.name}")
        _stream_into(storage, backup, target, argv, progress)
    return skipped, [describe_entry(entry) for entry in left_out]


def _stream_into(
    storage: Storage,
    backup: Backup,
    target: ConnInfo,
    argv: list[str],
    progress: Progress | None,
) -> None:
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile() as stderr:
        proc = pgtools.popen(argv, target, stdin=processes.PIPE, stderr=stderr)
        assert proc.stdin is not None
        try:
            for chunk in open_read(storage, backup.name):
                digest.update(chunk)
                size += len(chunk)
                proc.stdin.write(chunk)
                if progress is not None:
                    progress.update(len(chunk))
            proc.stdin.close()
        except BrokenPipeError:
            pass  # pg_restore stopped early; its exit code and stderr say why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        returncode = proc.wait()
        if progress is not None:
            progress.finish()
        if returncode != 0:
            stderr.seek(0)
            message = redact(stderr.read().decode(errors="replace").strip())
            raise BackupError(
                f"pg_restore of {backup.name} into {target.dbname!r} failed (exit "
                f"{returncode}); nothing was restored (one transaction): {message}"
            )
    if size != backup.size or digest.hexdigest() != backup.sha256:
        raise BackupError(
            f"{backup.name} does not match its manifest (size {size} vs {backup.size}, "
            "sha256 differs): the stored object is damaged; restore an older backup."
        )
