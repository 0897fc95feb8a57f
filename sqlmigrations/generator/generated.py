"""The files one `makesqlmigration` run makes: linted before they are written, all or none."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from sqlmigrations import engine
from sqlmigrations.lib import lint as linting
from sqlmigrations.lib.files import discover
from sqlmigrations.lib.flywayconf import load_flyway_config

NON_TRANSACTIONAL = "executeInTransaction=false\n"


class FileExists(Exception):
    """A file the generator would write is already there."""


@dataclass
class Part:
    """One V file with its U file and its wrapper."""

    version: int
    name: str
    sql: str
    undo_sql: str
    wrapper: str = ""
    operations: list[Any] = field(default_factory=list)  # the wrapper's state operations
    transactional: bool = True

    @property
    def stem(self) -> str:
        return f"V{self.version}__{self.name}"

    @property
    def script(self) -> str:
        return f"{self.stem}.sql"

    @property
    def undo_script(self) -> str:
        return f"U{self.version}__{self.name}.sql"


@dataclass
class Generated:
    """The parts of one generated migration, not yet written."""

    app_label: str
    parts: list[Part]
    location: Path  # SQL_MIGRATIONS["LOCATION"]
    undo_location: Path
    wrapper_dir: Path
    notes: list[str] = field(default_factory=list)  # warnings for the developer

    def files(
        self, location: Path | None = None, undo: Path | None = None
    ) -> list[tuple[Path, str]]:
        """Return (path, text) of every file, in the order they are written."""
        location, undo = location or self.location, undo or self.undo_location
        out: list[tuple[Path, str]] = []
        for part in self.parts:
            out.append((location / part.script, part.sql))
            if not part.transactional:
                out.append((location / f"{part.script}.conf", NON_TRANSACTIONAL))
            out.append((undo / part.undo_script, part.undo_sql))
            if not part.transactional:
                out.append((undo / f"{part.undo_script}.conf", NON_TRANSACTIONAL))
        return out

    def wrapper_files(self) -> list[tuple[Path, str]]:
        return [(self.wrapper_dir / f"{part.stem}.py", part.wrapper) for part in self.parts]

    def write(self) -> list[Path]:
        """Write every file, or none: a failure removes what this call wrote."""
        files = self.files() + self.wrapper_files()
        there = [str(path) for path, _ in files if path.exists()]
        if there:
            raise FileExists(f"{', '.join(there)} already exist(s); nothing was written")
        made: list[Path] = []
        try:
            for folder in (self.location, self.undo_location, self.wrapper_dir):
                made += _mkdirs(folder)
            init = self.wrapper_dir / "__init__.py"
            if not init.exists():
                init.write_text("")
                made.append(init)
            for path, text in files:
                path.write_text(text)
                made.append(path)
        except BaseException:
            remove(made)
            raise
        return [path for path, _ in files]

    def lint(self) -> list[linting.Finding]:
        """Lint the SQL files as they would be written, beside the files already on disk.

        They are linted from a scratch folder, so a finding leaves nothing in the project.
        """
        existing = engine.load_files(refresh=True)
        with tempfile.TemporaryDirectory(prefix="makesqlmigration-") as tmp:
            location, undo = Path(tmp, "sql"), Path(tmp, "undo")
            location.mkdir()
            undo.mkdir()
            for path, text in self.files(location, undo):
                path.write_text(text)
            new = discover(location, undo_directory=undo)
            return linting.lint(
                [*existing, *new],
                new,
                values=engine.offline_placeholders(),
                flyway=load_flyway_config(Path(settings.BASE_DIR)),
            )


def _mkdirs(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return what was created, deepest last."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    for path in missing:
        path.mkdir()
    return missing


def remove(paths: list[Path]) -> None:
    """Remove files and folders this run created, newest first."""
    for path in reversed(paths):
        if path.is_dir():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
