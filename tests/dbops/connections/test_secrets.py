"""Database credentials from Secrets Manager (moto) against the real test PostgreSQL (issue 5.3)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest
from django.db import OperationalError
from moto import mock_aws
from psycopg import sql

from dbops.connections import secrets
from dbops.connections.errors import DatabaseUnavailable
from dbops.connections.secrets import SecretError, SecretRef
from sqlmigrations.redact import redact
from tests.settings_probe import PRODUCTION, load_database_settings, parsed

REGION = "eu-west-1"
OLD_PASSWORD = "old-Rotation-pass-1"
NEW_PASSWORD = "new-Rotation-pass-2"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Moto's Secrets Manager, with the module's client and cache made inside it."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        secrets.reset()
        yield boto3.client("secretsmanager", region_name=REGION)
    secrets.reset()


@pytest.fixture
def secret_reads(aws: Any) -> list[str]:
    """Every GetSecretValue call the project's own client makes, by secret id."""
    calls: list[str] = []

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        calls.append(params["SecretId"])

    secrets.client(REGION).meta.events.register(
        "before-parameter-build.secrets-manager.GetSecretValue", record
    )
    return calls


def admin(pg_server: Any) -> psycopg.Connection[Any]:
    """Connect as a role that may create roles: the local cluster's superuser, else the owner."""
    if pg_server.cluster is not None:
        info = pg_server.cluster.conninfo("superuser", pg_server.dbname)
    else:
        info = pg_server.conninfo()  # TEST_DATABASE_URL's role needs CREATEROLE here
    return psycopg.connect(**info, autocommit=True)


@pytest.fixture
def login_role(pg_server: Any) -> Iterator[str]:
    """A throwaway login role whose password the test rotates (not the app role others use)."""
    role = f"rotation_{uuid.uuid4().hex[:8]}"
    with admin(pg_server) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(OLD_PASSWORD)
            )
        )
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(pg_server.dbname), sql.Identifier(role)
            )
        )
    yield role
    with admin(pg_server) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role]
        )
        conn.execute(
            sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(
                sql.Identifier(pg_server.dbname), sql.Identifier(role)
            )
        )
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def rds_secret(pg_server: Any, username: str, password: str) -> str:
    return json.dumps(
        {
            "username": username,
            "password": password,
            "engine": "postgres",
            "host": pg_server.host,
            "port": pg_server.port,
            "dbname": pg_server.dbname,
        }
    )


def rotate(pg_server: Any, aws: Any, secret_id: str, role: str, password: str) -> None:
    """Do what the rotation Lambda does: change the role's password, then the secret."""
    with admin(pg_server) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )
    aws.put_secret_value(SecretId=secret_id, SecretString=rds_secret(pg_server, role, password))


@pytest.fixture
def make_wrapper(pg_server: Any, django_db_blocker: Any) -> Iterator[Any]:
    """Add Django connections with the project's backend, each under an alias of its own."""
    from django.conf import settings
    from django.db import connections

    aliases: list[str] = []

    def make(secret_id: str, *, pool: bool, **overrides: Any) -> Any:
        config: dict[str, Any] = {
            "ENGINE": "dbops.db.backends.postgresql",
            "NAME": "",
            "HOST": "",
            "PORT": "",
            "USER": "",
            "PASSWORD": "",
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": dict(pg_server.options),
            "SECRET": {"ID": secret_id, "REGION": REGION, "SETTING": "DB_SECRET_ID"},
        }
        if pool:
            # One connection: no background growth can race a test's drain().
            config["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1, "timeout": 5}
        config.update(overrides)
        alias = f"secrets_{uuid.uuid4().hex[:8]}"
        # settings.DATABASES is connections.settings: signal handlers find the alias there.
        configured = connections.configure_settings({"default": {}, alias: config})[alias]
        settings.DATABASES[alias] = configured
        aliases.append(alias)
        return connections[alias]

    with django_db_blocker.unblock():
        yield make
        for alias in aliases:
            wrapper = connections[alias]
            wrapper.close()
            if wrapper.pool is not None:
                wrapper.close_pool()
            del connections[alias]
            del settings.DATABASES[alias]


def whoami(wrapper: Any) -> tuple[str, str]:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT current_user, current_database()")
        return cursor.fetchone()


def test_it_logs_in_with_the_secret_and_reads_it_once(
    aws: Any, secret_reads: list[str], make_wrapper: Any, login_role: str, pg_server: Any
) -> None:
    aws.create_secret(
        Name="chore/app", SecretString=rds_secret(pg_server, login_role, OLD_PASSWORD)
    )
    wrapper = make_wrapper("chore/app", pool=False)
    assert whoami(wrapper) == (login_role, pg_server.dbname)
    wrapper.close()
    assert whoami(wrapper) == (login_role, pg_server.dbname)
    assert secret_reads == ["chore/app"]


def test_a_rotated_password_reaches_new_pooled_connections(
    aws: Any, secret_reads: list[str], make_wrapper: Any, login_role: str, pg_server: Any
) -> None:
    aws.create_secret(
        Name="chore/app", SecretString=rds_secret(pg_server, login_role, OLD_PASSWORD)
    )
    wrapper = make_wrapper("chore/app", pool=True)
    assert whoami(wrapper) == (login_role, pg_server.dbname)
    pool = wrapper.pool
    wrapper.close()  # back to the pool

    rotate(pg_server, aws, "chore/app", login_role, NEW_PASSWORD)
    pool.drain()  # the pool replaces every connection: all must log in again

    assert whoami(wrapper) == (login_role, pg_server.dbname)
    assert wrapper.pool is pool  # the same pool, made before the rotation
    assert secret_reads == ["chore/app", "chore/app"]  # one refresh after the refused login
    wrapper.close()
    pool.drain()
    assert whoami(wrapper) == (login_role, pg_server.dbname)
    assert len(secret_reads) == 2  # later connections use the cached new value


def test_pool_workers_reconnecting_at_once_share_one_refresh(
    aws: Any, secret_reads: list[str], make_wrapper: Any, login_role: str, pg_server: Any
) -> None:
    aws.create_secret(
        Name="chore/app", SecretString=rds_secret(pg_server, login_role, OLD_PASSWORD)
    )
    wrapper = make_wrapper("chore/app", pool=True)
    wrapper.settings_dict["OPTIONS"]["pool"].update(min_size=3, max_size=3)
    assert whoami(wrapper)[0] == login_role
    wrapper.close()
    pool = wrapper.pool
    pool.wait(timeout=10)  # three connections, made with the old password

    rotate(pg_server, aws, "chore/app", login_role, NEW_PASSWORD)
    pool.drain()  # the pool's three workers reconnect in parallel
    pool.wait(timeout=10)

    assert len(secret_reads) == 2
    assert pool.get_stats().get("connections_errors", 0) == 0  # each retry succeeded
    with admin(pg_server) as conn:
        sessions = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [login_role]
        ).fetchone()[0]
    assert sessions == 3


