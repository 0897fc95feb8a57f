"""Find the PostgreSQL server binaries on this machine."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from sqlmigrations.lib import processes

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found. Install them: "
    "Debian/Ubuntu: `sudo apt-get install postgresql` (binaries land in "
    "/usr/lib/postgresql/<version>/bin); macOS: `brew install postgresql@15`. "
    "Or point PG_BINDIR at the folder that holds initdb, or set DATABASE_URL to use "
    "an existing server."
)
REQUIRED = ("initdb", "pg_ctl", "postgres")


class BinariesNotFound(RuntimeError):
    """No PostgreSQL server binaries were found."""


def _has_all(folder: Path) -> bool:
    return all(os.access(folder / name, os.X_OK) for name in REQUIRED)


def _version_key(folder: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin: prefer the newest major, compared as numbers
    name = Path(folder).parent.name
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def candidates() -> list[Path]:
    """List folders that may hold the server binaries, in order of preference."""
    found: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        found.append(Path(os.environ["PG_BINDIR"]))
    on_path = shutil.which("initdb")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = processes.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                found.append(Path(out.stdout.strip()))
        except (OSError, processes.TimeoutExpired):
            pass
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/local/opt/postgresql@*/bin"):
        found.extend(Path(p) for p in sorted(glob.glob(pattern), key=_version_key, reverse=True))
    return found


def find_bindir() -> Path:
    """Return the first folder holding initdb, pg_ctl and postgres."""
    explicit = os.environ.get("PG_BINDIR")
    if explicit and not _has_all(Path(explicit)):
        raise BinariesNotFound(
            f"PG_BINDIR={explicit} does not contain initdb, pg_ctl and postgres: point it at "
            "the folder that does, or unset it. " + INSTALL_HINT
        )
    for folder in candidates():
        if _has_all(folder):
            return folder
    raise BinariesNotFound(INSTALL_HINT)
