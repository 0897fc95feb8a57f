"""Every management command with the database down or its secret broken: one line, no traceback.

Each command runs as `python manage.py ...` runs it (Django set up once, then each command
line in a fork of that process: tests/commandfork.py; a few tests run manage.py itself). The
database URL points
at a closed port, or the credentials come from a Secrets Manager secret (moto's server, in
this process) that is not valid JSON, has no password, has a port that is not a number, or
does not exist. A command that uses the database must exit 1 (dbhealth: 2, critical) with
one line on stderr that names the setting to fix; a command that does not use it must run
as without these settings (no traceback).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.helpers import REPO, run_manage

PASSWORD = "Leaky-Passw0rd-77"
DOWN_URL = f"postgres://app:{PASSWORD}@127.0.0.1:1/choregarden"
REGION = "eu-west-1"
SECRETS = {
    "invalid-json": f'{{"username": "app", "password": "{PASSWORD}", ',
    "no-password": '{"username": "app", "host": "127.0.0.1", "port": 5432}',
    "string-port": json.dumps(
        {"username": "app", "password": PASSWORD, "host": "127.0.0.1", "port": "x"}
    ),
}
BROKEN = {
    "invalid-json": "is not valid JSON",
    "no-password": "has no 'password'",
    "string-port": "has a 'port' that is not a whole number",
    "missing": "does not exist",
}

# Every command of the project, its arguments, and whether it uses the database. A command
# added later fails test_the_table_lists_every_command until it is listed here.
DB = "database"
NO_DB = "no database"
COMMANDS: dict[str, tuple[str, list[str]]] = {
    "addtotp": (DB, ["alice"]),
    "analytics": (DB, ["refresh"]),
    "axes_list_attempts": (DB, []),
    "axes_reset": (DB, []),
    "axes_reset_failure_logs": (DB, []),
    "axes_reset_ip": (DB, ["10.0.0.1"]),
    "axes_reset_ip_username": (DB, ["10.0.0.1", "alice"]),
    "axes_reset_logs": (DB, []),
    "axes_reset_username": (DB, ["alice"]),
    "backup": (DB, ["create"]),
    "changepassword": (DB, ["alice"]),
    "check": (NO_DB, []),
    "clearsessions": (DB, []),
    "cognitosync": (DB, ["--dry-run", "--user-pool-id", "eu-west-1_AbCdEf123"]),
    "collectstatic": (NO_DB, ["--noinput", "--dry-run"]),
    "compilemessages": (NO_DB, []),
    "createcachetable": (NO_DB, []),  # no cache table is configured
    "createsuperuser": (DB, ["--noinput", "--username", "alice", "--email", "a@example.com"]),
    # CloudWatch's alarms, not the database: named from settings (no AWS here: one line).
    "dbalarms": (NO_DB, ["sync", "--dry-run"]),
    "dbhealth": (DB, ["--fail-on", "critical"]),
    "dbmaintenance": (DB, ["--json"]),
    "dbroles": (DB, ["check"]),
    "dbshell": (DB, ["--", "-c", "SELECT 1"]),
    "demodata": (DB, []),
    "devdb": (NO_DB, ["status"]),
    "diffsettings": (NO_DB, ["--output", "unified"]),
    "dumpdata": (DB, ["auth.user"]),
    "findstatic": (NO_DB, ["admin/css/base.css"]),
    "flush": (DB, ["--noinput"]),
    "inspectdb": (DB, []),
    "loaddata": (DB, ["nothing.json"]),
    "makemessages": (NO_DB, ["--all"]),
    # Django checks the history only to warn (a RuntimeWarning, exit 0): it works offline.
    "makemigrations": (NO_DB, ["--check", "--dry-run"]),
    "makesqlmigration": (NO_DB, ["chores", "nothing", "--dry-run"]),
    "migrate": (DB, ["--no-input"]),
    "optimizemigration": (NO_DB, ["chores", "V3__create_households_table", "--check"]),
    "partitions": (DB, ["status"]),
    "remove_stale_contenttypes": (DB, ["--noinput"]),
    # A server: --noreload so that it ends when it cannot start (the reloader would wait).
    "runserver": (DB, ["--noreload", "127.0.0.1:{port}"]),
    "scheduleassignments": (DB, []),
    "schemadoc": (DB, ["--check"]),
    "schemadrift": (DB, []),
    "sendtestemail": (NO_DB, ["--managers"]),  # MANAGERS is empty: nothing is sent
    "shell": (NO_DB, ["-c", "pass"]),
    "showmigrations": (DB, []),
    "sqlflush": (DB, []),
    "sqlmigrate": (DB, ["chores", "V3__create_households_table"]),
    "sqlmigrations": (DB, ["info"]),
    "sqlsequencereset": (NO_DB, ["chores"]),
    "squashmigrations": (DB, ["chores", "V4__create_household_members_table", "--noinput"]),
    "startapp": (NO_DB, ["demo_app"]),
    "startproject": (NO_DB, ["demo_project"]),
    "test": (NO_DB, ["--noinput", "sqlmigrations.lib"]),  # finds no tests: needs no database
    "testserver": (DB, ["--noinput", "nothing.json"]),
}
# Django warns before failing here: testserver tries the 'postgres' database, then the
# project's, with a RuntimeWarning in between.
WARNS_FIRST = {"testserver"}
# The representative commands run with every kind of broken secret: Django's own (one
# that connects lazily, one that spawns psql), the migration engine, health, pg_dump.
SECRET_VARIANT_COMMANDS = ["showmigrations", "migrate", "dbhealth", "dbshell", "backup"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def secrets_endpoint() -> Iterator[str]:
    """Moto's server, holding the broken secrets; `manage.py` reaches it over HTTP."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for name, text in SECRETS.items():
        client.create_secret(Name=name, SecretString=text)
    yield endpoint
    server.stop()


