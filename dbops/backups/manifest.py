"""A backup's manifest (NAME.dump.json): read strictly, or refused with the reason.

The manifest is what makes a dump a backup, and restore and prune act on what it says.
So a manifest that is not JSON, lacks a field, or describes another object (a manifest
copied next to the wrong dump, a size or date edited by hand) is never filled in with a
default: it is refused, and the message names the object and what is wrong.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from dbops.backups import BackupError
from dbops.backups.names import MANIFEST_SUFFIX, BackupName

SHA256 = re.compile(r"^[0-9a-f]{64}$")
TABLE_HASH = re.compile(r"^[0-9a-f]{16}$")


class ManifestError(BackupError):
    """A manifest is unreadable or does not describe its dump: the message names it."""


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _problems(manifest: dict[str, Any], dump: BackupName) -> list[str]:
    problems = []
    if manifest.get("name") != dump.name:
        problems.append(f"its name is {manifest.get('name')!r}, not {dump.name!r}")
    if manifest.get("env") != dump.env:
        problems.append(f"its env is {manifest.get('env')!r}, not {dump.env!r}")
    if not _count(manifest.get("size")):
        problems.append(f"its size {manifest.get('size')!r} is not a number of bytes")
    if not isinstance(manifest.get("sha256"), str) or not SHA256.match(manifest["sha256"]):
        problems.append(f"its sha256 {manifest.get('sha256')!r} is not 64 hex digits")
    try:
        created = datetime.fromisoformat(str(manifest.get("created_at")))
    except ValueError:
        problems.append(f"its created_at {manifest.get('created_at')!r} is not a date")
    else:
        if created != dump.created:
            problems.append(
                f"its created_at {manifest['created_at']} is not the name's "
                f"{dump.created.isoformat()}"
            )
    tables = manifest.get("tables", {})
    if not isinstance(tables, dict) or not all(
        isinstance(name, str)
        and isinstance(t, dict)
        and _count(t.get("rows"))
        and isinstance(t.get("hash"), str)
        and TABLE_HASH.match(t["hash"])
        for name, t in tables.items()
    ):
        problems.append("its tables are not {name: {rows, hash}} fingerprints")
    return problems


def check_manifest(data: bytes, dump: BackupName) -> dict[str, Any]:
    """Return the manifest of `dump` parsed from `data`; raise ManifestError if it is bad."""
    name = dump.dump + MANIFEST_SUFFIX
    try:
        manifest = json.loads(data)
    except ValueError as err:
        raise ManifestError(f"{name} is not JSON ({err})") from err
    if not isinstance(manifest, dict):
        raise ManifestError(f"{name} is not a JSON object")
    problems = _problems(manifest, dump)
    if problems:
        raise ManifestError(f"{name} does not describe {dump.dump}: {'; '.join(problems)}")
    return manifest
