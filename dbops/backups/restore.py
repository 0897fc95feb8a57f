"""pg_restore of a stored backup into one database: checked, extensions left out.

Two ways, chosen by the caller (restore_plan.py):

- streamed into one pg_restore in one transaction (`--single-transaction`), no local
  copy: required where the target is a database that people see while it fills (an
  existing empty target, restored in place), so that a failure leaves it empty;
- `pg_restore -j N` (`--jobs`, parallel workers, one transaction each: the two options
  exclude each other) into a database created for this restore, which nobody uses and
  which is dropped on failure, and renamed or swapped in only after it was verified.
  Workers seek in the archive, so they need a file: a backup in a folder is read where
  it is; one on S3 is downloaded first into a private temporary folder (TMPDIR), when
  it has room, else streamed as above.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage

from dbops.backups import BackupError
from dbops.backups.progress import Progress
from dbops.backups.store import CHUNK, Backup, open_read, stored_sha256
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
# pg_restore -j opens one connection per worker: more than this rarely helps a restore.
MAX_JOBS = 8
# Room left on TMPDIR's disk besides a downloaded dump.
DISK_MARGIN = 256 * 1024 * 1024

logger = logging.getLogger(__name__)


@dataclass
class Restored:
    """What run_pg_restore did: extensions and entries left out, and how it ran."""

    skipped: set[str] = field(default_factory=set)
    left_out: list[str] = field(default_factory=list)
    jobs: int = 1  # pg_restore --jobs; 1 is the streamed --single-transaction run
    note: str = ""  # why a parallel restore was not used, when it was asked for


def restore_jobs() -> int:
    """pg_restore's --jobs: BACKUP_RESTORE_JOBS, or the CPU count (at most MAX_JOBS)."""
    configured = int(getattr(settings, "BACKUP_RESTORE_JOBS", 0) or 0)
    if configured > 0:
        return configured
    return max(1, min(os.cpu_count() or 1, MAX_JOBS))


