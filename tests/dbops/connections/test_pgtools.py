"""The one runner of pg tools: the password in the environment, a group of its own, a timeout."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from dbops.connections import pgtools
from dbops.connections.pgtools import ToolFailed, ToolNotFound, find_tool, server_major, tool_major


@pytest.fixture
def psql(pg_server: Any) -> Path:
    return find_tool("psql", server_major(pg_server.conninfo()))


def test_it_finds_a_tool_of_the_servers_major_or_newer(pg_server: Any) -> None:
    major = server_major(pg_server.conninfo())
    for name in ("pg_dump", "pg_restore", "psql"):
        found = tool_major(find_tool(name, major))
        assert found is not None and found >= major


def test_a_missing_version_names_the_package_and_pg_bindir() -> None:
    with pytest.raises(ToolNotFound) as missing:
        find_tool("pg_dump", 999)
    assert "postgresql-client-999" in str(missing.value) and "PG_BINDIR" in str(missing.value)


def test_it_logs_in_with_the_password_in_the_environment_only(pg_server: Any, psql: Path) -> None:
    info = pg_server.conninfo()
    argv = pgtools.command(psql, info, "-At", "-c", "SELECT pg_sleep(1), current_user")
    proc = pgtools.popen(argv, info, stdout=pgtools.processes.PIPE, text=True)
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().decode()
        group = os.getpgid(proc.pid)
    finally:
        out, _ = proc.communicate(timeout=30)
    assert info.password not in cmdline
    assert f"PGPASSWORD={info.password}" in environ.split("\0")
    assert group == proc.pid != os.getpgid(0)  # a process group of its own
    assert out.strip() == f"|{info.user}"


def test_the_callers_pg_variables_do_not_leak_in(
    pg_server: Any, psql: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGHOST", "db.elsewhere.invalid")
    monkeypatch.setenv("PGOPTIONS", "-c search_path=nowhere")
    info = pg_server.conninfo()

    done = pgtools.run(pgtools.command(psql, info, "-At", "-c", "SHOW search_path"), info)

    assert done.stdout.strip() == '"$user", public'


def test_a_tool_past_its_timeout_is_stopped_with_its_group(pg_server: Any, psql: Path) -> None:
    info = pg_server.conninfo()
    argv = pgtools.command(psql, info, "-c", "SELECT pg_sleep(60)")
    started = time.monotonic()

    with pytest.raises(ToolFailed, match="psql did not finish within 1 s"):
        pgtools.run(argv, info, timeout=1)

    assert time.monotonic() - started < 30


def test_a_failure_is_one_line_with_the_secrets_masked(pg_server: Any, psql: Path) -> None:
    info = pg_server.conninfo()
    # The server echoes the bad value back, the owner's password here.
    query = f"SELECT '{info.password}'::int"
    argv = pgtools.command(psql, info, "-v", "ON_ERROR_STOP=1", "-c", query)

    with pytest.raises(ToolFailed) as failed:
        pgtools.run(argv, info)

    message = str(failed.value)
    assert message.startswith("psql failed (exit 1): ")
    assert "invalid input syntax for type integer" in message
    assert info.password not in message and "\n" not in message
