"""`backup create`: pg_dump -Fc of the database, streamed to storage, finalised on success."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from django.core.files.storage import FileSystemStorage, Storage

from dbops.backups import BackupError
from dbops.backups.fingerprint import (
    TableFingerprint,
    fingerprint_in,
    snapshot_connection,
    to_json,
)
from dbops.backups.names import dump_name
from dbops.backups.progress import Progress
from dbops.backups.signing import key_for_signing, sign
from dbops.backups.store import CHUNK, Backup, Partial, project_objects, write_manifest
from dbops.connections import pgtools
from dbops.connections.config import ConnInfo
from dbops.connections.pgtools import find_tool, server_major, tool_major
from sqlmigrations.lib import processes
from sqlmigrations.redact import redact


def _grow_pipe(pipe: Any) -> None:
    # A 1 MiB pipe instead of 64 KiB: fewer wake-ups between pg_dump and us (Linux only).
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, CHUNK)


def _stderr_text(stderr: Any) -> str:
    stderr.seek(0)
    return redact(stderr.read().decode(errors="replace").strip())


def pump(source: Any, out: Any, progress: Progress | None, max_rate: int | None) -> tuple[int, str]:
    """Copy a pipe to a file; return (bytes, sha256). Sleep to stay under max_rate bytes/s."""
    digest = hashlib.sha256()
    total = 0
    started = time.monotonic()
    while chunk := source.read1(CHUNK):
        digest.update(chunk)
        out.write(chunk)
        total += len(chunk)
        if progress is not None:
            progress.update(len(chunk))
        if max_rate:
            ahead = total / max_rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    return total, digest.hexdigest()


class Snapshot:
    """An exported snapshot for pg_dump, fingerprinted in a thread while pg_dump reads it."""

    def __init__(self, source: ConnInfo) -> None:
        self.conn = snapshot_connection(source)
        row = self.conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        self.id = str(row[0])
        self._result: dict[str, TableFingerprint] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._result = fingerprint_in(self.conn)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            self._error = err

    def start(self) -> None:
        self._thread.start()

    def tables(self) -> dict[str, TableFingerprint]:
        self._thread.join()
        if self._error is not None:
            raise BackupError(f"Fingerprinting the tables failed: {self._error}")
        return self._result

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._thread.ident is not None:
            if exc_type is not None:
                with contextlib.suppress(psycopg.Error):
                    self.conn.cancel_safe()  # the dump failed: stop hashing
            self._thread.join()
        self.conn.close()


def _fail(proc: processes.Popen[bytes], source: ConnInfo, stderr: Any) -> BackupError:
    return BackupError(
        f"pg_dump of {source.dbname!r} failed (exit {proc.returncode}): {_stderr_text(stderr)}"
    )


def _dump_to_folder(
    argv: list[str],
    source: ConnInfo,
    partial: Partial,
    progress: Progress | None,
    snapshot: Snapshot | None,
) -> tuple[int, str]:
    """pg_dump writes the partial file itself: no extra copy, and a seekable archive.

    pg_dump inherits the partial's lock, so the file stays locked while either lives.
    """
    path = partial.path
    with tempfile.TemporaryFile() as stderr:
        proc = pgtools.popen(
            [*argv, f"--file={path}"],
            source,
            stdin=processes.DEVNULL,
            stdout=processes.DEVNULL,
            stderr=stderr,
            pass_fds=[partial.lock_fd] if partial.lock_fd is not None else [],
        )
        if snapshot is not None:
            snapshot.start()
        try:
            seen = 0
            while True:
                try:
                    proc.wait(timeout=0.25)
                    break
                except processes.TimeoutExpired:
                    if progress is not None:
                        size = path.stat().st_size
                        progress.update(size - seen)
                        seen = size
            if proc.returncode != 0:
                raise _fail(proc, source, stderr)
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
            size = path.stat().st_size
            if progress is not None:
                progress.update(size - seen)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return size, digest.hexdigest()


def _dump_through_pipe(
    argv: list[str],
    source: ConnInfo,
    partial: Partial,
    progress: Progress | None,
    max_rate: int | None,
    snapshot: Snapshot | None,
) -> tuple[int, str]:
    """pg_dump writes to a pipe that we copy into the storage (S3: multipart upload)."""
    with tempfile.TemporaryFile() as stderr:
        proc = pgtools.popen(
            argv, source, stdin=processes.DEVNULL, stdout=processes.PIPE, stderr=stderr
        )
        assert proc.stdout is not None
        _grow_pipe(proc.stdout)
        out = partial.open()
        if snapshot is not None:
            snapshot.start()
        try:
            size, sha256 = pump(proc.stdout, out, progress, max_rate)
            if proc.wait() != 0:
                raise _fail(proc, source, stderr)
            out.close()
        except BaseException:
            proc.kill()
            proc.wait()
            with contextlib.suppress(Exception):
                out.close()
            raise
    return size, sha256


def create_backup(
    source: ConnInfo,
    storage: Storage,
    env: str,
    *,
    progress: Progress | None = None,
    max_rate: int | None = None,
    now: datetime | None = None,
    with_fingerprint: bool = False,
) -> Backup:
    """Dump `source` to `storage` as choregarden-<env>-<stamp>.dump; return the backup.

    With `with_fingerprint`, every table's row count and hash are computed in the very
    snapshot pg_dump reads (exported to it with --snapshot), and kept in the manifest.
    """
    key = key_for_signing()  # before anything is dumped: never write an unsigned backup
    major = server_major(source)
    pg_dump = find_tool("pg_dump", major)
    created = (now or datetime.now(UTC)).replace(microsecond=0)
    name = dump_name(env, created)
    if storage.exists(name) or any(o.dump == name for o in project_objects(storage, env)):
        raise BackupError(f"{name} already exists: wait a second and run the backup again.")
    argv = pgtools.command(pg_dump, source, "--format=custom")
    partial = Partial(storage, name)
    try:
        with contextlib.ExitStack() as stack:
            snapshot = stack.enter_context(Snapshot(source)) if with_fingerprint else None
            if snapshot is not None:
                argv.append(f"--snapshot={snapshot.id}")
            if isinstance(storage, FileSystemStorage) and not max_rate:
                size, sha256 = _dump_to_folder(argv, source, partial, progress, snapshot)
            else:
                size, sha256 = _dump_through_pipe(
                    argv, source, partial, progress, max_rate, snapshot
                )
            if progress is not None:
                progress.finish()
            tables = snapshot.tables() if snapshot is not None else None
        partial.finish(name)
    except BaseException:
        partial.abandon()
        raise
    manifest = {
        "name": name,
        "env": env,
        "created_at": created.isoformat(),
        "finished_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "size": size,
        "sha256": sha256,
        "format": "pg_dump custom (-Fc), compressed",
        "database": source.dbname,
        "host": source.host,
        "server_major": major,
        "pg_dump_major": tool_major(pg_dump),
    }
    if tables is not None:
        manifest["tables"] = to_json(tables)
    manifest = sign(manifest, key)
    write_manifest(storage, name, manifest)
    return Backup(name=name, created=created, size=size, sha256=sha256, manifest=manifest)
