"""No password or secret ever reaches stdout, stderr or a log, whatever the command does.

Every management command that exists (found at test time, Django's and the libraries'
included) runs with password-bearing URLs, a marker SECRET_KEY and debug logging: with
--help, and for real, on a database of its own; the database commands run again against
a wrong password and a closed port, so that error paths are covered too.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from django.core.management import call_command, get_commands

from dbops.connections.databases import drop_database
from dbops.roles.provision import grant_application_privileges
from tests.helpers import REPO, create_database, run_manage

# The module-scoped fixture needs the test database, which pytest-django makes only for
# sessions with database tests.
pytestmark = pytest.mark.django_db

PROJECT_APPS = ("sqlmigrations", "dbops", "accounts", "chores")
SECRET_KEY = "marker-secret-key-4c1d9e-never-printed-anywhere-0123456789"
# Characters that URLs escape, so both the raw and the %-encoded forms are looked for.
WRONG_PASSWORD = "Wrong:Pw@MARKER/7e2b#"

MUST_SUCCEED = {
    ("diffsettings",),
    ("diffsettings", "--all"),
    ("diffsettings", "--output", "unified"),
    ("diffsettings", "--output", "unified", "--all"),
    ("diffsettings", "--default", "django.conf.global_settings", "--all"),
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


def every_command() -> list[str]:
    """Every management command that exists, Django's and the libraries' included."""
    return sorted(get_commands())


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
    return [(argv, run_manage(*argv, env=env)) for argv in argvs]


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


def test_help_of_every_command_prints_no_secret(
    pg_server: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # In-process (fast): --help builds each command's parser, reading its defaults.
    from django.core.management import ManagementUtility

    results = []
    for name in every_command():
        with pytest.raises(SystemExit) as exit_info:
            ManagementUtility(["manage.py", name, "--help"]).execute()
        out, err = capsys.readouterr()
        proc = subprocess.CompletedProcess([name], exit_info.value.code, out, err + caplog.text)
        assert proc.returncode == 0, (name, err)
        assert "usage: manage.py" in out
        results.append(((name, "--help"), proc))
    assert leaks(results, secrets_of(pg_server)) == []


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


# A plausible invocation of each command, run on a database of its own (some write to
# it). A command not listed runs bare, with stdin closed: one added later is covered
# without a change here. Commands that would change the checkout run in an empty folder.
INVOCATIONS: dict[str, list[tuple[str, ...]]] = {
    "axes_reset_ip": [("axes_reset_ip", "203.0.113.7")],
    "axes_reset_ip_username": [("axes_reset_ip_username", "203.0.113.7", "alice")],
    "axes_reset_username": [("axes_reset_username", "alice")],
    "backup": [("backup", "list"), ("backup", "create")],
    "changepassword": [("changepassword", "no-such-user")],
    "check": [("check", "--database", "default"), ("check", "--deploy")],
    "cognitosync": [
        (
            "cognitosync",
            "--user-pool-id",
            "eu-west-1_none",
            "--region",
            "eu-west-1",
            "--dry-run",
        )
    ],
    "collectstatic": [("collectstatic", "--no-input", "--dry-run")],
    "createcachetable": [("createcachetable", "--dry-run")],
    "createsuperuser": [("createsuperuser", "--no-input", "--username", "probe-admin")],
    "dbhealth": [("dbhealth", "--json")],
    "dbroles": [("dbroles", "check", "--json"), ("dbroles", "provision")],
    "devdb": [("devdb", "status", "--json"), ("devdb", "url")],
    "diffsettings": [
        ("diffsettings", *mode, *every)
        for mode in [(), ("--output", "unified")]
        for every in [(), ("--all",)]
    ]
    + [("diffsettings", "--default", "django.conf.global_settings", "--all")],
    "dumpdata": [("dumpdata", "contenttypes", "auth.group")],
    "findstatic": [("findstatic", "admin/css/base.css")],
    "flush": [("flush", "--no-input")],  # the application role may not TRUNCATE
    "inspectdb": [("inspectdb", "django_migrations")],
    "loaddata": [("loaddata", "no_such_fixture")],
    "makemessages": [("makemessages", "--locale", "xx")],
    "makemigrations": [("makemigrations", "--check", "--dry-run")],
    "makesqlmigration": [("makesqlmigration", "chores", "probe_change", "--dry-run")],
    "migrate": [("migrate", "--no-input"), ("migrate", "--plan")],
    "optimizemigration": [("optimizemigration", "accounts", "V2__create_users_table", "--check")],
    "partitions": [("partitions", "--json", "status")],
    "schemadoc": [("schemadoc", "--output", "schema.md")],
    "schemadrift": [("schemadrift", "--json")],
    "runserver": [("runserver", "--noreload", "127.0.0.1:0")],
    "scheduleassignments": [("scheduleassignments", "--dry-run")],
    "sendtestemail": [("sendtestemail", "probe@example.com")],
    "shell": [("shell",), ("shell", "--command", "print('done')")],
    "sqlflush": [("sqlflush",)],
    "sqlmigrate": [("sqlmigrate", "accounts", "V2__create_users_table")],
    "sqlmigrations": [("sqlmigrations", "info"), ("sqlmigrations", "validate")],
    "sqlsequencereset": [("sqlsequencereset", "accounts", "chores")],
    "squashmigrations": [("squashmigrations", "accounts", "9999", "--no-input")],
    "startapp": [("startapp", "probeapp")],
    "startproject": [("startproject", "probeproject")],
    "test": [("test", "--no-input", "no_such_test_module")],
    "testserver": [("testserver", "--no-input", "--addrport", "0", "no_such_fixture")],
}
# Serves until stopped: it is stopped once it says it serves (or after the timeout).
SERVING = {"runserver"}


def invocations(name: str) -> list[tuple[str, ...]]:
    return INVOCATIONS.get(name, [(name,)])


def serve_briefly(argv: tuple[str, ...], env: dict[str, str], cwd: Path) -> Any:
    with subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), *argv],
        cwd=cwd,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        lines = []
        timer = threading.Timer(120, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                lines.append(line)
                if "Quit the server with" in line:
                    proc.terminate()
        finally:
            timer.cancel()
        proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, "".join(lines), "")


@pytest.fixture(scope="module")
def scratch_env(
    pg_server: Any, secrets_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """secrets_env on a migrated database of its own, which commands may write to."""
    name = create_database(pg_server, f"nosecrets_{os.getpid()}")
    env = dict(
        secrets_env,
        BACKUP_DIR=str(tmp_path_factory.mktemp("backups")),
        DATABASE_URL=pg_server.url(name, role="app"),
        MIGRATION_DATABASE_URL=pg_server.url(name),
    )
    try:
        migrate = run_manage("migrate", "--no-input", env=env)
        assert migrate.returncode == 0, migrate.stderr
        with psycopg.connect(**pg_server.conninfo(name), autocommit=True) as conn:
            grant_application_privileges(
                conn, database=name, owner=pg_server.user, app=pg_server.app_user
            )
        yield env
    finally:
        drop_database(pg_server.conninfo(), name)


def test_every_command_run_for_real_prints_no_secret(
    pg_server: Any, scratch_env: dict[str, str], tmp_path: Path
) -> None:
    def run(argv: tuple[str, ...]) -> tuple[tuple[str, ...], Any]:
        cwd = tmp_path / "-".join(argv)[:60].replace("/", "_")
        cwd.mkdir()
        if argv[0] in SERVING:
            return argv, serve_briefly(argv, scratch_env, cwd)
        return argv, run_manage(*argv, env=scratch_env, cwd=cwd)

    names = every_command()
    runs = [argv for name in names for argv in invocations(name)]
    with ThreadPoolExecutor(max_workers=2) as pool:  # the servers run beside the forks
        results = list(pool.map(run, runs))
    ran = {argv[0] for argv, _proc in results}
    assert ran == set(names)
    project = set(project_commands())
    for argv, proc in results:
        if argv in MUST_SUCCEED and (argv[0] != "devdb" or pg_server.cluster is not None):
            assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
        if argv[0] in project:
            assert "Traceback" not in proc.stderr, (argv, proc.stderr)
    if pg_server.cluster is not None:
        assert "********@127.0.0.1" in dict(results)[("devdb", "url")].stdout
    served = dict(results)[INVOCATIONS["runserver"][0]]
    assert "Quit the server with" in served.stdout, served.stdout
    assert leaks(results, secrets_of(pg_server)) == []


def test_djangos_own_diffsettings_would_print_what_the_projects_masks(settings: Any) -> None:
    # The project's command replaces Django's; this shows the runs above would catch it.
    from django.core.management.commands.diffsettings import Command as DjangosDiffsettings

    settings.DATABASE_URL = "postgres://app:Leak-MARKER-12@db.example.com/x"
    for command, shown in ((DjangosDiffsettings(), True), ("diffsettings", False)):
        out = io.StringIO()
        call_command(command, "--all", stdout=out)
        assert ("Leak-MARKER-12" in out.getvalue()) is shown
        assert (settings.SECRET_KEY in out.getvalue()) is shown
