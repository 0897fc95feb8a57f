"""`manage.py analytics`: the summary, status, --json, and a failing day named."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from chores.analytics.refresh import refresh
from tests.chores.analytics.history import expected, make_history, rollups, upper_day
from tests.forkserver import run_manage

pytestmark = pytest.mark.django_db(transaction=True)


def test_status_before_and_after_a_refresh(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("analytics", "status")
    assert capsys.readouterr().out.startswith("Never refreshed: run `manage.py analytics refresh`.")
    make_history(31)
    call_command("analytics", "refresh")
    out = capsys.readouterr().out
    assert out.startswith("Done! Refreshed ") and "reading default" in out
    call_command("analytics", "status", "--json")
    status = json.loads(capsys.readouterr().out)
    assert status["watermark"] and status["through_day"]
    assert status["last_day"] == str(upper_day())
    assert status["rows"]["service_daily_stats"] > 0
    assert status["rows"]["household_daily_stats"] > 0


def test_refresh_json_and_progress(capsys: pytest.CaptureFixture[str], no_margin: None) -> None:
    make_history(32, days=70)
    call_command("analytics", "refresh", "--json")
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["days"] > 20 and result["read_from"] == "default"
    assert result["last_day"] == str(upper_day())
    # A line on stderr every 30 days or 5 seconds: the first 30 of the run's days.
    progress = [line for line in captured.err.splitlines() if "analytics refresh:" in line]
    assert len(progress) == (result["days"] - 1) // 30
    assert all(" done (" in line and " days, " in line for line in progress)


@pytest.fixture
def refusing_day(owner: psycopg.Connection[Any]) -> Any:
    """A trigger that refuses the service row of a day in the middle of the history."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_date - 5")
        day = cursor.fetchone()[0]
    owner.execute(
        "CREATE FUNCTION analytics_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN IF NEW.day = DATE '{day}' THEN RAISE EXCEPTION 'refused by the test';"
        " END IF; RETURN NEW; END $$"
    )
    owner.execute(
        "CREATE TRIGGER analytics_test_refuse BEFORE INSERT ON service_daily_stats"
        " FOR EACH ROW EXECUTE FUNCTION analytics_test_refuse()"
    )
    yield day
    owner.execute("DROP TRIGGER IF EXISTS analytics_test_refuse ON service_daily_stats")
    owner.execute("DROP FUNCTION IF EXISTS analytics_test_refuse()")


def test_a_failing_day_is_named_and_the_days_before_it_stay(
    refusing_day: Any, owner: psycopg.Connection[Any], manage_env: dict[str, str]
) -> None:
    history = make_history(33)
    proc = run_manage("analytics", "refresh", env={**manage_env, "LOG_LEVEL": "WARNING"})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"CommandError: analytics refresh failed on {refusing_day}: refused by the test. The "
        "days before it are committed; run `manage.py analytics refresh` again to continue."
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(day) FROM service_daily_stats")
        assert cursor.fetchone()[0].toordinal() == refusing_day.toordinal() - 1
    with pytest.raises(CommandError, match=f"failed on {refusing_day}: refused by the test"):
        call_command("analytics", "refresh")
    owner.execute("DROP TRIGGER analytics_test_refuse ON service_daily_stats")
    refresh()
    assert rollups()["household"] == expected(history, upper_day())["household"]
