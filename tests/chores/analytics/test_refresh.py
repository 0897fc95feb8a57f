"""`analytics refresh` against a plain computation of the same figures (chores.analytics)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection, connections

from chores.analytics.refresh import LOCK_KEY, refresh, settled_through
from tests.chores.analytics.history import (
    add_completion,
    expected,
    local,
    make_history,
    refreshed_at,
    rollups,
    upper_day,
)
from tests.helpers import REPO

pytestmark = pytest.mark.django_db(transaction=True)


def service_days() -> list[Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT day FROM service_daily_stats ORDER BY day")
        return [day for (day,) in cursor.fetchall()]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_the_rollups_equal_a_plain_computation(seed: int, no_margin: None) -> None:
    history = make_history(seed)
    result = refresh()
    assert rollups() == expected(history, upper_day())
    days = service_days()
    assert days == [days[0] + timedelta(n) for n in range(len(days))]  # no gaps
    assert days[-1] == upper_day() == result.days[-1]
    assert result.rows == sum(len(rows) for rows in rollups().values()) + len(
        [d for d in days if d not in rollups()["service"]]
    )


def test_a_second_refresh_changes_nothing(no_margin: None) -> None:
    make_history(7)
    first = refresh()
    before, stamps = rollups(), refreshed_at()
    second = refresh()
    assert rollups() == before
    # Only the days not yet over everywhere are computed again (their overdue can change),
    # and of those only the service row, the day's "computed at", is written: the household
    # and member rows are equal, so they stay as they were.
    assert all(day > first.through_day for day in second.days)
    assert second.skipped == 0
    assert second.rows == len(second.days)
    after = refreshed_at()
    assert after.keys() == stamps.keys()
    changed = {key for key in stamps if after[key] != stamps[key]}
    assert changed == {("service_daily_stats", (None, day)) for day in second.days}


def test_a_late_completion_corrects_last_weeks_rows(no_margin: None) -> None:
    history = make_history(8)
    first = refresh()
    household, zone = next(iter(history.zones.items()))
    member = next(m for m, (hh, _) in history.members.items() if hh == household)
    last_week = history.now - timedelta(days=7, hours=3)
    with connection.cursor() as cursor:
        add_completion(
            cursor, history, household=household, member=member, completed_at=last_week, points=9
        )
    second = refresh()
    assert rollups() == expected(history, upper_day())
    late_days = {local(last_week, zone), last_week.astimezone(UTC).date()}
    recent = {day for day in second.days if day > first.through_day}
    assert set(second.days) == late_days | recent
    assert second.skipped == 0
    row = rollups()["household"][(household, local(last_week, zone))]
    assert row[0] >= 1 and row[1] >= 9


def test_full_equals_incremental(no_margin: None) -> None:
    history = make_history(9)
    refresh()
    with connection.cursor() as cursor:
        add_completion(
            cursor,
            history,
            household=next(iter(history.zones)),
            member=None,
            completed_at=history.now - timedelta(days=12),
            points=4,
        )
        cursor.execute(
            "UPDATE assignments SET status = 'done' WHERE status = 'open' AND due_at < now()"
            " RETURNING id, status_changed_at"
        )
        done = dict(cursor.fetchall())
    for a in history.assignments:
        if a["id"] in done:
            a["status"], a["changed"] = "done", done[a["id"]]
    assert done, "the history has open assignments past due"
    refresh()
    incremental = rollups()
    full = refresh(full=True)
    assert rollups() == incremental == expected(history, upper_day())
    assert full.days == service_days()


def test_since_rewrites_every_day_from_it(no_margin: None) -> None:
    make_history(10)
    first = refresh()
    since = first.through_day - timedelta(days=5)
    second = refresh(since=since)
    assert second.days == [since + timedelta(n) for n in range((upper_day() - since).days + 1)]


def test_an_interrupted_refresh_loses_nothing_and_the_rerun_continues(
    manage_env: dict[str, str], no_margin: None
) -> None:
    history = make_history(11)
    # kill -9 just before the fifth day's transaction: four days are committed.
    killed = subprocess.run(
        [
            sys.executable,
            "tests/killpoint.py",
            "chores.analytics.refresh:write_day",
            "5",
            "",
            "analytics",
            "refresh",
        ],
        env={**manage_env, "ANALYTICS_REFRESH_MARGIN": "0s"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    committed = service_days()
    assert len(committed) == 4
    stamps = refreshed_at()
    with connection.cursor() as cursor:
        cursor.execute("SELECT watermark, through_day FROM analytics_refresh_state")
        watermark, through = cursor.fetchone()
    assert watermark is None  # moves only with the last day of a run
    assert through == committed[-1] <= settled_through(datetime.now(UTC))
    again = refresh()
    # The re-run goes on after the committed days (their rows untouched, up to the margin).
    assert again.days[0] > committed[-1]
    assert again.skipped == 4
    assert all(refreshed_at()[key] == at for key, at in stamps.items())
    assert rollups() == expected(history, upper_day())


def test_the_watermark_keeps_a_margin_before_the_start_of_the_read() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        before = cursor.fetchone()[0]
    result = refresh()
    assert result.watermark is not None
    assert before - timedelta(seconds=301) < result.watermark < before - timedelta(seconds=299)


def test_a_second_refresh_waits_for_the_day_being_written(
    owner: psycopg.Connection[Any], no_margin: None
) -> None:
    history = make_history(12)
    finished = threading.Event()

    def run() -> None:
        try:
            refresh()
        finally:
            connections.close_all()
            finished.set()

    with owner.transaction():
        owner.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        thread = threading.Thread(target=run)
        thread.start()
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        deadline = time.monotonic() + 30
        while owner.execute(waiting).fetchone()[0] == 0:
            assert time.monotonic() < deadline, "the refresh never waited for the lock"
            time.sleep(0.05)
        assert not finished.is_set()
    assert finished.wait(60)
    thread.join()
    assert rollups() == expected(history, upper_day())