def test_django_pool_alone_keeps_the_rotated_out_password(
    make_wrapper: Any, login_role: str, pg_server: Any
) -> None:
    """Why the backend exists: Django's pool keeps the password it was made with."""
    wrapper = make_wrapper(
        "",
        pool=True,
        SECRET=None,
        NAME=pg_server.dbname,
        HOST=pg_server.host,
        PORT=pg_server.port,
        USER=login_role,
        PASSWORD=OLD_PASSWORD,
    )
    wrapper.settings_dict["OPTIONS"]["pool"]["timeout"] = 1
    assert whoami(wrapper)[0] == login_role
    pool = wrapper.pool
    wrapper.close()
    with admin(pg_server) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(login_role), sql.Literal(NEW_PASSWORD)
            )
        )
    pool.drain()
    # The pool's timeout says why it had no connection: its own connects were refused.
    with pytest.raises(OperationalError, match="password authentication failed"):
        whoami(wrapper)


def test_a_rotated_password_reaches_a_connection_without_pool(
    aws: Any, secret_reads: list[str], make_wrapper: Any, login_role: str, pg_server: Any
) -> None:
    aws.create_secret(
        Name="chore/app", SecretString=rds_secret(pg_server, login_role, OLD_PASSWORD)
    )
    wrapper = make_wrapper("chore/app", pool=False)
    assert whoami(wrapper)[0] == login_role
    wrapper.close()
    rotate(pg_server, aws, "chore/app", login_role, NEW_PASSWORD)
    assert whoami(wrapper)[0] == login_role
    assert len(secret_reads) == 2


