"""The project's own migrations as they are on disk, so tests follow when a new file lands."""

from __future__ import annotations

from pathlib import Path

from django.db.migrations.loader import MigrationLoader

from sqlmigrations.lib.files import discover
from tests.helpers import REPO

PROJECT_SQL = REPO / "migrations_sql"


def newest_version(location: Path = PROJECT_SQL) -> int:
    """Return the highest V version under `location` (the project's folder by default)."""
    return max(f.name.version.parts[0] for f in discover(location) if f.kind == "V")


def newest_file(location: Path = PROJECT_SQL) -> str:
    """Return the file name of the newest V file under `location`."""
    files = [f for f in discover(location) if f.kind == "V"]
    return files[-1].path.name


def versioned_count(location: Path = PROJECT_SQL) -> int:
    """Return how many V files there are under `location`."""
    return sum(1 for f in discover(location) if f.kind == "V")


def app_leaf(app: str) -> str:
    """Return the name of an app's newest migration in the project's graph."""
    (leaf,) = MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes(app)
    return leaf[1]
