"""Find, name, configure and checksum the migration files in a directory, as Flyway does."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlmigrations.lib.checksum import decode, flyway_checksum, strip_bom, text_checksum
from sqlmigrations.lib.exceptions import (
    DuplicateRepeatable,
    DuplicateVersion,
    InvalidMigrationName,
    SqlMigrationError,
)
from sqlmigrations.lib.names import SUFFIX, MigrationName, is_candidate, parse_name
from sqlmigrations.lib.placeholders import substitute
from sqlmigrations.lib.scriptconfig import DEFAULT, ScriptConfig, load_script_config

CONF_SUFFIX = ".conf"


@dataclass(frozen=True)
class MigrationFile:
    """Hold one migration file with what Flyway derives from it."""

    path: Path  # absolute path on disk
    script: str  # path relative to the migrations dir with "/": Flyway's `script` column
    name: MigrationName
    checksum: int  # Flyway's checksum of the raw file
    config: ScriptConfig

    @property
    def kind(self) -> str:
        """Return "V", "U" or "R"."""
        return self.name.kind

    def read_text(self) -> str:
        """Return the file's SQL text, decoded with its encoding and without a BOM."""
        data = self.path.read_bytes()
        return strip_bom(decode(data, path=self.script, encoding=self._encoding()))

    def render(self, values: Mapping[str, str | None]) -> str:
        """Return the SQL text with placeholders replaced, unless its config turns that off."""
        text = self.read_text()
        if not self.config.placeholder_replacement:
            return text
        return substitute(
            text, {**values, "flyway:filename": self.flyway_filename}, path=self.script
        )

    def effective_checksum(self, values: Mapping[str, str | None] | None) -> int:
        """Return the checksum Flyway records, given the placeholder values (None: no replacing)."""
        # SqlMigrationResolver: only repeatables with placeholder replacement on are
        # checksummed after replacement; `checksum` then is Flyway's "equivalentChecksum".
        if self.kind != "R" or values is None or not self.config.placeholder_replacement:
            return self.checksum
        return text_checksum(self.render(values))

    @property
    def flyway_filename(self) -> str:
        """Return the `${flyway:filename}` value: ResourceName.getFilename()."""
        # getFilename() rebuilds the name, dropping the "__" when the description is empty.
        if self.name.description:
            return self.name.script
        version = self.name.version.raw if self.name.version else ""
        return f"{self.kind}{version}{self.name.script[-len(SUFFIX) :]}"

    def _encoding(self) -> str:
        """Return the encoding to read this file with."""
        return self.config.encoding or "utf-8"


def rendered(
    files: Iterable[MigrationFile], values: Mapping[str, str | None]
) -> Iterator[tuple[MigrationFile, str]]:
    """Yield each V file with its rendered SQL, leaving out those that cannot be rendered
    (validate and migrate report them)."""
    for mf in files:
        if mf.kind != "V":
            continue
        try:
            yield mf, mf.render(values)
        except SqlMigrationError:
            continue


def discover(
    directory: Path, *, strict: bool = True, undo_directory: Path | None = None
) -> list[MigrationFile]:
    """Return the migrations under `directory`: versions and undos in order, then repeatables.

    `undo_directory` is a second location for the U files (Flyway Teams reads undo files
    from any of its locations): kept apart, they stay out of the location Flyway Community
    scans, which cannot parse a U name. A missing undo folder holds no files.
    """
    found = _scan(Path(directory), strict=strict)
    if undo_directory is not None and Path(undo_directory).is_dir():
        found += _scan(Path(undo_directory), strict=strict)
    # Stable sort: files equal in Flyway's order stay in path order for the error message.
    found.sort(key=lambda f: f.script)
    found.sort(key=_order)
    _check_duplicates(found)
    return found


