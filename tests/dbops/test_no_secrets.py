"""No password or secret ever reaches stdout, stderr or a log, whatever the command does.

Every management command of the project's apps runs with password-bearing URLs, a marker
SECRET_KEY and debug logging: with --help, for real on the test database, and against a
wrong password and a closed port, so that error paths are covered too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from django.core.management import get_commands

from dbops.roles import grant_application_privileges
from tests.helpers import REPO

# The module-scoped fixture needs the test database, which pytest-django makes only for
# sessions with database tests.
pytestmark = pytest.mark.django_db

PROJECT_APPS = ("dbops", "accounts", "chores")
SECRET_KEY = "marker-secret-key-4c1d9e-never-printed-anywhere-0123456789"
# Characters that URLs escape, so both the raw and the %-encoded forms are looked for.
WRONG_PASSWORD = "Wrong:Pw@MARKER/7e2b#"

REAL_RUNS = [
    ("devdb", "status", "--json"),
    ("devdb", "url"),
    ("migrate", "--no-input"),
    ("sqlmigrations", "info"),
    ("sqlmigrations", "validate"),
    ("dbroles", "check", "--json"),
    ("check", "--database", "default"),
    ("dbhealth", "--json"),
    ("schemadrift", "--json"),
    # Django's prints DATABASES, the URLs and SECRET_KEY as they are.
    ("diffsettings",),
    ("diffsettings", "--all", "--output", "unified"),
]
MUST_SUCCEED = {
    ("diffsettings",),
    ("diffsettings", "--all", "--output", "unified"),
    ("devdb", "status", "--json"),
    ("devdb", "url"),
    ("migrate", "--no-input"),
    ("sqlmigrations", "info"),
    ("dbroles", "check", "--json"),
    ("check", "--database", "default"),
}
FAILING_RUNS = [
    ("migrate", "--no-input"),
    ("sqlmigrations", "info", "--json"),
    ("sqlmigrations", "validate"),
    ("dbroles", "check"),
    ("dbroles", "provision"),
    ("dbhealth", "--json"),
    ("schemadrift",),
]


def project_commands() -> list[str]:
    """The management commands that the project's own apps define (found at test time)."""
    return sorted(name for name, app in get_commands().items() if app in PROJECT_APPS)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def secrets_env(pg_server: Any, django_db_setup: None) -> Iterator[dict[str, str]]:
    from django.conf import settings

    name = settings.DATABASES["default"]["NAME"]
    with psycopg.connect(**pg_server.conninfo(name), autocommit=True) as conn:
        grant_application_privileges(
            conn, database=name, owner=pg_server.user, app=pg_server.app_user
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "AWS_"))}
    env.update(
        DJANGO_ENV="test",
        DEBUG="true",
        LOG_LEVEL="DEBUG",
        DB_POOL="false",
        SECRET_KEY=SECRET_KEY,
        DATABASE_URL=pg_server.url(name, role="app"),
        MIGRATION_DATABASE_URL=pg_server.url(name),
    )
    if pg_server.cluster is not None:
        env["DEVDB_DIR"] = str(pg_server.cluster.requested_dir)
    env.update(pg_server.ssl_env())
    yield env


def secrets_of(pg_server: Any) -> list[str]:
    values = [pg_server.password, pg_server.app_password, SECRET_KEY, WRONG_PASSWORD]
    return [v for value in values for v in {value, quote(value, safe="")} if v]


def run_all(argvs: list[tuple[str, ...]], env: dict[str, str]) -> list[Any]:
    def run(argv: tuple[str, ...]) -> tuple[tuple[str, ...], subprocess.CompletedProcess[str]]:
        proc = subprocess.run(
            [sys.executable, str(REPO / "manage.py"), *argv],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return argv, proc

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(run, argvs))


def leaks(results: list[Any], secrets: list[str]) -> list[str]:
    found = []
    for argv, proc in results:
        for stream, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            for secret in secrets:
                if secret in text:
                    found.append(f"`manage.py {' '.join(argv)}` printed a secret on {stream}")
    return found


def test_the_project_defines_the_commands_this_test_knows_of() -> None:
    commands = project_commands()
    for name in ("devdb", "migrate", "sqlmigrations", "dbroles", "dbhealth"):
        assert name in commands


def test_help_of_every_project_command_prints_no_secret(
    pg_server: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # In-process (fast): --help builds each command's parser, reading its defaults.
    from django.core.management import ManagementUtility

    results = []
    for name in project_commands():
        with pytest.raises(SystemExit) as exit_info:
            ManagementUtility(["manage.py", name, "--help"]).execute()
        out, err = capsys.readouterr()
        proc = subprocess.CompletedProcess([name], exit_info.value.code, out, err + caplog.text)
        assert proc.returncode == 0, (name, err)
        assert "usage: manage.py" in out
        results.append(((name, "--help"), proc))
    assert leaks(results, secrets_of(pg_server)) == []


def test_real_runs_print_no_secret(pg_server: Any, secrets_env: dict[str, str]) -> None:
    runs = [argv for argv in REAL_RUNS if argv[0] != "devdb" or pg_server.cluster is not None]
    results = run_all(runs, secrets_env)
    for argv, proc in results:
        if argv in MUST_SUCCEED:
            assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, (argv, proc.stderr)
    assert leaks(results, secrets_of(pg_server)) == []
    urls = dict(results)[("devdb", "url")].stdout if pg_server.cluster else ""
    assert "********@127.0.0.1" in urls or not pg_server.cluster


@pytest.mark.parametrize("failure", ["wrong password", "closed port"])
def test_failed_connections_print_no_secret(
    pg_server: Any, secrets_env: dict[str, str], failure: str
) -> None:
    name = secrets_env["DATABASE_URL"].rsplit("/", 1)[1]
    port = pg_server.port if failure == "wrong password" else closed_port()
    wrong = quote(WRONG_PASSWORD, safe="")
    env = dict(
        secrets_env,
        DATABASE_URL=f"postgres://{pg_server.app_user}:{wrong}@{pg_server.host}:{port}/{name}",
        MIGRATION_DATABASE_URL=f"postgres://{pg_server.user}:{wrong}@{pg_server.host}:{port}/{name}",
    )
    results = run_all(FAILING_RUNS, env)
    expected = "password authentication failed" if failure == "wrong password" else "refused"
    for argv, proc in results:
        assert proc.returncode != 0, (argv, proc.stdout)
        assert expected in proc.stdout + proc.stderr, (argv, proc.stdout, proc.stderr)
    assert leaks(results, secrets_of(pg_server)) == []
