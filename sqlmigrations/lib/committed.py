"""The committed copies of migration files at a git base ref, for lint's edit check."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from sqlmigrations.lib import processes
from sqlmigrations.lib.checksum import flyway_checksum
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.files import MigrationFile


class GitBaseError(SqlMigrationError):
    """The base ref cannot be used."""


def committed_checksums(
    directory: Path, targets: Iterable[MigrationFile], base: str | None = None
) -> tuple[str | None, dict[str, int]]:
    """Return the base commit and the Flyway checksum of each target V file committed there.

    `base` defaults to the merge base of HEAD with origin/main or main (on main itself:
    HEAD, so uncommitted edits of committed files show). Outside git: (None, {}).
    """
    git = shutil.which("git")
    if git is None or _git(git, directory, "rev-parse", "--git-dir") is None:
        if base is not None:
            raise GitBaseError("not a git checkout, so --base cannot be used", path=str(directory))
        return None, {}
    commit = None
    if base is not None:
        commit = _git(git, directory, "rev-parse", "--verify", f"{base}^{{commit}}")
        if commit is None:
            raise GitBaseError(f"unknown git ref {base!r}; pass an existing --base", path="--base")
    else:
        for ref in ("origin/main", "main", "origin/master", "master"):
            commit = _git(git, directory, "merge-base", ref, "HEAD")
            if commit:
                break
        commit = commit or _git(git, directory, "rev-parse", "--verify", "HEAD^{commit}")
        if commit is None:
            return None, {}
    listing = _git(git, directory, "ls-tree", "-r", "-z", commit, "--", ".") or ""
    blobs: dict[str, str] = {}
    for entry in filter(None, listing.split("\0")):
        meta, _, rel = entry.partition("\t")
        blobs[rel] = meta.split()[2]
    result: dict[str, int] = {}
    for mf in targets:
        blob = blobs.get(mf.script) if mf.kind == "V" else None
        if blob is None:
            continue
        data = processes.run(
            [git, "cat-file", "blob", blob], cwd=directory, capture_output=True, check=True
        ).stdout
        try:
            result[mf.script] = flyway_checksum(data, path=mf.script)
        except SqlMigrationError:
            continue  # the committed copy was unreadable; the current one is what counts
    return commit, result


def is_committed(path: Path) -> bool | None:
    """Tell whether a file is in the HEAD commit (None: no git, or not a checkout)."""
    git = shutil.which("git")
    directory = path.parent
    if git is None or not directory.is_dir():
        return None
    if _git(git, directory, "rev-parse", "--git-dir") is None:
        return None
    return _git(git, directory, "cat-file", "-e", f"HEAD:./{path.name}") is not None


def _git(git: str, directory: Path, *args: str) -> str | None:
    done = processes.run([git, *args], cwd=directory, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None
