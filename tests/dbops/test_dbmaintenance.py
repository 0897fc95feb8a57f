"""`manage.py dbmaintenance` on real PostgreSQL, with real bloat made here.

Three tables of our own: `mt_dead` (autovacuum off, three rows in four deleted: over the
dead-row thresholds, no index), `mt_sparse` (nine rows in ten deleted and vacuumed: its
index on `code` is nine-tenths empty pages) and `mt_fine` (freshly built: nothing to do).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from dbops.maintenance.bloat import bloated_indexes, dead_tables
from dbops.maintenance.plan import DONE, FAILED, PLANNED, SKIPPED_BUDGET, Plan, Step
from dbops.maintenance.run import APPLICATION_NAME, Clock, execute
from dbops.maintenance.window import (
    DAYS,
    Window,
    WindowError,
    budget_text,
    parse_budget,
    parse_window,
)
from tests.helpers import REPO, run_manage

MAKE = """
CREATE TABLE mt_dead (id bigint, note text) WITH (autovacuum_enabled = false);
INSERT INTO mt_dead SELECT i, repeat('x', 100) FROM generate_series(1, 100000) i;
DELETE FROM mt_dead WHERE id % 4 <> 0;
CREATE TABLE mt_sparse (id bigint, code text) WITH (autovacuum_enabled = false);
INSERT INTO mt_sparse SELECT i, md5(i::text) FROM generate_series(1, 100000) i;
CREATE INDEX mt_sparse_code ON mt_sparse (code);
DELETE FROM mt_sparse WHERE id % 10 <> 0;
CREATE TABLE mt_fine (id bigint PRIMARY KEY, code text) WITH (autovacuum_enabled = false);
INSERT INTO mt_fine SELECT i, md5(i::text) FROM generate_series(1, 100000) i;
"""
OURS = ("mt_dead", "mt_sparse", "mt_fine")
EXPECTED = {("vacuum", "public.mt_dead"), ("reindex", "public.mt_sparse_code")}


def flush_stats(conn: psycopg.Connection[Any]) -> None:
    """Make this session's table statistics visible to the others now (PostgreSQL 15+)."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")


@pytest.fixture
def owner(pg_server: Any, transactional_db: None) -> Iterator[psycopg.Connection[Any]]:
    name = settings.DATABASES["default"]["NAME"]
    with psycopg.connect(**pg_server.conninfo(name), autocommit=True) as conn:
        yield conn


