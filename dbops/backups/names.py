"""The names of this project's backups: choregarden-<env>-<UTC YYYYmmddTHHMMSSZ>.dump."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

PROJECT = "choregarden"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
DUMP_SUFFIX = ".dump"
PARTIAL_SUFFIX = ".partial"  # data still being written (or abandoned by a killed run)
MANIFEST_SUFFIX = ".json"  # written last: a dump without it is not a backup
_NAME = re.compile(
    rf"^{PROJECT}-(?P<env>[a-z0-9]+(?:-[a-z0-9]+)*?)-(?P<stamp>\d{{8}}T\d{{6}}Z)"
    rf"(?P<suffix>{re.escape(DUMP_SUFFIX)}(?:{re.escape(PARTIAL_SUFFIX)}|"
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

    @property
    def dump(self) -> str:
        """The name of the dump this object belongs to (data, partial or manifest)."""
        return self.name[: len(self.name) - len(self.suffix)] + DUMP_SUFFIX

    @property
    def is_dump(self) -> bool:
        return self.suffix == DUMP_SUFFIX

    @property
    def is_partial(self) -> bool:
        return self.suffix == DUMP_SUFFIX + PARTIAL_SUFFIX

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
    return BackupName(name=name, env=match["env"], created=created, suffix=match["suffix"])