def _scan(directory: Path, *, strict: bool) -> list[MigrationFile]:
    """Return the migration files under one location, in no particular order."""
    root = Path(directory).resolve()
    if not root.is_dir():
        # Flyway only logs "Skipping filesystem location" unless failOnMissingLocations=true;
        # finding no migrations because of a typo must not look like "nothing to do".
        raise SqlMigrationError(
            "migrations directory not found; create it or point the setting at it",
            path=str(root),
        )
    found: list[MigrationFile] = []
    # Every path _walk gives starts with the root's: cutting it off is relpath, for a
    # third of the cost of a scan.
    prefix = len(os.path.join(root, ""))
    for folder, names in walk(root):
        for filename in names:
            if not is_candidate(filename):
                continue  # README.md, *.sql.conf, callbacks like afterMigrate.sql
            full = os.path.join(folder, filename)
            rel = full[prefix:].replace(os.sep, "/")
            try:
                name = parse_name(filename, path=rel)
            except InvalidMigrationName:
                # Flyway skips such files unless validateMigrationNaming=true; a migration
                # that silently never runs is worse than an error, so strict is the default.
                if strict:
                    raise
                continue
            config = DEFAULT
            if filename + CONF_SUFFIX in names:
                config = load_script_config(Path(full + CONF_SUFFIX), path=rel + CONF_SUFFIX)
            with open(full, "rb") as handle:
                data = handle.read()
            checksum = flyway_checksum(data, path=rel, encoding=config.encoding or "utf-8")
            found.append(MigrationFile(Path(full), rel, name, checksum, config))
    return found


def scan_names(
    directory: Path,
) -> tuple[dict[str, MigrationName], list[InvalidMigrationName]]:
    """Parse the name of every migration file under `directory`, reading no file.

    Return the names by path (relative, with "/", in path order) and the error of each name
    Flyway cannot parse; a missing directory holds no files.
    """
    names: dict[str, MigrationName] = {}
    bad: list[InvalidMigrationName] = []
    if not Path(directory).is_dir():
        return names, bad
    root = Path(directory).resolve()
    found = []
    for folder, filenames in walk(root):
        for filename in filenames:
            if is_candidate(filename):
                full = os.path.join(folder, filename)
                found.append((os.path.relpath(full, root).replace(os.sep, "/"), filename))
    for rel, filename in sorted(found):
        try:
            names[rel] = parse_name(filename, path=rel)
        except InvalidMigrationName as err:
            bad.append(err)
    return names, bad


def walk(root: Path) -> list[tuple[str, set[str]]]:
    """List each readable folder with its readable file names, skipping hidden folders."""
    # FileSystemScanner recurses into sub-folders, skips hidden ones (#1807, Kubernetes'
    # ..data links) and anything File.canRead() says no to. Symlinks are followed.
    result: list[tuple[str, set[str]]] = []
    pending = [str(root)]
    while pending:
        folder = pending.pop()
        files: set[str] = set()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir():
                    if not entry.name.startswith(".") and os.access(entry.path, os.R_OK):
                        pending.append(entry.path)
                elif os.access(entry.path, os.R_OK):
                    files.add(entry.name)
        result.append((folder, files))
    return result


def _order(item: MigrationFile) -> tuple[int, object, bool, bytes]:
    """Sort like ResolvedMigrationComparator: by version (undo after its V), then description."""
    if item.name.version is not None:
        return (0, item.name.version, item.kind == "U", b"")
    # Java's String.compareTo orders UTF-16 code units; UTF-16-BE bytes sort the same way.
    return (1, 0, False, item.name.description.encode("utf-16-be", "surrogatepass"))


def _check_duplicates(files: list[MigrationFile]) -> None:
    """Raise when two neighbours compare equal, as CompositeMigrationResolver does."""
    for current, following in itertools.pairwise(files):
        if _order(current) != _order(following):
            continue
        pair = f"{current.script} and {following.script}"
        if current.name.version is not None:
            raise DuplicateVersion(
                f"found more than one migration with version {current.name.version}"
                f" ({pair}; {current.name.version.raw!r} and {following.name.version.raw!r}"
                " are the same number to Flyway); give one of them the next free version",
                path=following.script,
            )
        raise DuplicateRepeatable(
            f"found more than one repeatable migration with description"
            f" {current.name.description!r} ({pair}); rename one of them",
            path=following.script,
        )