@pytest.fixture
def bloat(owner: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    owner.execute(MAKE)
    flush_stats(owner)  # else the DELETE's counts could land after the VACUUM's report
    owner.execute("VACUUM (ANALYZE) mt_sparse")  # its dead rows go; its index stays sparse
    owner.execute("ANALYZE mt_fine")
    flush_stats(owner)
    yield owner
    owner.execute("DROP TABLE IF EXISTS " + ", ".join(OURS))


@pytest.fixture
def env(manage_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**manage_env, "BACKUP_DIR": str(tmp_path / "backups"), "LOG_LEVEL": "INFO"}


def dead_rows(conn: psycopg.Connection[Any], table: str) -> tuple[int, Any]:
    row = conn.execute(
        "SELECT n_dead_tup, last_vacuum FROM pg_stat_user_tables WHERE relname = %s", [table]
    ).fetchone()
    return int(row[0]), row[1]


def index_size(conn: psycopg.Connection[Any], name: str) -> int:
    return int(conn.execute("SELECT pg_relation_size(%s::regclass)", [name]).fetchone()[0])


def ours(steps: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (s["kind"], s["target"])
        for s in steps
        if s["target"].removeprefix("public.").startswith(OURS)
    }


def run_json(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    proc = run_manage("dbmaintenance", "--json", *args, env=env, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "dbmaintenance", "--json", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err, err
    return proc.returncode, json.loads(out), err


def waiting_pid(conn: psycopg.Connection[Any], proc: subprocess.Popen[str], query: str) -> int:
    """Wait until the maintenance session waits for a lock in a statement like `query`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND wait_event_type = 'Lock' AND query ILIKE %s",
            [APPLICATION_NAME, query],
        ).fetchone()
        if row:
            return int(row[0])
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail(f"the maintenance run never waited in {query}")


# --- the plan ----------------------------------------------------------------------------


def test_the_dry_run_lists_exactly_the_bloated_ones_and_changes_nothing(
    bloat: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    before = dead_rows(bloat, "mt_dead"), index_size(bloat, "mt_sparse_code")
    code, data, _ = run_json(env)
    assert code == 0
    assert data["dry_run"] is True
    assert ours(data["steps"]) == EXPECTED
    assert all(s["status"] == PLANNED for s in data["steps"])
    vacuum = next(s for s in data["steps"] if s["target"] == "public.mt_dead")
    assert vacuum["statement"] == 'VACUUM (ANALYZE) "public"."mt_dead"'
    assert "75,000 dead rows (75% of the rows" in vacuum["reason"]
    reindex = next(s for s in data["steps"] if s["target"] == "public.mt_sparse_code")
    assert reindex["statement"] == 'REINDEX INDEX CONCURRENTLY "public"."mt_sparse_code"'
    assert reindex["estimate_seconds"] >= 1 and reindex["value_bytes"] > 0
    assert (dead_rows(bloat, "mt_dead"), index_size(bloat, "mt_sparse_code")) == before
    text = run_manage("dbmaintenance", env=env).stdout
    assert "DRY RUN:" in text and 'VACUUM (ANALYZE) "public"."mt_dead"' in text


@pytest.mark.parametrize("pgstattuple", [False, True], ids=["statistics", "pgstattuple"])
def test_both_bloat_methods_find_the_sparse_index_only(
    bloat: psycopg.Connection[Any], pg_server: Any, pgstattuple: bool
) -> None:
    name = settings.DATABASES["default"]["NAME"]
    owner_role = sql.Identifier(pg_server.user)
    if pgstattuple:
        with psycopg.connect(**superuser(pg_server, name), autocommit=True) as su:
            su.execute("CREATE EXTENSION pgstattuple")
            su.execute(sql.SQL("GRANT pg_stat_scan_tables TO {}").format(owner_role))
    try:
        with bloat.cursor() as cursor:
            found, notes = bloated_indexes(cursor)
            tables = dead_tables(cursor)
    finally:
        if pgstattuple:
            with psycopg.connect(**superuser(pg_server, name), autocommit=True) as su:
                su.execute("DROP EXTENSION pgstattuple")
                su.execute(sql.SQL("REVOKE pg_stat_scan_tables FROM {}").format(owner_role))
    mine = {ix.name: ix for ix in found if ix.table in OURS}
    assert set(mine) == {"mt_sparse_code"}, (mine, notes)
    sparse = mine["mt_sparse_code"]
    assert sparse.method == ("pgstattuple" if pgstattuple else "statistics")
    assert 0.8 <= sparse.ratio <= 0.95  # nine entries in ten are gone
    assert [t.table for t in tables if t.table in OURS] == ["mt_dead"]


def superuser(pg_server: Any, name: str) -> Any:
    assert pg_server.cluster is not None, "needs the test run's own cluster (its superuser)"
    return pg_server.cluster.conninfo("superuser").on(name)


# --- the run -----------------------------------------------------------------------------


def test_execute_now_vacuums_and_reindexes_them(
    bloat: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    size = index_size(bloat, "mt_sparse_code")
    assert dead_rows(bloat, "mt_dead") == (75000, None)
    code, data, log = run_json(env, "--execute", "--now", "--budget", "1h")
    assert code == 0, (data, log)
    done = {(s["kind"], s["target"]) for s in data["steps"] if s["status"] == DONE}
    assert done >= EXPECTED
    dead, last_vacuum = dead_rows(bloat, "mt_dead")
    assert dead == 0 and last_vacuum is not None
    assert index_size(bloat, "mt_sparse_code") < size / 4
    valid = bloat.execute(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'mt_sparse_code'::regclass"
    ).fetchone()[0]
    assert valid
    # Each step is logged with its duration.
    assert "dbmaintenance: vacuum public.mt_dead: done in " in log
    assert "dbmaintenance: reindex public.mt_sparse_code: done in " in log
    again = run_json(env)[1]
    assert ours(again["steps"]) == set()


def test_missing_partitions_ahead_are_created_and_the_analytics_refreshed(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    today = datetime.now(UTC).date()
    month = today.replace(day=1) + timedelta(days=62)  # in the month after next
    name = f"completions_y{month:%Y}m{month:%m}"
    owner.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
    code, data, _ = run_json(env)
    parts = [s for s in data["steps"] if s["kind"] == "partitions"]
    assert code == 0 and len(parts) == 1 and name in parts[0]["reason"], data
    assert data["steps"][0] == parts[0]  # before any VACUUM or REINDEX
    code, data, log = run_json(env, "--execute", "--now")
    assert code == 0, (data, log)
    statuses = {s["kind"]: s["status"] for s in data["steps"]}
    assert statuses["partitions"] == DONE and statuses["analytics"] == DONE
    assert owner.execute("SELECT to_regclass(%s)", [name]).fetchone()[0] is not None
    assert not [s for s in run_json(env)[1]["steps"] if s["kind"] == "partitions"]


def test_outside_the_window_nothing_runs_without_now(
    bloat: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    later = DAYS[(datetime.now(UTC).weekday() + 3) % 7]  # neither today nor yesterday
    window = f"{later} 03:00-05:00 UTC"
    proc = run_manage("dbmaintenance", "--execute", "--window", window, env=env)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"CommandError: outside the maintenance window {window}")
    assert dead_rows(bloat, "mt_dead") == (75000, None)
    # The dry run may look at any time, and says it is outside.
    code, data, _ = run_json(env, "--window", window)
    assert code == 0 and data["inside_window"] is False
    assert ours(data["steps"]) == EXPECTED, data


def test_the_budget_stops_new_steps_and_a_second_run_is_refused(
    bloat: psycopg.Connection[Any], env: dict[str, str], pg_server: Any
) -> None:
    name = settings.DATABASES["default"]["NAME"]
    with psycopg.connect(**pg_server.conninfo(name)) as holder:
        # VACUUM waits for this lock: the step lasts beyond the 5 s budget.
        holder.execute("LOCK TABLE mt_dead IN SHARE UPDATE EXCLUSIVE MODE")
        first = start(env, "--execute", "--now", "--budget", "5s")
        try:
            pid = waiting_pid(bloat, first, "VACUUM%mt_dead%")
            second = run_manage("dbmaintenance", "--execute", "--now", env=env)
            time.sleep(6)  # past the budget, whatever the machine's speed
        finally:
            holder.rollback()
        code, data, log = finish(first)
    assert second.returncode == 1
    assert second.stderr.startswith(
        "CommandError: another dbmaintenance run holds the maintenance lock "
        f"(pid {pid}, connected since "
    ), second.stderr
    assert code == 0, (data, log)
    steps = data["steps"]
    vacuum = next(i for i, s in enumerate(steps) if s["target"] == "public.mt_dead")
    assert steps[vacuum]["status"] == DONE
    assert steps[vacuum + 1 :] and {s["status"] for s in steps[vacuum + 1 :]} == {SKIPPED_BUDGET}
    assert any(s["target"] == "public.mt_sparse_code" for s in steps[vacuum + 1 :])
    assert "skipped (budget)" in log
    # The lock went with the run: the next one runs.
    assert run_json(env, "--execute", "--now")[0] == 0


def test_a_reindex_killed_midway_leaves_the_index_usable_and_the_next_run_cleans_up(
    bloat: psycopg.Connection[Any], env: dict[str, str], pg_server: Any
) -> None:
    name = settings.DATABASES["default"]["NAME"]
    with psycopg.connect(**pg_server.conninfo(name)) as writer:
        # A writer's open transaction: REINDEX CONCURRENTLY builds mt_sparse_code_ccnew,
        # then waits for it; there it is ended.
        writer.execute("LOCK TABLE mt_sparse IN ROW EXCLUSIVE MODE")
        run = start(env, "--execute", "--now", "--budget", "1h")
        try:
            pid = waiting_pid(bloat, run, "REINDEX%mt_sparse_code%")
            bloat.execute("SELECT pg_terminate_backend(%s)", [pid])
        finally:
            writer.rollback()
        code, data, log = finish(run)
    assert code == 1
    failed = [s for s in data["steps"] if s["status"] == FAILED]
    assert [s["target"] for s in failed] == ["public.mt_sparse_code"]
    assert "terminating connection" in failed[0]["detail"]
    assert "1 maintenance step(s) failed: reindex public.mt_sparse_code" in log
    after = data["steps"][data["steps"].index(failed[0]) + 1 :]
    assert all(s["status"] == "skipped (connection lost)" for s in after)
    indexes = dict(
        bloat.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c"
            " ON c.oid = i.indexrelid WHERE i.indrelid = 'mt_sparse'::regclass"
        ).fetchall()
    )
    assert indexes == {"mt_sparse_code": True, "mt_sparse_code_ccnew": False}
    # The table and its old index still work.
    bloat.execute("INSERT INTO mt_sparse VALUES (0, 'zzz')")
    bloat.execute("SET enable_seqscan = off")
    plan = "\n".join(
        r[0]
        for r in bloat.execute("EXPLAIN SELECT id FROM mt_sparse WHERE code = 'zzz'").fetchall()
    )
    assert "mt_sparse_code" in plan and "_ccnew" not in plan
    assert bloat.execute("SELECT id FROM mt_sparse WHERE code = 'zzz'").fetchone() == (0,)
    bloat.execute("RESET enable_seqscan")
    # The next run drops the leftover first, then rebuilds the index.
    code, plan_data, _ = run_json(env)
    first = plan_data["steps"][0]
    assert (first["kind"], first["target"]) == (
        "drop-invalid-index",
        "public.mt_sparse_code_ccnew",
    )
    code, data, log = run_json(env, "--execute", "--now", "--budget", "1h")
    assert code == 0, (data, log)
    statuses = {(s["kind"], s["target"]): s["status"] for s in data["steps"]}
    assert statuses[("drop-invalid-index", "public.mt_sparse_code_ccnew")] == DONE
    assert statuses[("reindex", "public.mt_sparse_code")] == DONE
    left = bloat.execute(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'mt_sparse'::regclass"
    ).fetchone()[0]
    assert left == 1


# --- the executor's budget, on a clock of its own --------------------------------------


def test_a_step_starts_only_while_the_time_left_covers_its_estimate() -> None:
    ticks = iter([0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 50.0, 50.0])
    ran: list[str] = []

    def step(name: str, estimate: float) -> Step:
        return Step("vacuum", name, "", "", estimate, action=lambda: ran.append(name) or "ok")

    plan = Plan([step("a", 5), step("b", 30), step("c", 20), step("d", 1)])
    clock = Clock(elapsed=lambda: next(ticks), now=lambda: datetime.now(UTC))
    execute(plan, conn_stub(), budget=60, began=0.0, window=None, anytime=True, clock=clock)
    # a: 60 s left; b: 50 s left (a took 10 s); c: 10 s left after b's 40 s < 20: stop.
    assert ran == ["a", "b"]
    assert [s.status for s in plan.steps] == [DONE, DONE, SKIPPED_BUDGET, SKIPPED_BUDGET]


def test_a_tables_vacuum_goes_before_the_reindex_of_its_index() -> None:
    plan = Plan(
        [
            Step("reindex", "public.a_ix", "", "", 1, value=900, table="public.a"),
            Step("vacuum", "public.b", "", "", 1, value=500, table="public.b"),
            Step("vacuum", "public.a", "", "", 1, value=100, table="public.a"),
            Step("analytics", "daily rollups", "", "", 1),
            Step("partitions", "completions", "", "", 1),
        ]
    )
    plan.ordered()
    assert [s.target for s in plan.steps] == [
        "completions",
        "public.a",
        "public.a_ix",
        "public.b",
        "daily rollups",
    ]


def test_the_window_closing_stops_new_steps_unless_now() -> None:
    window = parse_window("daily 03:00-04:00 UTC")
    at = datetime(2026, 12, 6, 3, 59, 30, tzinfo=UTC)  # 30 s before it closes
    for anytime, expected in ((False, "skipped (window)"), (True, DONE)):
        plan = Plan([Step("vacuum", "t", "", "", 60, action=lambda: "ok")])
        clock = Clock(elapsed=lambda: 0.0, now=lambda: at)
        execute(plan, conn_stub(), budget=3600, began=0.0, window=window, anytime=anytime,
                clock=clock)  # fmt: skip
        assert plan.steps[0].status == expected


def conn_stub() -> Any:
    class Stub:
        closed = broken = False

    return Stub()


# --- window and budget ---------------------------------------------------------------------

windows = st.builds(
    Window,
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=st.integers(0, 1439),
    end=st.integers(0, 1439),
    zone=st.sampled_from(["UTC", "Europe/London", "America/New_York", "Asia/Kolkata"]),
).filter(lambda w: w.start != w.end)


@given(windows)
def test_any_window_round_trips(window: Window) -> None:
    assert parse_window(str(window)) == window


@given(st.text(max_size=40))
def test_a_malformed_window_is_refused_with_an_example(text: str) -> None:
    try:
        window = parse_window(text)
    except WindowError as err:
        assert "e.g. " in str(err) and '"Sun 03:00-05:00 UTC"' in str(err)
    else:
        assert parse_window(str(window)) == window


@given(windows, st.integers(0, 60), st.sampled_from(list(" -:,/0123456789aSUTCx\t")))
def test_a_window_with_one_character_changed_is_refused_or_still_round_trips(
    window: Window, at: int, char: str
) -> None:
    text = str(window)
    at = at % (len(text) + 1)
    for changed in (text[:at] + char + text[at + 1 :], text[:at] + text[at + 1 :]):
        try:
            parsed = parse_window(changed)
        except WindowError as err:
            assert "e.g. " in str(err) and repr(changed) in str(err)
        else:
            assert parse_window(str(parsed)) == parsed


@given(st.integers(1, 24 * 3600))
def test_any_budget_round_trips(seconds: int) -> None:
    assert parse_budget(budget_text(seconds)) == seconds


@given(st.text(max_size=20))
def test_a_malformed_budget_is_refused_with_an_example(text: str) -> None:
    try:
        parse_budget(text)
    except WindowError as err:
        assert '"30m", "1h30m" or "90s"' in str(err)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("1h30m", 5400), ("90s", 90), ("2h", 7200)]
)
def test_budgets(text: str, seconds: int) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "30", "m", "25h", "1h 30m", "-5m", "1.5h"])
def test_bad_budgets(text: str) -> None:
    with pytest.raises(WindowError):
        parse_budget(text)


def test_windows_are_wall_clock_times_of_their_zone_and_may_cross_midnight() -> None:
    sunday = parse_window("Sun 03:00-05:00 UTC")
    assert sunday.contains(datetime(2026, 12, 6, 3, 0, tzinfo=UTC))  # a Sunday
    assert not sunday.contains(datetime(2026, 12, 6, 5, 0, tzinfo=UTC))
    assert sunday.seconds_left(datetime(2026, 12, 6, 4, 30, tzinfo=UTC)) == 1800
    night = parse_window("sat,sun 23:00-01:00 UTC")
    assert str(night) == "Sat,Sun 23:00-01:00 UTC"
    assert night.contains(datetime(2026, 12, 7, 0, 30, tzinfo=UTC))  # Monday, from Sunday
    assert not night.contains(datetime(2026, 12, 8, 0, 30, tzinfo=UTC))  # Tuesday
    london = parse_window("Mon-Fri 01:30-02:30 Europe/London")
    summer = datetime(2026, 7, 1, 0, 45, tzinfo=UTC)  # 01:45 in London (BST), a Wednesday
    assert london.contains(summer) and not london.contains(summer + timedelta(hours=1))
    assert str(parse_window("Fri-Mon 22:00-24:00 UTC")) == "Mon,Fri-Sun 22:00-00:00 UTC"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Sun 3-5", "is not a maintenance window"),
        ("Sun 03:00-03:00 UTC", "starts and ends at 03:00"),
        ("Sun 25:00-26:00 UTC", "is not a time of day"),
        ("Sunday 03:00-05:00 UTC", "'Sunday' is not a day"),
        ("Sun 03:00-05:00 Mars/Olympus", "'Mars/Olympus' is not a time zone"),
        ("Sun 03:00-05:00 ../etc/passwd", "is not a time zone"),
    ],
)
def test_bad_windows_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(WindowError, match=words):
        parse_window(text)


def test_usage_errors_exit_2_before_connecting(tmp_path: Path) -> None:
    from tests.test_database_unavailable import down_env

    env = down_env(tmp_path)
    for args, words in (
        (["--window", "Sun 3-5"], "argument --window: 'Sun 3-5' is not a maintenance window"),
        (["--budget", "soon"], "argument --budget: 'soon' is not a time budget"),
        (["--execute"], "argument --execute: no window: give --window"),
        (["--now"], "--now goes with --execute"),
        (["--window", "Sun 03:00-05:00 UTC", "--budget", "25h"], "between 1s and 24h"),
    ):
        proc = run_manage("dbmaintenance", *args, env=env)
        assert proc.returncode == 2, (args, proc.stderr)
        assert words in proc.stderr and "cannot connect" not in proc.stderr
    proc = run_manage("dbmaintenance", env={**env, "MAINTENANCE_WINDOW": "Sundays at 3"})
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: MAINTENANCE_WINDOW: 'Sundays at 3' is not a maintenance window: write the days"
        )
    )
