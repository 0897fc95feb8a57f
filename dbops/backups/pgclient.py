"""How pg_dump and pg_restore are found and connect: owner role, SSL, password in the env."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.conf import settings

from dbops.backups import BackupError
from dbops.connections.errors import SETTING_KEY, unavailable
from dbops.localdb.binaries import candidates
from sqlmigrations.lib import processes
from sqlmigrations.redact import register_secret

_VERSION = re.compile(r"\b(\d+)(?:\.\d+)*")
# Client variables that would silently change where or how the tools connect.
_PG_ENV_KEEP = {"PGTZ"}


@dataclass(frozen=True)
class DbTarget:
    """One database, reached as one role: what psycopg and the client tools need."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    sslmode: str = "verify-full"
    sslrootcert: str = ""
    setting: str = ""  # the variables that configure it, for error messages

    def on(self, dbname: str) -> DbTarget:
        """The same server and role, another database."""
        return replace(self, dbname=dbname)

    def conninfo(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.dbname,
            "sslmode": self.sslmode,
            "application_name": "choregarden-backup",
            "connect_timeout": 10,
        }
        if self.sslrootcert:
            info["sslrootcert"] = self.sslrootcert
        return info

    def client_env(self) -> dict[str, str]:
        """Environment for pg_dump/pg_restore: the password never appears in argv."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k in _PG_ENV_KEEP}
        env.update(
            PGPASSWORD=self.password,
            PGSSLMODE=self.sslmode,
            PGAPPNAME="choregarden-backup",
            PGCONNECT_TIMEOUT="10",
        )
        if self.sslrootcert:
            env["PGSSLROOTCERT"] = self.sslrootcert
        return env

    def client_args(self) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", self.dbname]


def source_from_settings(alias: str = "default") -> DbTarget:
    """The project's database as the owner role (MIGRATION_DATABASE_URL when set)."""
    config = getattr(settings, "MIGRATION_DATABASE", None) or settings.DATABASES[alias]
    if not config.get("NAME") and not config.get("SECRET"):
        raise BackupError(
            "No database is configured: set DATABASE_URL (and MIGRATION_DATABASE_URL for the "
            "owner role), or start the local one with `python manage.py devdb start`."
        )
    options = config.get("OPTIONS", {})
    user, password = str(config.get("USER") or ""), str(config.get("PASSWORD") or "")
    host, port, dbname = config.get("HOST"), config.get("PORT"), config.get("NAME")
    if config.get("SECRET"):
        # Credentials from Secrets Manager (dbops.connections.secrets), as the application logs in.
        from dbops.connections.secrets import SecretRef

        secret = config["SECRET"]
        ref = SecretRef(secret["ID"], secret.get("REGION") or "", secret.get("SETTING") or "")
        found = ref.get()
        user, password = found.username, found.password
        host, port, dbname = host or found.host, port or found.port, dbname or found.dbname
    register_secret(password)
    return DbTarget(
        host=str(host or "localhost"),
        port=int(port or 5432),
        user=user,
        password=password,
        dbname=str(dbname),
        sslmode=str(options.get("sslmode") or settings.DB_SSLMODE),
        sslrootcert=str(options.get("sslrootcert") or settings.DB_SSLROOTCERT or ""),
        setting=str(config.get(SETTING_KEY) or ""),
    )


def tool_major(path: Path) -> int | None:
    try:
        out = processes.run([str(path), "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, processes.TimeoutExpired):
        return None
    match = _VERSION.search(out.stdout)
    return int(match.group(1)) if match else None


def find_tool(name: str, server_major: int) -> Path:
    """Find `name` (pg_dump, pg_restore) of the server's major version, or a newer one."""
    folders: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        folders.append(Path(os.environ["PG_BINDIR"]))
    folders.extend(candidates())
    on_path = shutil.which(name)
    if on_path:
        folders.append(Path(on_path).resolve().parent)
    found: dict[int, Path] = {}
    for folder in folders:
        tool = folder / name
        if os.access(tool, os.X_OK):
            major = tool_major(tool)
            if major is not None:
                found.setdefault(major, tool)
    usable = sorted(m for m in found if m >= server_major)
    if server_major in found:
        return found[server_major]
    if usable:
        return found[usable[0]]
    have = ", ".join(f"{found[m]} ({m})" for m in sorted(found)) or "none"
    raise BackupError(
        f"{name} for PostgreSQL {server_major} was not found (found: {have}). Install the "
        f"client tools of the server's version (Debian/Ubuntu: `apt-get install "
        f"postgresql-client-{server_major}`) or point PG_BINDIR at their folder."
    )


def server_major(target: DbTarget) -> int:
    import psycopg

    try:
        with psycopg.connect(**target.conninfo()) as conn:
            return int(conn.info.server_version) // 10000
    except psycopg.Error as err:
        raise unavailable("backup", {SETTING_KEY: target.setting}, err, target.conninfo()) from err