def _chunks_of(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def read_toc(
    storage: Storage,
    backup: Backup,
    pg_restore: Path,
    target: ConnInfo,
    local: Path | None = None,
) -> list[str]:
    """The archive's table of contents (`pg_restore --list`), read from its first bytes
    (of `local`, the checked local file, when given)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as stderr:
        # Reads the archive only: no login.
        proc = pgtools.popen(
            [str(pg_restore), "--list", *([str(local)] if local else [])],
            None,
            stdin=processes.DEVNULL if local else processes.PIPE,
            stdout=out,
            stderr=stderr,
        )
        try:
            if proc.stdin is not None:
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


def _archive_entries(storage: Storage, backup: Backup, local: Path | None = None) -> list[TocEntry]:
    source = _chunks_of(local) if local else open_read(storage, backup.name)
    with contextlib.closing(source) as chunks:
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


def _left_out(
    storage: Storage,
    backup: Backup,
    pg_restore: Path,
    target: ConnInfo,
    local: Path | None,
) -> tuple[list[str], set[str], list[TocEntry]]:
    toc = read_toc(storage, backup, pg_restore, target, local)
    skipped = extensions_to_skip(target, toc)
    entries = _archive_entries(storage, backup, local) if skipped else []
    return toc, skipped, entries_to_leave_out(entries, skipped) if skipped else []


def _use_list(stack: contextlib.ExitStack, toc: list[str], left_out: list[TocEntry]) -> str:
    ids = {str(entry.dump_id) for entry in left_out}
    listing = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".list"))  # noqa: SIM115
    for line in toc:
        if line.split(";", 1)[0] not in ids:
            listing.write(line + "\n")
    listing.flush()
    return f"--use-list={listing.name}"


def run_pg_restore(
    storage: Storage,
    backup: Backup,
    target: ConnInfo,
    *,
    progress: Progress | None = None,
    privileges: bool = True,
    jobs: int = 1,
) -> Restored:
    """Restore the backup into `target`, its bytes checked against the manifest.

    jobs 1: streamed into pg_restore in one transaction (size and sha256 checked on the
    way; a mismatch fails it and nothing is committed). jobs > 1: only for a database made
    for this restore (module docstring): the archive is checked first, then read by
    `pg_restore -j jobs` from a local file.

    Extensions that only a superuser may create (pg_stat_statements, ...) are left out
    when the role is not one, with the privileges of their objects; the result names
    them and the entries left out, so that the caller can say so.
    """
    pg_restore = find_tool("pg_restore", server_major(target))
    options = ["--no-owner", "--exit-on-error", *([] if privileges else ["--no-privileges"])]
    if jobs > 1:
        with contextlib.ExitStack() as stack:
            local, identity, note = _local_archive(stack, storage, backup, progress)
            if local is not None:
                if progress is not None:
                    progress.finish()
                toc, skipped, left_out = _left_out(storage, backup, pg_restore, target, local)
                argv = pgtools.command(pg_restore, target, *options, f"--jobs={jobs}")
                if left_out:
                    argv.append(_use_list(stack, toc, left_out))
                logger.debug("pg_restore --jobs=%d of %s into %s", jobs, backup.name, target.dbname)
                _run_on_file(backup, target, [*argv, str(local)], local, identity)
                entries = [describe_entry(entry) for entry in left_out]
                return Restored(skipped, entries, jobs)
        # No room for a local file (`note`, on the command's stderr says why). The caller
        # left the check to us: read the bytes through before pg_restore sees one.
        if stored_sha256(storage, backup.name) != backup.sha256:
            raise _mismatch(backup, backup.size)
    else:
        note = ""
    toc, skipped, left_out = _left_out(storage, backup, pg_restore, target, None)
    with contextlib.ExitStack() as stack:
        argv = pgtools.command(pg_restore, target, *options, "--single-transaction")
        if left_out:
            argv.append(_use_list(stack, toc, left_out))
        _stream_into(storage, backup, target, argv, progress)
    return Restored(skipped, [describe_entry(entry) for entry in left_out], 1, note)


def _mismatch(backup: Backup, size: int) -> BackupError:
    # The words of restore_plan.check_stored_bytes: the same refusal, found on the way.
    what = "sha256 differs" if size == backup.size else f"{size} bytes, not {backup.size}"
    return BackupError(
        f"{backup.name} does not match its manifest ({what}): the stored object is "
        "damaged; restore an older backup. Nothing was changed."
    )


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _local_archive(
    stack: contextlib.ExitStack,
    storage: Storage,
    backup: Backup,
    progress: Progress | None,
) -> tuple[Path | None, tuple[int, int, int, int] | None, str]:
    """A local file of the archive whose bytes match the manifest, or (None, None, why not).

    A folder's dump is hashed where it is; pg_restore then reads the same file, which
    _run_on_file checks was not replaced or changed meanwhile. An S3 object is hashed as
    it downloads into a folder of our own (mode 0700), deleted afterwards.
    """
    if isinstance(storage, FileSystemStorage):
        path = Path(storage.path(backup.name))
        digest, size = hashlib.sha256(), 0
        with path.open("rb") as fh:
            before = _identity(os.fstat(fh.fileno()))
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if progress is not None:
                    progress.update(len(chunk))
        if size != backup.size or digest.hexdigest() != backup.sha256:
            raise _mismatch(backup, size)
        if _identity(path.stat()) != before:
            raise BackupError(f"{backup.name} changed while it was read: run the restore again.")
        return path, before, ""
    tmp = Path(tempfile.gettempdir())
    free = shutil.disk_usage(tmp).free
    if free < backup.size + DISK_MARGIN:
        return (
            None,
            None,
            (
                f"{tmp} has {free} bytes free, too few for a {backup.size}-byte download: "
                f"{backup.name} is streamed into one pg_restore instead of pg_restore --jobs "
                "(set TMPDIR to a folder with room)."
            ),
        )
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="choregarden-restore-")))
    path = folder / backup.name
    digest, size = hashlib.sha256(), 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        for chunk in open_read(storage, backup.name):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
            if progress is not None:
                progress.update(len(chunk))
    if size != backup.size or digest.hexdigest() != backup.sha256:
        raise _mismatch(backup, size)
    return path, None, ""


# Kills pg_restore's process group unless told "done": pg_restore dies with us (processes.py,
# PR_SET_PDEATHSIG), but that is not inherited by the workers it forks for --jobs.
_GROUP_REAPER = 'read -r line; [ "$line" = done ] || kill -KILL -- "-$1" 2>/dev/null'


@contextlib.contextmanager
def _group_dies_with_us(proc: processes.Popen[Any]) -> Iterator[None]:
    """While pg_restore runs, a cleaner (processes.start_cleaner) kills its whole group
    if this process ends first, however it ends; told "done" once pg_restore was reaped."""
    cleaner = processes.start_cleaner(["sh", "-c", _GROUP_REAPER, "sh", str(proc.pid)])
    try:
        yield
    finally:
        assert cleaner.stdin is not None
        with contextlib.suppress(OSError):
            if proc.returncode is not None:
                cleaner.stdin.write(b"done\n")
            cleaner.stdin.close()
        cleaner.wait()


def _run_on_file(
    backup: Backup,
    target: ConnInfo,
    argv: list[str],
    local: Path,
    identity: tuple[int, int, int, int] | None,
) -> None:
    """Run pg_restore -j on the checked file; refuse a folder dump changed meanwhile."""
    with tempfile.TemporaryFile() as stderr:
        proc = pgtools.popen(argv, target, stdin=processes.DEVNULL, stderr=stderr)
        with _group_dies_with_us(proc):
            try:
                returncode = proc.wait()
            except BaseException:
                pgtools.kill(proc)  # the workers too: they are in its process group
                raise
        if returncode != 0:
            stderr.seek(0)
            message = redact(stderr.read().decode(errors="replace").strip())
            raise BackupError(
                f"pg_restore --jobs of {backup.name} into {target.dbname!r} failed (exit "
                f"{returncode}); the database is dropped again: {message}"
            )
    if identity is not None and _identity(local.stat()) != identity:
        raise BackupError(
            f"{backup.name} was replaced or changed during the restore: the restored "
            "database is dropped; run the restore again."
        )


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