def base_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an operator's shell: no database settings, no local cluster."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DATABASE_", "MIGRATION_", "REPLICA_", "AWS_"))
    }
    env.update(
        DJANGO_ENV="test",
        DEVDB_DIR=str(tmp_path / "no-devdb"),
        ENV_FILE=str(tmp_path / "no.env"),
        DB_POOL="false",
        # Only the error: the AWS SDK's and the secret reader's INFO lines are logs.
        LOG_LEVEL="WARNING",
        BACKUP_DIR=str(tmp_path / "backups"),
        PYTHONPATH=str(REPO),
    )
    return env


def down_env(tmp_path: Path) -> dict[str, str]:
    return {**base_env(tmp_path), "DATABASE_URL": DOWN_URL, "DB_SSLMODE": "disable"}


def secret_env(tmp_path: Path, endpoint: str, secret_id: str) -> dict[str, str]:
    return {
        **base_env(tmp_path),
        "DB_SECRET_ID": secret_id,
        "DB_NAME": "choregarden",
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint,
    }


def argv(name: str) -> list[str]:
    args = [arg.format(port=free_port()) for arg in COMMANDS[name][1]]
    return [name, *args]


def run_all(names: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run each command as `manage.py` does, Django started once (tests/commandfork.py)."""
    cwd.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "commandfork.py")],
        input=json.dumps([argv(name) for name in names]),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    return {
        name: SimpleNamespace(returncode=r["code"], stdout=r["stdout"], stderr=r["stderr"])
        for name, r in zip(names, results, strict=True)
    }


def assert_one_line(name: str, proc: Any, *, setting: str, cause: str) -> None:
    """The command failed with its code and one line that names the setting and the cause."""
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, (name, output)
    assert PASSWORD not in output, name
    assert proc.returncode == (2 if name == "dbhealth" else 1), (name, proc.returncode, output)
    lines = proc.stderr.strip().splitlines()
    if name not in WARNS_FIRST:
        assert len(lines) == 1, (name, proc.stderr)
    line = lines[-1]
    assert line.startswith("CommandError: cannot connect to the database"), (name, line)
    assert setting in line, (name, line)
    assert cause in line, (name, line)


def test_the_table_lists_every_command() -> None:
    from django.core.management import get_commands

    assert sorted(get_commands()) == sorted(COMMANDS)


@pytest.fixture(scope="module")
def down(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("down")
    return run_all(sorted(COMMANDS), down_env(tmp_path), tmp_path / "cwd")


@pytest.mark.parametrize("name", sorted(n for n, (kind, _) in COMMANDS.items() if kind == DB))
def test_a_database_command_with_the_database_down_says_so_in_one_line(
    name: str, down: dict[str, Any]
) -> None:
    assert_one_line(name, down[name], setting="(DATABASE_URL)", cause="Connection refused")


@pytest.mark.parametrize("name", sorted(n for n, (kind, _) in COMMANDS.items() if kind == NO_DB))
def test_a_command_without_the_database_is_not_affected(name: str, down: dict[str, Any]) -> None:
    proc = down[name]
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, (name, output)
    assert PASSWORD not in output, name
    if name == "makemigrations":
        assert "cannot connect to the database" in proc.stderr  # Django's warning, one line
    else:
        assert "cannot connect" not in output, (name, output)
    # Exit 0, or a refusal of its own in one line (no gettext tools, no locale folder, no
    # AWS region for CloudWatch).
    expected = {"devdb": 3}.get(name, 0)
    if proc.returncode != expected:
        assert proc.returncode == 1, (name, proc.returncode, output)
        assert len(proc.stderr.strip().splitlines()) == 1, (name, proc.stderr)
        assert name in {"compilemessages", "makemessages", "dbalarms"}, (name, output)


@pytest.fixture(scope="module")
def invalid_secret(
    tmp_path_factory: pytest.TempPathFactory, secrets_endpoint: str
) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("secret")
    names = sorted(n for n, (kind, _) in COMMANDS.items() if kind == DB)
    return run_all(names, secret_env(tmp_path, secrets_endpoint, "invalid-json"), tmp_path / "c")


@pytest.mark.parametrize("name", sorted(n for n, (kind, _) in COMMANDS.items() if kind == DB))
def test_a_database_command_with_a_broken_secret_says_so_in_one_line(
    name: str, invalid_secret: dict[str, Any]
) -> None:
    assert_one_line(
        name, invalid_secret[name], setting="DB_SECRET_ID", cause=BROKEN["invalid-json"]
    )


@pytest.mark.parametrize("secret_id", sorted(BROKEN))
def test_every_kind_of_broken_secret_is_one_line(
    secret_id: str, secrets_endpoint: str, tmp_path: Path
) -> None:
    env = secret_env(tmp_path, secrets_endpoint, secret_id)
    results = run_all(SECRET_VARIANT_COMMANDS, env, tmp_path / "cwd")
    for name, proc in results.items():
        assert_one_line(name, proc, setting="DB_SECRET_ID", cause=BROKEN[secret_id])
        assert f"secret {secret_id!r}" in proc.stderr


def test_an_unreachable_database_is_published_to_cloudwatch_as_critical(
    tmp_path: Path, secrets_endpoint: str
) -> None:
    """The CloudWatch alarm on HealthStatus fires too, not only the cron job's exit code."""
    env = {
        **secret_env(tmp_path, secrets_endpoint, "missing"),
        "AWS_ENDPOINT_URL_CLOUDWATCH": secrets_endpoint,
    }
    proc = run_manage("dbhealth", "--cloudwatch", "--namespace", "CG/Unreachable", env=env)
    assert proc.returncode == 2
    published, error = proc.stderr.splitlines()
    assert published == "Published 1 metrics to CloudWatch namespace CG/Unreachable."
    assert error.startswith("CommandError: cannot connect to the database choregarden")
    assert "does not exist" in error
    client = boto3.client(
        "cloudwatch",
        region_name=REGION,
        endpoint_url=secrets_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    [metric] = client.list_metrics(Namespace="CG/Unreachable")["Metrics"]
    assert metric["MetricName"] == "HealthStatus"
    assert {"Name": "Check", "Value": "connections"} in metric["Dimensions"]


def test_the_owner_and_replica_settings_are_named(tmp_path: Path) -> None:
    env = {
        **down_env(tmp_path),
        "MIGRATION_DATABASE_URL": DOWN_URL.replace("app:", "owner:"),
        "REPLICA_DATABASE_URL": DOWN_URL.replace("app:", "reader:"),
    }
    migrate = run_manage("migrate", "--no-input", env=env, cwd=tmp_path)
    assert_one_line("migrate", migrate, setting="(MIGRATION_DATABASE_URL)", cause="refused")
    assert "owner@127.0.0.1:1/choregarden" in migrate.stderr
    replica = run_manage("dbhealth", "--database", "replica", env=env, cwd=tmp_path)
    assert_one_line("dbhealth", replica, setting="(REPLICA_DATABASE_URL)", cause="refused")


def test_development_suggests_the_local_database(tmp_path: Path) -> None:
    env = {**down_env(tmp_path), "DJANGO_ENV": "development"}
    proc = run_manage("showmigrations", env=env, cwd=tmp_path)
    assert_one_line("showmigrations", proc, setting="(DATABASE_URL)", cause="refused")
    assert "Or unset DATABASE_URL and use the local database: python manage.py devdb start" in (
        proc.stderr
    )


def test_a_pool_that_never_connected_says_why(tmp_path: Path) -> None:
    env = {**down_env(tmp_path), "DB_POOL": "true", "DB_POOL_TIMEOUT": "1"}
    proc = run_manage("showmigrations", env=env, cwd=tmp_path)
    line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert line.startswith("CommandError: cannot connect to the database")
    assert "Connection refused" in line
    assert "stayed in use" not in line  # not busy: never connected


def test_nothing_configured_never_falls_back_to_libpq_defaults(tmp_path: Path) -> None:
    """No URL, no secret, no local cluster: no command may find some server on its own."""
    env = base_env(tmp_path)
    env.update(PGHOST="127.0.0.1", PGPORT="1")  # where libpq's defaults would go
    for args in (["sqlmigrations", "info"], ["dbroles", "check"], ["testserver", "--noinput"]):
        proc = run_manage(*args, env=env, cwd=tmp_path)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        line = proc.stderr.strip().splitlines()[-1]
        assert "no database is configured: set DATABASE_URL" in line, (args, line)
        assert "python manage.py devdb start" in line
        assert "Connection refused" not in proc.stderr  # it never tried


def test_traceback_still_shows_the_traceback(tmp_path: Path) -> None:
    proc = run_manage("showmigrations", "--traceback", env=down_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert "DatabaseUnavailable: cannot connect to the database" in proc.stderr
