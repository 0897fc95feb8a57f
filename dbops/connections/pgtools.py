"""Run PostgreSQL's client tools (pg_dump, pg_restore, psql, pg_basebackup) as one role.

The one runner for them: it finds a tool of the server's major version, logs it in with
the password in PGPASSWORD (never on the command line, where `ps` shows it), drops the
caller's PG* variables that would change where or how it connects, starts it in a process
group of its own that dies with this process (sqlmigrations.lib.processes), bounds its
time, and masks secrets in what it reports.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from dbops.connections.config import APPLICATION_NAME, CONNECT_TIMEOUT, SETTING_KEY, ConnInfo
from sqlmigrations.lib import processes
from sqlmigrations.redact import redact, register_secret

_VERSION = re.compile(r"\b(\d+)(?:\.\d+)*")
# Client variables that would silently change where or how the tools connect.
_PG_ENV_KEEP = {"PGTZ"}
DEFAULT_TIMEOUT = 600.0


class ToolNotFound(ImproperlyConfigured):
    """No client tool of a usable version is installed."""


class ToolFailed(RuntimeError):
    """A tool exited with an error or ran out of time; the message is redacted."""


def environment(info: ConnInfo | None = None) -> dict[str, str]:
    """Return the tool's environment: this one without PG* variables, plus the login."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k in _PG_ENV_KEEP}
    if info is None:
        return env
    register_secret(info.password)  # whatever the tool says back is masked
    env.update(
        PGPASSWORD=info.password,
        PGSSLMODE=info.sslmode,
        PGAPPNAME=info.application_name or APPLICATION_NAME,
        PGCONNECT_TIMEOUT=str(info.connect_timeout or CONNECT_TIMEOUT),
    )
    if info.sslrootcert:
        env["PGSSLROOTCERT"] = info.sslrootcert
    if info.options:
        env["PGOPTIONS"] = info.options
    return env


def command(tool: Path | str, info: ConnInfo, *args: str) -> list[str]:
    """Return the tool's argv: `args`, then where to connect; never the password."""
    return [
        str(tool),
        *args,
        "--no-password",
        *("-h", info.host, "-p", str(info.port), "-U", info.user, "-d", info.dbname),
    ]


def popen(argv: Sequence[str], info: ConnInfo | None, **kwargs: Any) -> processes.Popen[Any]:
    """Start a tool in a process group of its own, logged in as `info` (when given)."""
    return processes.popen(argv, env=environment(info), start_new_session=True, **kwargs)


def run(
    argv: Sequence[str],
    info: ConnInfo | None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    **kwargs: Any,
) -> processes.CompletedProcess[str]:
    """Run a tool to its end (or `timeout`, then kill its group); return its output as text.

    With `check`, a failure raises ToolFailed naming the tool, its exit code and its
    redacted error output.
    """
    kwargs.setdefault("stdout", processes.PIPE)
    kwargs.setdefault("stderr", processes.PIPE)
    proc = popen(argv, info, text=True, **kwargs)
    name = Path(argv[0]).name
    try:
        out, err = proc.communicate(timeout=timeout)
    except processes.TimeoutExpired:
        kill(proc)
        raise ToolFailed(f"{name} did not finish within {timeout:g} s and was stopped.") from None
    except BaseException:
        kill(proc)
        raise
    done = processes.CompletedProcess(list(argv), proc.returncode, out, err)
    if check and done.returncode != 0:
        raise ToolFailed(failure(name, done.returncode, err or out or ""))
    return done


def kill(proc: processes.Popen[Any]) -> None:
    """Kill a started tool and whatever it started (its process group), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def failure(name: str, returncode: int, output: str) -> str:
    """Say in one line that a tool failed, with its own words and no secret."""
    text = " ".join(redact(output).split())
    return f"{name} failed (exit {returncode}): {text or 'no message'}"


def tool_major(path: Path) -> int | None:
    """Return the major version a tool reports (`pg_dump --version`), or None."""
    try:
        out = processes.run([str(path), "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, processes.TimeoutExpired):
        return None
    match = _VERSION.search(out.stdout)
    return int(match.group(1)) if match else None


def find_tool(name: str, server_major: int) -> Path:
    """Find `name` (pg_dump, pg_restore, psql) of the server's major version, or a newer one."""
    from dbops.localdb.binaries import candidates

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
    if server_major in found:
        return found[server_major]
    usable = sorted(m for m in found if m >= server_major)
    if usable:
        return found[usable[0]]
    have = ", ".join(f"{found[m]} ({m})" for m in sorted(found)) or "none"
    raise ToolNotFound(
        f"{name} for PostgreSQL {server_major} was not found (found: {have}). Install the "
        f"client tools of the server's version (Debian/Ubuntu: `apt-get install "
        f"postgresql-client-{server_major}`) or point PG_BINDIR at their folder."
    )


def server_major(info: ConnInfo) -> int:
    """Return the server's major version; a failed connect is DatabaseUnavailable's line."""
    import psycopg

    from dbops.connections.errors import unavailable

    try:
        with psycopg.connect(**info) as conn:
            return int(conn.info.server_version) // 10000
    except psycopg.Error as err:
        raise unavailable(info.application_name, {SETTING_KEY: info.setting}, err, info) from err


def become(argv: Sequence[str], info: ConnInfo) -> None:
    """Replace this process with an interactive tool (psql), logged in as `info`."""
    processes.become(argv, environment(info))
