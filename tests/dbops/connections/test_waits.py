"""Bounded waits (dbops.connections.waits): settings, connection options, the named exception."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.utils import OperationalError
from hypothesis import given
from hypothesis import strategies as st

from dbops.connections.waits import (
    DurationError,
    duration_ms,
    lift_timeouts,
    session_options,
    statement_timeout,
)
from sqlmigrations.lib.lockwait import UNITS_MS
from tests.settings_probe import PRODUCTION, load_database_settings, parsed

APP_URL = "postgres://choregarden:App-pw-1@db.example.com:5432/prod"
OWNER_URL = "postgres://choregarden_owner:Owner-pw-1@db.example.com:5432/prod"


@given(number=st.integers(min_value=0, max_value=10**6), unit=st.sampled_from(sorted(UNITS_MS)))
def test_a_duration_with_a_unit_is_read_as_postgresql_reads_it(number: int, unit: str) -> None:
    assert duration_ms("DB_LOCK_TIMEOUT", f"{number}{unit}") == number * UNITS_MS[unit]


@given(raw=st.text(max_size=8))
def test_anything_else_is_refused_naming_the_setting(raw: str) -> None:
    try:
        value = duration_ms("DB_LOCK_TIMEOUT", raw)
    except DurationError as err:
        assert str(err).startswith(f"DB_LOCK_TIMEOUT={raw!r} ")
    else:
        assert value == 0 or raw.strip()[-1].isalpha()  # "0", or a number with its unit


def test_the_application_role_connects_with_the_timeouts_and_the_owner_without() -> None:
    config = parsed(
        load_database_settings(
            **PRODUCTION,
            DATABASE_URL=APP_URL,
            MIGRATION_DATABASE_URL=OWNER_URL,
            DB_LOCK_TIMEOUT="2s",
        )
    )
    assert config["databases"]["default"]["OPTIONS"]["options"] == (
        "-c statement_timeout=30000 -c lock_timeout=2000 "
        "-c idle_in_transaction_session_timeout=60000"
    )
    assert "options" not in config["owner"]["OPTIONS"]


def test_a_urls_own_options_come_after_the_timeouts() -> None:
    url = APP_URL + "?options=-c%20search_path%3Dapp"
    options = parsed(load_database_settings(**PRODUCTION, DATABASE_URL=url))["databases"]
    assert options["default"]["OPTIONS"]["options"].endswith("-c search_path=app")


def test_lifting_the_timeouts_keeps_other_options() -> None:
    settings_dict: dict[str, Any] = {
        "OPTIONS": {"options": session_options({"lock_timeout": 5000}, "-c search_path=app")}
    }
    lift_timeouts(settings_dict)
    assert settings_dict["OPTIONS"]["options"] == "-c search_path=app"
    lift_timeouts(settings_dict := {"OPTIONS": {"options": "-c lock_timeout=5000"}})
    assert "options" not in settings_dict["OPTIONS"]


@pytest.mark.django_db(transaction=True)
def test_a_named_exception_runs_with_its_own_statement_timeout_then_the_configured_one() -> None:
    def show() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            return str(cursor.fetchone()[0])

    before = show()
    with (
        pytest.raises(OperationalError, match="statement timeout"),
        statement_timeout("50ms"),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT pg_sleep(2)")
    with statement_timeout(None):
        assert show() == "0"
    assert show() == before


def test_one_url_for_both_roles_runs_the_owners_jobs_without_the_timeouts() -> None:
    url = APP_URL + "?options=-c%20search_path%3Dpublic"
    config = parsed(load_database_settings(**PRODUCTION, DATABASE_URL=url))
    assert config["databases"]["default"]["OPTIONS"]["options"].startswith("-c statement_timeout")
    owner = config["owner"]
    assert (owner["USER"], owner["NAME"]) == ("choregarden", "prod")
    assert owner["OPTIONS"]["options"] == "-c search_path=public"
    assert "pool" not in owner["OPTIONS"]
