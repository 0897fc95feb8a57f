"""`backup create`: pg_dump -Fc of the database, streamed to storage, finalised on success."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from django.core.files.storage import Storage

from dbops.backups import BackupError
from dbops.backups.names import PARTIAL_SUFFIX, dump_name
from dbops.backups.pgclient import DbTarget, find_tool, server_major, tool_major
from dbops.backups.progress import Progress
from dbops.backups.store import CHUNK, Backup, open_write, rename, write_manifest
from dbops.redact import redact


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


def create_backup(
    source: DbTarget,
    storage: Storage,
    env: str,
    *,
    progress: Progress | None = None,
    max_rate: int | None = None,
    now: datetime | None = None,
) -> Backup:
    """Dump `source` to `storage` as choregarden-<env>-<stamp>.dump; return the backup."""
    major = server_major(source)
    pg_dump = find_tool("pg_dump", major)
    created = (now or datetime.now(UTC)).replace(microsecond=0)
    name = dump_name(env, created)
    partial = name + PARTIAL_SUFFIX
    if storage.exists(name) or storage.exists(partial):
        raise BackupError(f"{name} already exists: wait a second and run the backup again.")
    argv = [str(pg_dump), "--format=custom", "--no-password", *source.client_args()]
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=stderr, env=source.client_env()
        )
        assert proc.stdout is not None
        _grow_pipe(proc.stdout)
        out = open_write(storage, partial)
        try:
            size, sha256 = pump(proc.stdout, out, progress, max_rate)
            returncode = proc.wait()
            if returncode != 0:
                raise BackupError(
                    f"pg_dump of {source.dbname!r} failed (exit {returncode}): "
                    f"{_stderr_text(stderr)}"
                )
            out.close()
        except BaseException:
            proc.kill()
            proc.wait()
            with contextlib.suppress(Exception):
                out.close()
            with contextlib.suppress(Exception):
                storage.delete(partial)
            raise
    if progress is not None:
        progress.finish()
    rename(storage, partial, name)
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
    write_manifest(storage, name, manifest)
    return Backup(name=name, created=created, size=size, sha256=sha256, manifest=manifest)
