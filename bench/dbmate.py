"""dbmate (https://github.com/amacneil/dbmate), a peer of the migration engine in the benches.

The bench installs the Go binary from the `dbmate` npm package into a git-ignored folder
(bench/.dbmate), once, at the pinned version; the product never depends on it.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

VERSION = "2.36.0"
FOLDER = Path(__file__).resolve().parent / ".dbmate"
# npm's package for each machine (the `dbmate` package's optionalDependencies).
ARCHES = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}

UP = "-- migrate:up\n"
DOWN = "\n-- migrate:down\n{down}\n"


class DbmateUnavailable(RuntimeError):
    """dbmate could not be installed or does not run on this machine."""


def binary(folder: Path = FOLDER) -> Path:
    """Return the Go binary inside an npm install of dbmate (not npm's Node.js wrapper)."""
    system = sys.platform.removesuffix("32") if sys.platform.startswith("win") else sys.platform
    arch = ARCHES.get(platform.machine().lower(), platform.machine().lower())
    return folder / "node_modules" / "@dbmate" / f"{system}-{arch}" / "bin" / "dbmate"


def installed_version(path: Path) -> str | None:
    """Return what `dbmate --version` says, or None when it does not run."""
    if not path.is_file():
        return None
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return out.stdout.strip().rsplit(" ", 1)[-1] if out.returncode == 0 else None


def ensure(folder: Path = FOLDER, version: str = VERSION) -> Path:
    """Return the path of dbmate `version`, installing it with npm first if it is missing."""
    path = binary(folder)
    if installed_version(path) == version:
        return path
    npm = shutil.which("npm")
    if npm is None:
        raise DbmateUnavailable(
            "npm was not found, and the bench installs dbmate with it: install Node.js "
            "(Debian: `sudo apt-get install npm`), or pass --dbmate PATH to a dbmate binary, "
            "or --no-dbmate to leave it out."
        )
    print(f"Installing dbmate {version} with npm into {folder} ...", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(folder),
            "--save-exact",
            "--no-audit",
            "--no-fund",
            f"dbmate@{version}",
        ],
        capture_output=True,
        text=True,
    )
    found = installed_version(path)
    if out.returncode != 0 or found != version:
        raise DbmateUnavailable(
            f"`npm install dbmate@{version}` into {folder} failed (exit {out.returncode}, "
            f"binary {path} reports {found!r}):\n{out.stderr[-2000:]}\nCheck that the npm "
            "registry is reachable, or pass --dbmate PATH to a dbmate binary."
        )
    return path


def migration_text(sql: str, down: str) -> str:
    """Return a SQL file in dbmate's format: the same SQL under `-- migrate:up`."""
    return UP + sql + DOWN.format(down=down)
