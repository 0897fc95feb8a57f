"""The replica's settings, and the project without one (the real replica's routing is in
test_replica_routing.py; a replica URL at the primary in test_replica_refused.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections

from dbops.connections.config import REPLICA_KEY
from dbops.connections.routers import (
    REPLICA,
    reporting,
    reporting_alias,
    reporting_connection,
)
from dbops.models import MigrationTest
from tests.settings_probe import PRODUCTION, load_database_settings, parsed


def test_without_a_replica_everything_uses_default() -> None:
    assert REPLICA not in settings.DATABASES
    assert reporting_alias() == "default"
    assert reporting_connection() is connections["default"]
    with reporting() as alias:
        assert alias == "default"
        assert MigrationTest.objects.all().db == "default"


def test_the_app_server_refuses_to_start_with_a_replica_url_at_the_primary(
    manage_env: dict[str, str], pg_server: Any
) -> None:
    import subprocess
    import sys

    primary = pg_server.url(manage_env["MIGRATION_DATABASE_URL"].rsplit("/", 1)[-1], role="app")
    env = {**manage_env, "REPLICA_DATABASE_URL": primary}
    proc = subprocess.run(
        [sys.executable, "-c", "import choregarden.wsgi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "REPLICA_DATABASE_URL points at a primary" in proc.stderr
    assert pg_server.app_password not in proc.stderr


PRIMARY = {
    **PRODUCTION,
    "DATABASE_URL": "postgres://choregarden:Primary-pw-1@primary.example.com:5432/prod",
}


def test_the_replica_url_makes_a_read_only_replica_with_the_same_ssl() -> None:
    databases = parsed(
        load_database_settings(
            **PRIMARY,
            REPLICA_DATABASE_URL="postgres://choregarden:Replica-pw-1@replica.example.com/prod",
        )
    )["databases"]
    replica = databases["replica"]
    assert replica["HOST"] == "replica.example.com"
    assert replica["OPTIONS"]["sslmode"] == "verify-full"
    assert replica["OPTIONS"]["sslrootcert"] == "/etc/ssl/rds-global-bundle.pem"
    assert replica["OPTIONS"]["options"] == (
        "-c default_transaction_read_only=on -c statement_timeout=30000 -c lock_timeout=5000 "
        "-c idle_in_transaction_session_timeout=60000"
    )
    assert replica["TEST"]["MIRROR"] == "default"
    assert replica[REPLICA_KEY] is True
    assert "pool" in replica["OPTIONS"]


def test_the_replica_logs_in_with_the_application_secret() -> None:
    replica = parsed(
        load_database_settings(
            **PRODUCTION,
            DB_SECRET_ID="chore/app",
            DB_NAME="prod",
            REPLICA_DATABASE_URL="postgres://replica.example.com:5432/prod",
        )
    )["databases"]["replica"]
    assert replica["SECRET"]["ID"] == "chore/app"
    assert (replica["HOST"], replica["NAME"], replica["PASSWORD"]) == (
        "replica.example.com",
        "prod",
        "",
    )


def test_a_replica_without_verify_full_is_refused_in_production() -> None:
    proc = load_database_settings(
        **PRIMARY,
        REPLICA_DATABASE_URL="postgres://u:Replica-pw-1@replica.example.com/prod?sslmode=require",
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "REPLICA_DATABASE_URL" in last
    assert "verify-full" in last
    assert "Replica-pw-1" not in proc.stderr