def test_a_wrong_password_is_read_again_once_then_reported(
    aws: Any,
    secret_reads: list[str],
    make_wrapper: Any,
    login_role: str,
    pg_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "not-The-password-0"
    aws.create_secret(Name="chore/app", SecretString=rds_secret(pg_server, login_role, wrong))
    wrapper = make_wrapper("chore/app", pool=False)
    with pytest.raises(OperationalError) as info:
        whoami(wrapper)
    assert "password authentication failed" in str(info.value)
    assert secrets.authentication_failed(info.value.__cause__)
    assert len(secret_reads) == 2  # read again once, no loop
    assert wrong not in str(info.value) + caplog.text


def test_the_login_retry_after_rotation_is_logged_without_the_password(
    aws: Any,
    make_wrapper: Any,
    login_role: str,
    pg_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    aws.create_secret(
        Name="chore/app", SecretString=rds_secret(pg_server, login_role, OLD_PASSWORD)
    )
    wrapper = make_wrapper("chore/app", pool=False)
    whoami(wrapper)
    wrapper.close()
    rotate(pg_server, aws, "chore/app", login_role, NEW_PASSWORD)
    with caplog.at_level(logging.WARNING, logger="dbops.connections.secrets"):
        whoami(wrapper)
    assert "'chore/app'" in caplog.text
    assert "password rotation" in caplog.text
    assert NEW_PASSWORD not in caplog.text
    assert OLD_PASSWORD not in caplog.text
    assert NEW_PASSWORD not in redact(f"password is {NEW_PASSWORD}")  # registered when read


@pytest.mark.parametrize(
    ("secret_string", "expected"),
    [
        (None, "does not exist"),
        ('{"username": "app", "password": "Leaky-Value-123", ', "is not valid JSON"),
        ('["Leaky-Value-123"]', "is not a JSON object"),
        ('{"username": "app", "passwd": "Leaky-Value-123"}', "has no 'password'"),
        ('{"password": "Leaky-Value-123"}', "has no 'username'"),
        ('{"username": "app", "password": "Leaky-Value-123", "port": "x"}', "'port'"),
    ],
)
def test_a_missing_or_malformed_secret_is_a_clear_error(
    aws: Any, secret_string: str | None, expected: str
) -> None:
    if secret_string is not None:
        aws.create_secret(Name="chore/owner", SecretString=secret_string)
    ref = SecretRef("chore/owner", REGION, "MIGRATION_DB_SECRET_ID")
    with pytest.raises(SecretError) as info:
        ref.get()
    message = str(info.value)
    assert expected in message
    assert "'chore/owner'" in message
    assert "MIGRATION_DB_SECRET_ID" in message
    assert "Leaky-Value-123" not in message


def test_a_secret_without_host_or_dbname_needs_them_from_settings(
    aws: Any, make_wrapper: Any, login_role: str, pg_server: Any
) -> None:
    aws.create_secret(
        Name="chore/master",
        SecretString=json.dumps({"username": login_role, "password": OLD_PASSWORD}),
    )
    # A connection that cannot log in is DatabaseUnavailable; the secret's error is its cause.
    with pytest.raises(DatabaseUnavailable, match=r"has no 'host'.*DB_HOST") as info:
        whoami(make_wrapper("chore/master", pool=False, NAME=pg_server.dbname))
    assert isinstance(info.value.__cause__, SecretError)
    with pytest.raises(DatabaseUnavailable, match=r"has no 'dbname'.*DB_NAME"):
        whoami(make_wrapper("chore/master", pool=False, HOST=pg_server.host))
    wrapper = make_wrapper(
        "chore/master",
        pool=False,
        NAME=pg_server.dbname,
        HOST=pg_server.host,
        PORT=pg_server.port,
    )
    assert whoami(wrapper) == (login_role, pg_server.dbname)


def test_production_accepts_secret_ids_instead_of_urls() -> None:
    config = parsed(
        load_database_settings(
            **PRODUCTION,
            DB_SECRET_ID="chore/app",
            MIGRATION_DB_SECRET_ID="chore/owner",
            DB_NAME="choregarden_prod",
        )
    )
    default, owner = config["databases"]["default"], config["owner"]
    assert default["ENGINE"] == owner["ENGINE"] == "dbops.db.backends.postgresql"
    assert default["SECRET"] == {"ID": "chore/app", "REGION": REGION, "SETTING": "DB_SECRET_ID"}
    assert owner["SECRET"]["ID"] == "chore/owner"
    assert owner["SECRET"]["SETTING"] == "MIGRATION_DB_SECRET_ID"
    assert default["NAME"] == owner["NAME"] == "choregarden_prod"
    assert default["OPTIONS"]["sslmode"] == "verify-full"
    assert "pool" in default["OPTIONS"]


def test_the_migration_handler_needs_only_the_owner_secret() -> None:
    config = parsed(load_database_settings(**PRODUCTION, MIGRATION_DB_SECRET_ID="chore/owner"))
    default = config["databases"]["default"]
    assert default["SECRET"]["ID"] == "chore/owner"
    assert default["NAME"] == ""  # from the secret's dbname at connect time


def test_production_without_url_or_secret_names_both() -> None:
    proc = load_database_settings(**PRODUCTION)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "DATABASE_URL" in last
    assert "DB_SECRET_ID" in last


def test_no_region_is_a_clear_error(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    with pytest.raises(SecretError) as info:
        SecretRef("chore/app", "", "DB_SECRET_ID").get()
    message = str(info.value)
    assert "Could not reach AWS to read Secrets Manager secret 'chore/app'" in message
    assert "Set AWS_REGION" in message


def test_dbshell_logs_in_with_the_secret(
    aws: Any,
    make_wrapper: Any,
    login_role: str,
    pg_server: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from django.core.management import call_command

    aws.create_secret(
        Name="chore/app", SecretString=rds_secret(pg_server, login_role, OLD_PASSWORD)
    )
    wrapper = make_wrapper("chore/app", pool=False)
    call_command("dbshell", "--database", wrapper.alias, "--", "-At", "-c", "SELECT current_user")
    output = capfd.readouterr()
    assert output.out.strip() == login_role
    assert OLD_PASSWORD not in output.out + output.err
    assert wrapper.settings_dict["PASSWORD"] == ""  # nothing written back into settings
