"""One owner for connection parameters: each role from settings, secrets, the local cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from typing import Any

import boto3
import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from moto import mock_aws

from dbops.connections import secrets as db_secrets
from dbops.connections.config import (
    LOCAL_KEY,
    DatabaseEnvironment,
    connect,
    conninfo,
    databases,
    from_settings,
    from_url,
    resolve,
)
from dbops.connections.errors import DatabaseUnavailable
from dbops.localdb import default_cluster
from sqlmigrations.redact import redact
from tests.helpers import REPO

APP_URL = "postgres://choregarden:App-pw-1234@db.example.com:5432/prod"
OWNER_URL = "postgres://choregarden_owner:Owner-pw-1234@db.example.com:5432/prod"
TIMEOUTS = {"statement_timeout": 30000, "lock_timeout": 5000}
POOL = {"min_size": 1, "max_size": 2}


def env(**values: Any) -> DatabaseEnvironment:
    return DatabaseEnvironment(**{"timeouts": TIMEOUTS, "pool": POOL, **values})


# --- settings: the environment becomes one alias per role -------------------------------


def test_the_app_and_owner_roles_get_aliases_of_their_own() -> None:
    found = databases(env(database_url=APP_URL, migration_database_url=OWNER_URL))

    app, owner = found["default"], found["owner"]
    assert (app["USER"], owner["USER"]) == ("choregarden", "choregarden_owner")
    assert app["OPTIONS"]["options"] == "-c statement_timeout=30000 -c lock_timeout=5000"
    assert app["OPTIONS"]["pool"] == POOL
    # The owner's jobs run long and alone: no timeouts, no pool.
    assert "options" not in owner["OPTIONS"] and "pool" not in owner["OPTIONS"]
    assert owner["SETTING"] == "MIGRATION_DATABASE_URL"
    assert "replica" not in found


def test_one_url_serves_both_roles_without_the_apps_timeouts() -> None:
    found = databases(env(database_url=APP_URL))

    owner = found["owner"]
    assert (owner["USER"], owner["PASSWORD"]) == ("choregarden", "App-pw-1234")
    assert owner["NAME"] == "prod"
    assert "options" not in owner["OPTIONS"] and "pool" not in owner["OPTIONS"]
    assert found["default"] is not owner


def test_the_owners_secret_alone_makes_both_aliases_the_owners() -> None:
    found = databases(env(migration_secret_id="prod/owner", region="eu-west-1", name="prod"))

    for alias in ("default", "owner"):
        assert found[alias]["SECRET"] == {
            "ID": "prod/owner",
            "REGION": "eu-west-1",
            "SETTING": "MIGRATION_DB_SECRET_ID",
        }
        assert "options" not in found[alias]["OPTIONS"]


def test_the_replica_is_read_only_and_mirrors_default_in_tests() -> None:
    replica = databases(
        env(database_url=APP_URL, replica_database_url=APP_URL.replace("db.", "replica."))
    )["replica"]

    assert replica["HOST"] == "replica.example.com"
    assert replica["OPTIONS"]["options"].startswith("-c default_transaction_read_only=on -c ")
    assert replica["TEST"] == {"MIRROR": "default"}


def test_nothing_configured_outside_production_means_the_local_cluster() -> None:
    found = databases(env())

    assert (found["default"][LOCAL_KEY], found["owner"][LOCAL_KEY]) == ("app", "owner")
    assert found["default"]["NAME"] == ""  # read from the cluster when connecting


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({}, "DATABASE_URL is not set in production"),
        ({"database_url": APP_URL}, "DB_SSLROOTCERT is not set in production"),
        (
            {"database_url": APP_URL + "?sslmode=require", "sslrootcert": "/ca.pem"},
            "The sslmode for DATABASE_URL is 'require'",
        ),
        (
            {
                "database_url": APP_URL,
                "migration_database_url": "mysql://u:Owner-pw-1234@h/x",
                "sslrootcert": "/ca.pem",
            },
            "MIGRATION_DATABASE_URL does not point at PostgreSQL",
        ),
    ],
)
def test_production_refusals_name_the_variable_and_never_the_password(
    values: dict[str, str], named: str
) -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        databases(env(production=True, **values))
    assert named in str(refused.value)
    assert "pw-1234" not in str(refused.value)


# --- settings.py reads the environment only ------------------------------------------------

_DUMP = (
    "import json, sys; {argv}import django; django.setup(); from django.conf import settings; "
    "print(json.dumps({{'databases': settings.DATABASES, 'localdb': "
    "any(m.startswith('dbops.localdb') for m in sys.modules)}}, default=str))"
)


def settings_dump(argv: str = "", **extra: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DJANGO_"))}
    for key in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "REPLICA_DATABASE_URL"):
        clean.pop(key, None)
    proc = subprocess.run(
        [sys.executable, "-c", _DUMP.format(argv=argv)],
        cwd=REPO,
        env={
            **clean,
            "ENV_FILE": "/nonexistent/.env",
            "DJANGO_SETTINGS_MODULE": "choregarden.settings",
            "DJANGO_ENV": "development",
            **extra,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_settings_do_not_depend_on_the_command_line() -> None:
    plain = settings_dump(DATABASE_URL=APP_URL)
    as_command = settings_dump("sys.argv = ['manage.py', 'migrate']; ", DATABASE_URL=APP_URL)
    as_server = settings_dump("sys.argv = ['manage.py', 'runserver']; ", DATABASE_URL=APP_URL)

    assert plain["databases"] == as_command["databases"] == as_server["databases"]
    assert "pool" in plain["databases"]["default"]["OPTIONS"]


def test_settings_do_not_look_for_the_local_cluster(tmp_path: Any) -> None:
    # A folder that holds no cluster: the settings load the same, without dbops.localdb.
    dumped = settings_dump(DEVDB_DIR=str(tmp_path / "devdb"))

    assert dumped["localdb"] is False
    assert dumped["databases"]["default"][LOCAL_KEY] == "app"


def manage_shell(code: str, **extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")}
    env.update(DJANGO_ENV="test", ENV_FILE="/nonexistent/.env", DATABASE_URL=APP_URL, **extra)
    proc = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def test_a_one_off_command_connects_directly_unless_db_pool_says_otherwise() -> None:
    code = (
        "from django.conf import settings; "
        "print('pool' in settings.DATABASES['default']['OPTIONS'])"
    )
    assert manage_shell(code) == "False"
    assert manage_shell(code, DB_POOL="true") == "True"


# --- connection time: the roles on the real server ---------------------------------------


def test_each_role_logs_in_as_itself(pg_server: Any, db: None) -> None:
    for role, user in (("app", pg_server.app_user), ("owner", pg_server.user)):
        info = conninfo(role)
        with connect(role) as conn:
            assert conn.info.user == user == info.user
            assert conn.execute("SELECT current_database()").fetchone()[0] == info.dbname
            assert info.dbname.startswith("test_")


def test_the_owner_alias_runs_without_timeouts(pg_server: Any, db: None) -> None:
    with connect("owner") as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"


def test_a_role_that_is_not_configured_is_named() -> None:
    with pytest.raises(ImproperlyConfigured, match="REPLICA_DATABASE_URL"):
        conninfo("replica")
    with pytest.raises(ValueError, match="unknown role 'admin'"):
        conninfo("admin")


def test_a_refused_login_is_one_line_without_the_password(pg_server: Any) -> None:
    from dbops.connections.config import open_connection

    wrong = replace(pg_server.conninfo(), password="Wrong-pw-98765", setting="DATABASE_URL")
    with pytest.raises(DatabaseUnavailable) as failed:
        open_connection(wrong)
    message = str(failed.value)
    assert "password authentication failed" in message and "DATABASE_URL" in message
    assert "Wrong-pw-98765" not in message and "\n" not in message
    assert "Wrong-pw-98765" not in repr(wrong)


def test_a_secret_gives_the_login_and_is_masked_afterwards(
    pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    db_secrets.reset()
    owner = pg_server.conninfo()
    secret = {
        "username": owner.user,
        "password": owner.password,
        "host": owner.host,
        "port": owner.port,
        "engine": "postgres",
    }
    with mock_aws():
        boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
            Name="test/owner", SecretString=json.dumps(secret)
        )
        info = from_settings(
            {
                "NAME": owner.dbname,
                "OPTIONS": {"sslmode": owner.sslmode, "sslrootcert": owner.sslrootcert},
                "SECRET": {"ID": "test/owner", "REGION": "eu-west-1", "SETTING": "X_SECRET_ID"},
                "SETTING": "X_SECRET_ID",
            }
        )
    db_secrets.reset()

    assert (info.host, info.port, info.user, info.setting) == (
        owner.host,
        owner.port,
        owner.user,
        "X_SECRET_ID",
    )
    with psycopg.connect(**info) as conn:
        assert conn.info.user == owner.user
    assert owner.password not in redact(f"login failed with {owner.password}")


# --- the local cluster, resolved when connecting --------------------------------------------


@pytest.fixture
def local_cluster(pg_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    if pg_server.cluster is None:
        pytest.skip("TEST_DATABASE_URL is set: there is no local cluster")
    monkeypatch.setenv("DEVDB_DIR", str(pg_server.cluster.requested_dir))
    return pg_server.cluster


def test_a_local_role_gets_the_clusters_address_login_and_ca(local_cluster: Any) -> None:
    config = databases(env())["owner"]

    resolved = resolve(config)

    # The checkout's cluster as DEVDB_DIR names it (`devdb url` gives the same).
    info = default_cluster().conninfo("owner")
    assert (resolved["HOST"], resolved["PORT"], resolved["USER"]) == (
        info.host,
        info.port,
        info.user,
    )
    assert resolved["NAME"] == info.dbname
    assert resolved["OPTIONS"]["sslrootcert"] == str(local_cluster.ca_file)
    assert info.password not in redact(f"the owner's password is {info.password}")
    assert LOCAL_KEY in config and config["NAME"] == ""  # the settings are left as they were


def test_a_url_at_the_clusters_address_gets_its_ca_and_no_other(local_cluster: Any) -> None:
    at = local_cluster.url("app")
    elsewhere = at.replace(f":{local_cluster.state().port}/", f":{local_cluster.state().port + 1}/")

    found = databases(env(database_url=at, replica_database_url=elsewhere))

    assert resolve(found["default"])["OPTIONS"]["sslrootcert"] == str(local_cluster.ca_file)
    assert "sslrootcert" not in resolve(found["replica"])["OPTIONS"]
    ours = databases(env(database_url=at, sslrootcert="/etc/ssl/ours.pem"))["default"]
    assert resolve(ours)["OPTIONS"]["sslrootcert"] == "/etc/ssl/ours.pem"


def test_no_cluster_yet_says_how_to_make_one(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVDB_DIR", str(tmp_path / "none"))

    with pytest.raises(DatabaseUnavailable, match=r"python manage\.py devdb start"):
        resolve(databases(env())["default"])


def test_a_url_on_the_command_line_keeps_its_own_ssl_mode() -> None:
    info = from_url(OWNER_URL + "?sslmode=require", "--url", sslmode="verify-full")
    assert (info.sslmode, info.user, info.dbname, info.setting) == (
        "require",
        "choregarden_owner",
        "prod",
        "--url",
    )
    assert from_url(OWNER_URL, "--url", sslmode="verify-full").sslmode == "verify-full"
    with pytest.raises(ImproperlyConfigured, match="--url is not a valid PostgreSQL URL") as bad:
        from_url("postgres://u:Owner-pw-1234@h:port/x", "--url", sslmode="verify-full")
    assert "Owner-pw-1234" not in str(bad.value)
