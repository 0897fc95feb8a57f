"""The names of this project's backups: choregarden-<env>-<UTC YYYYmmddTHHMMSSZ>.dump.

While it is written, a dump is NAME.dump.<host>-<pid>.partial: the writer's host and
process id, so that `prune` can tell a backup in progress from one whose writer is gone
(a folder also has the writer's lock, see store.py). NAME.dump.partial, without them,
is what earlier releases wrote.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

PROJECT = "choregarden"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
DUMP_SUFFIX = ".dump"
PARTIAL_SUFFIX = ".partial"  # data still being written (or abandoned by a killed run)
MANIFEST_SUFFIX = ".json"  # written last: a dump without it is not a backup
_WRITER = r"(?:\.(?P<host>[a-z0-9][a-z0-9-]*?)-(?P<pid>\d+))?"
_NAME = re.compile(
    rf"^{PROJECT}-(?P<env>[a-z0-9]+(?:-[a-z0-9]+)*?)-(?P<stamp>\d{{8}}T\d{{6}}Z)"
    rf"(?P<suffix>{re.escape(DUMP_SUFFIX)}(?:{_WRITER}{re.escape(PARTIAL_SUFFIX)}|"
    rf"{re.escape(MANIFEST_SUFFIX)})?)$"
)
_ENV = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class BackupName:
    """One object name in the backup storage that belongs to this project."""

    name: str
    env: str
    created: datetime
    suffix: str
    writer_host: str | None = None  # partials only: who writes it
    writer_pid: int | None = None

    @property
    def dump(self) -> str:
        """The name of the dump this object belongs to (data, partial or manifest)."""
        return self.name[: len(self.name) - len(self.suffix)] + DUMP_SUFFIX

    @property
    def is_dump(self) -> bool:
        return self.suffix == DUMP_SUFFIX

    @property
    def is_partial(self) -> bool:
        return self.suffix.endswith(PARTIAL_SUFFIX)

    @property
    def is_manifest(self) -> bool:
        return self.suffix == DUMP_SUFFIX + MANIFEST_SUFFIX


def check_env(env: str) -> str:
    if not _ENV.match(env):
        raise ValueError(
            f"BACKUP_ENV={env!r} cannot be part of a backup name: use lower-case letters, "
            "digits and single hyphens (e.g. production)."
        )
    return env


def dump_name(env: str, when: datetime) -> str:
    """Return the backup name for `env` taken at `when` (converted to UTC)."""
    stamp = when.astimezone(UTC).strftime(STAMP_FORMAT)
    return f"{PROJECT}-{check_env(env)}-{stamp}{DUMP_SUFFIX}"


def parse(name: str, env: str | None = None) -> BackupName | None:
    """Parse an object name; None when it is not this project's (or not `env`'s)."""
    match = _NAME.match(name)
    if not match or (env is not None and match["env"] != env):
        return None
    created = datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
    pid = int(match["pid"]) if match["pid"] else None
    return BackupName(name, match["env"], created, match["suffix"], match["host"], pid)


def this_host() -> str:
    """This machine's name as it appears in a partial's name (letters, digits, hyphens)."""
    host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-")
    return host[:63] or "host"


def partial_name(dump: str, host: str, pid: int) -> str:
    """Return the name `dump` has while process `pid` on `host` writes it."""
    return f"{dump}.{host}-{pid}{PARTIAL_SUFFIX}"
