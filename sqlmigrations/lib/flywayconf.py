"""Read the Flyway CLI's project configuration (flyway.toml, or the legacy flyway.conf).

Only what the engine's checks need: whether Flyway 10+ would take its PostgreSQL lock
inside a transaction (`postgresql.transactional.lock`, true by default), in which a file
run outside a transaction (executeInTransaction=false) waits forever.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmigrations.lib.exceptions import SqlMigrationError

TOML = "flyway.toml"
LEGACY = "flyway.conf"  # read when there is no flyway.toml, as Flyway 10+ prefers TOML
LOCK_KEY = "postgresql.transactional.lock"


class FlywayConfigError(SqlMigrationError):
    """The Flyway configuration file cannot be read."""


@dataclass(frozen=True)
class FlywayConfig:
    """What a project's Flyway configuration says, as far as the engine cares."""

    path: Path
    transactional_lock: bool  # Flyway's default: true

    @property
    def fix(self) -> str:
        if self.path.name == TOML:
            return f"set `transactional.lock = false` under [flyway.postgresql] in {TOML}"
        return f"set `flyway.{LOCK_KEY}=false` in {self.path.name}"


def load_flyway_config(project_dir: Path) -> FlywayConfig | None:
    """Return the project's Flyway configuration, or None when it has none."""
    toml, legacy = Path(project_dir) / TOML, Path(project_dir) / LEGACY
    if toml.is_file():
        try:
            data = tomllib.loads(toml.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise FlywayConfigError(f"not valid TOML: {err}", path=toml.name) from None
        postgresql = data.get("flyway", {}).get("postgresql", {})
        value: Any = postgresql.get("transactional.lock")  # a quoted key
        if value is None:
            value = postgresql.get("transactional", {}).get("lock")
        return FlywayConfig(toml, _boolean(value, toml.name))
    if legacy.is_file():
        value = None
        for line in legacy.read_text(encoding="utf-8").splitlines():
            key, sep, rest = line.strip().partition("=")
            if sep and key.strip() == f"flyway.{LOCK_KEY}":
                value = rest.strip()
        return FlywayConfig(legacy, _boolean(value, legacy.name))
    return None


def _boolean(value: Any, path: str) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise FlywayConfigError(f"{LOCK_KEY} must be true or false, not {value!r}", path=path)
