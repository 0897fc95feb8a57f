"""DB_POOLER: what a transaction-mode pooler in front changes in DATABASES (docs/scaling.md)."""

from __future__ import annotations

import pytest

from tests.settings_probe import PRODUCTION, load_database_settings, parsed

POOLED = {
    **PRODUCTION,
    "DATABASE_URL": "postgres://choregarden:App-pw-1@bouncer.internal:6432/prod",
    "MIGRATION_DATABASE_URL": "postgres://choregarden_owner:Owner-pw-1@db.internal:5432/prod",
}


def test_behind_a_pooler_the_app_connection_fits_transaction_pooling() -> None:
    found = parsed(load_database_settings(**POOLED, DB_POOLER="pgbouncer"))["databases"]
    app, owner = found["default"], found["owner"]
    assert app["POOLER"] == "pgbouncer"
    assert app["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert app["OPTIONS"]["prepare_threshold"] is None
    assert "pool" not in app["OPTIONS"]
    assert "options" not in app["OPTIONS"]  # PgBouncer 1.18 refuses the startup parameter
    assert app["CONN_MAX_AGE"] == 60
    # The owner's own URL is direct: untouched.
    assert "POOLER" not in owner
    assert "prepare_threshold" not in owner["OPTIONS"]


def test_without_a_pooler_nothing_changes() -> None:
    app = parsed(load_database_settings(**POOLED))["databases"]["default"]
    assert "POOLER" not in app
    assert "prepare_threshold" not in app["OPTIONS"]
    assert "pool" in app["OPTIONS"]
    assert "statement_timeout" in app["OPTIONS"]["options"]


def test_without_a_migration_url_the_owner_is_marked_as_the_pooler_too() -> None:
    env = {k: v for k, v in POOLED.items() if k != "MIGRATION_DATABASE_URL"}
    owner = parsed(load_database_settings(**env, DB_POOLER="rds-proxy"))["owner"]
    assert owner["POOLER"] == "rds-proxy"  # so that migrate refuses it


def test_conn_max_age_is_a_setting() -> None:
    app = parsed(load_database_settings(**POOLED, DB_POOLER="pgbouncer", DB_CONN_MAX_AGE="0"))
    assert app["databases"]["default"]["CONN_MAX_AGE"] == 0


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"DB_POOLER": "pgpool"}, "DB_POOLER='pgpool' is not a pooler this project knows"),
        ({"DB_POOLER": "pgbouncer", "DB_POOL": "true"}, "DB_POOL=true and DB_POOLER=pgbouncer"),
        ({"DB_POOLER": "pgbouncer", "DB_CONN_MAX_AGE": "-1"}, "DB_CONN_MAX_AGE=-1"),
    ],
)
def test_wrong_pooler_settings_are_refused_naming_the_variable(
    env: dict[str, str], says: str
) -> None:
    proc = load_database_settings(**POOLED, **env)
    assert proc.returncode != 0
    assert says in proc.stderr
    assert "App-pw-1" not in proc.stderr
