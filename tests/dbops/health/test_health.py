"""Each database health check against real PostgreSQL situations."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import psycopg.sql
import pytest
from django.core.exceptions import ImproperlyConfigured

from dbops import health

# Committed transactions: reading a sequence or an extension's view holds a lock until
# the transaction ends, and the tests drop what they create.
pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = "health_probe"


@pytest.fixture
def connect(pg_server: Any, settings: Any) -> Iterator[Callable[..., psycopg.Connection]]:
    """Open extra sessions on the test database (as the owner role), closed afterwards."""
    opened: list[psycopg.Connection] = []
    dbname = settings.DATABASES["default"]["NAME"]

    def open_one(*, autocommit: bool = True) -> psycopg.Connection:
        conn = psycopg.connect(**pg_server.conninfo(dbname), autocommit=autocommit)
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        conn.close()


@pytest.fixture
def probe(
    connect: Callable[..., psycopg.Connection], settings: Any
) -> Iterator[psycopg.Connection]:
    """A session with a schema of its own for test objects, dropped at the end."""
    conn = connect()
    conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    conn.execute(f"CREATE SCHEMA {SCHEMA}")
    # The checks run as Django's role; like the application's schema, it may read here.
    reader = psycopg.sql.Identifier(settings.DATABASES["default"]["USER"])
    conn.execute(
        psycopg.sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            psycopg.sql.Identifier(SCHEMA), reader
        )
    )
    conn.execute(
        psycopg.sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON SEQUENCES TO {}"
        ).format(psycopg.sql.Identifier(SCHEMA), reader)
    )
    yield conn
    conn.rollback()
    conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def run(name: str) -> health.CheckResult:
    (result,) = health.run_checks(names=[name])
    return result


def wait_for(condition: Callable[[], bool], what: str) -> None:
    # Polls a server-side state change (a session reaching a lock); the bound only
    # guards against hanging forever, it is not a timing assertion.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def first_column(result: health.CheckResult) -> list[Any]:
    return [row[0] for row in result.rows]


def test_all_checks_run_on_a_fresh_database() -> None:
    results = health.run_checks()
    assert [r.name for r in results] == list(health.CHECKS)
    assert {r.status for r in results} <= {"ok", "info", "warning", "critical"}
    assert all(r.summary for r in results)


def test_connections_counts_sessions_against_max_connections(connect: Any, settings: Any) -> None:
    before = run("connections").values["used"]
    extra = [connect() for _ in range(3)]
    result = run("connections")
    assert result.values["used"] >= before + len(extra)
    assert result.values["max"] == int(extra[0].execute("SHOW max_connections").fetchone()[0])
    assert result.status == "ok"
    settings.DB_HEALTH_THRESHOLDS = {"connections": {"warning": 0.5}}
    assert run("connections").status == "warning"
    settings.DB_HEALTH_THRESHOLDS = {"connections": {"warning": 0.1, "critical": 0.5}}
    assert run("connections").status == "critical"


def test_long_running_query_is_reported(connect: Any, settings: Any) -> None:
    sleeper = connect()
    pid = sleeper.info.backend_pid
    outcome: list[str] = []

    def sleep() -> None:
        try:
            sleeper.execute("SELECT pg_sleep(60) /* probe */")
        except psycopg.errors.QueryCanceled:
            outcome.append("cancelled")

    thread = threading.Thread(target=sleep)
    thread.start()
    watcher = connect()
    try:
        wait_for(
            lambda: (
                watcher.execute(
                    "SELECT state FROM pg_stat_activity WHERE pid = %s", [pid]
                ).fetchone()[0]
                == "active"
            ),
            "the pg_sleep to start",
        )
        settings.DB_HEALTH_THRESHOLDS = {
            "long_running_queries": {"warning_seconds": 0, "critical_seconds": 3600}
        }
        result = run("long_running_queries")
        assert result.status == "warning"
        assert pid in first_column(result)
        row = next(r for r in result.rows if r[0] == pid)
        assert "pg_sleep(60)" in row[5]
        assert result.values["count"] >= 1
        settings.DB_HEALTH_THRESHOLDS = {
            "long_running_queries": {"warning_seconds": 0, "critical_seconds": 0}
        }
        assert run("long_running_queries").status == "critical"
        settings.DB_HEALTH_THRESHOLDS = {}
        assert pid not in first_column(run("long_running_queries"))  # under 60 s
    finally:
        watcher.execute("SELECT pg_cancel_backend(%s)", [pid])
        thread.join()
    assert outcome == ["cancelled"]


def test_blocked_query_is_reported_with_its_blocker(probe: Any, connect: Any) -> None:
    probe.execute(f"CREATE TABLE {SCHEMA}.account (id int PRIMARY KEY, balance int)")
    probe.execute(f"INSERT INTO {SCHEMA}.account VALUES (1, 10)")
    assert run("blocked_queries").status == "ok"
    holder = connect(autocommit=False)
    holder.execute(f"UPDATE {SCHEMA}.account SET balance = 20 WHERE id = 1")
    waiter = connect()
    thread = threading.Thread(
        target=waiter.execute, args=[f"UPDATE {SCHEMA}.account SET balance = 30 WHERE id = 1"]
    )
    thread.start()
    try:
        wait_for(
            lambda: probe.execute(
                "SELECT cardinality(pg_blocking_pids(%s)) > 0", [waiter.info.backend_pid]
            ).fetchone()[0],
            "the second UPDATE to wait for the lock",
        )
        result = run("blocked_queries")
        assert result.status == "warning"
        assert result.values["count"] == 1
        (row,) = result.rows
        assert row[0] == waiter.info.backend_pid
        assert row[3] == str(holder.info.backend_pid)
        assert "balance = 30" in row[4]
        assert "balance = 20" in row[5]
    finally:
        holder.rollback()
        thread.join()
    assert run("blocked_queries").status == "ok"


def test_cache_hit_ratio_is_a_percentage_judged_from_below(probe: Any, settings: Any) -> None:
    probe.execute(f"CREATE TABLE {SCHEMA}.hot AS SELECT g AS id FROM generate_series(1, 100) g")
    probe.execute(f"CREATE INDEX ON {SCHEMA}.hot (id)")
    for _ in range(3):
        probe.execute(f"SELECT count(*) FROM {SCHEMA}.hot WHERE id = 5")
    probe.execute("SELECT pg_stat_force_next_flush()")
    result = run("cache_hit_ratio")
    assert 0 < result.values["tables"] <= 100
    assert result.unit == "%"
    judged = {"min_blocks": 1}
    settings.DB_HEALTH_THRESHOLDS = {"cache_hit_ratio": {**judged, "warning": 100.5, "critical": 0}}
    assert run("cache_hit_ratio").status == "warning"
    settings.DB_HEALTH_THRESHOLDS = {
        "cache_hit_ratio": {**judged, "warning": 100.5, "critical": 100.5}
    }
    assert run("cache_hit_ratio").status == "critical"
    settings.DB_HEALTH_THRESHOLDS = {"cache_hit_ratio": {"min_blocks": 10**12}}
    too_few = run("cache_hit_ratio")
    assert too_few.status == "info"
    assert "too few to judge" in too_few.summary


def test_table_and_index_sizes_list_the_largest_first(probe: Any) -> None:
    probe.execute(
        f"CREATE TABLE {SCHEMA}.big AS SELECT g AS id, repeat('x', 200) AS pad"
        " FROM generate_series(1, 20000) g"
    )
    probe.execute(f"CREATE INDEX big_pad_idx ON {SCHEMA}.big (pad)")
    probe.execute(f"ANALYZE {SCHEMA}.big")
    tables = run("table_sizes")
    assert tables.status == "info"
    assert tables.rows[0][0] == f"{SCHEMA}.big"
    assert tables.rows[0][5] == 20000
    assert tables.values["database_bytes"] > tables.rows[0][1]
    indexes = run("index_sizes")
    assert indexes.rows[0][:2] == [f"{SCHEMA}.big", "big_pad_idx"]


def test_unused_index_is_reported_but_not_unique_ones(probe: Any, settings: Any) -> None:
    probe.execute(f"CREATE TABLE {SCHEMA}.item (id int PRIMARY KEY, code text UNIQUE, tag text)")
    probe.execute(f"CREATE INDEX item_tag_idx ON {SCHEMA}.item (tag)")
    small = {(row[0], row[1]) for row in run("unused_indexes").rows}
    assert (f"{SCHEMA}.item", "item_tag_idx") not in small  # under the 1 MB default
    settings.DB_HEALTH_THRESHOLDS = {"unused_indexes": {"min_size_bytes": 0}}
    result = run("unused_indexes")
    assert result.status == "warning"
    names = {(row[0], row[1]) for row in result.rows}
    assert (f"{SCHEMA}.item", "item_tag_idx") in names
    assert not {n for n in names if n[0] == f"{SCHEMA}.item" and n[1] != "item_tag_idx"}
    probe.execute("SET enable_seqscan = off")
    probe.execute(f"SELECT * FROM {SCHEMA}.item WHERE tag = 'a'")
    probe.execute("SELECT pg_stat_force_next_flush()")
    assert ("health_probe.item", "item_tag_idx") not in {
        (r[0], r[1]) for r in run("unused_indexes").rows
    }


def test_duplicate_index_names_the_index_that_covers_it(probe: Any, settings: Any) -> None:
    probe.execute(f"CREATE TABLE {SCHEMA}.chore (id int PRIMARY KEY, a int, b int, c text)")
    probe.execute(f"CREATE INDEX chore_a_idx ON {SCHEMA}.chore (a)")
    probe.execute(f"CREATE INDEX chore_a_b_idx ON {SCHEMA}.chore (a, b)")
    probe.execute(f"CREATE INDEX chore_b_idx ON {SCHEMA}.chore (b)")
    probe.execute(f"CREATE UNIQUE INDEX chore_c_key ON {SCHEMA}.chore (c)")
    probe.execute(f"CREATE INDEX chore_c_idx ON {SCHEMA}.chore (c)")
    probe.execute(f"CREATE INDEX chore_b_partial_idx ON {SCHEMA}.chore (b) WHERE a > 0")
    result = run("duplicate_indexes")
    mine = {row[1]: row[3] for row in result.rows if row[0] == f"{SCHEMA}.chore"}
    assert mine == {"chore_a_idx": "chore_a_b_idx", "chore_c_idx": "chore_c_key"}
    assert result.status == "warning"
    # Django's own tables have such indexes too; they are left out unless asked for.
    assert "public.auth_group_permissions" not in first_column(result)
    settings.DB_HEALTH_INCLUDE_THIRD_PARTY = True
    assert "public.auth_group_permissions" in first_column(run("duplicate_indexes"))


def test_an_index_left_invalid_by_a_failed_concurrent_build_is_critical(probe: Any) -> None:
    probe.execute(f"CREATE TABLE {SCHEMA}.member (nickname text)")
    probe.execute(f"INSERT INTO {SCHEMA}.member VALUES ('ann'), ('ann')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        probe.execute(f"CREATE UNIQUE INDEX CONCURRENTLY member_nick ON {SCHEMA}.member (nickname)")
    probe.execute(f"CREATE INDEX member_ok ON {SCHEMA}.member (nickname)")

    result = run("invalid_indexes")

    assert result.status == "critical"
    mine = [row for row in result.rows if row[0] == f"{SCHEMA}.member"]
    # The duplicate stops the build before the index is even ready for writes.
    assert [(row[1], row[2], row[3]) for row in mine] == [("member_nick", False, False)]
    assert mine[0][5] == f"DROP INDEX CONCURRENTLY IF EXISTS {SCHEMA}.member_nick;"
    probe.execute(mine[0][5])
    assert run("invalid_indexes").status == "ok"


def test_large_table_read_by_sequential_scans_needs_an_index(probe: Any, settings: Any) -> None:
    probe.execute(
        f"CREATE TABLE {SCHEMA}.completion AS SELECT g AS id, g % 7 AS household"
        " FROM generate_series(1, 3000) g"
    )
    probe.execute(f"CREATE TABLE {SCHEMA}.small AS SELECT g AS id FROM generate_series(1, 10) g")
    for _ in range(5):
        probe.execute(f"SELECT count(*) FROM {SCHEMA}.completion WHERE household = 3")
        probe.execute(f"SELECT count(*) FROM {SCHEMA}.small WHERE id = 3")
    probe.execute("SELECT pg_stat_force_next_flush()")
    settings.DB_HEALTH_THRESHOLDS = {"missing_indexes": {"min_rows": 1000}}
    result = run("missing_indexes")
    tables = first_column(result)
    assert f"{SCHEMA}.completion" in tables
    assert f"{SCHEMA}.small" not in tables
    row = result.rows[tables.index(f"{SCHEMA}.completion")]
    assert row[1:4] == [3000, 5, 0]
    assert result.status == "warning"


def test_sequence_near_its_maximum_counts_the_column_type(probe: Any) -> None:
    probe.execute(f"CREATE SEQUENCE {SCHEMA}.ticket_seq MAXVALUE 100")
    probe.execute(f"SELECT setval('{SCHEMA}.ticket_seq', 95)")
    result = run("sequences")
    assert result.status == "critical"
    assert result.rows[0][0] == f"{SCHEMA}.ticket_seq"
    assert result.rows[0][5] == 95.0
    probe.execute(f"DROP SEQUENCE {SCHEMA}.ticket_seq")
    probe.execute(f"CREATE SEQUENCE {SCHEMA}.round_robin MAXVALUE 10 CYCLE")
    probe.execute(f"SELECT setval('{SCHEMA}.round_robin', 10)")
    assert f"{SCHEMA}.round_robin" not in first_column(run("sequences"))  # starts over

    # A bigint sequence feeding an integer column runs out at the column's maximum.
    probe.execute(f"CREATE TABLE {SCHEMA}.legacy (id integer PRIMARY KEY)")
    probe.execute(f"CREATE SEQUENCE {SCHEMA}.legacy_id_seq AS bigint OWNED BY {SCHEMA}.legacy.id")
    probe.execute(f"SELECT setval('{SCHEMA}.legacy_id_seq', 1800000000)")
    # And an identity column, with its implicit sequence.
    probe.execute(
        f"CREATE TABLE {SCHEMA}.tiny (id smallint GENERATED BY DEFAULT AS IDENTITY, x int)"
    )
    probe.execute(f"SELECT setval(pg_get_serial_sequence('{SCHEMA}.tiny', 'id'), 30000)")
    result = run("sequences")
    by_column = {row[1]: row for row in result.rows}
    legacy = by_column[f"{SCHEMA}.legacy.id"]
    assert legacy[2:5] == ["integer", 1800000000, 2147483647]
    assert legacy[5] == pytest.approx(83.82, abs=0.01)
    tiny = by_column[f"{SCHEMA}.tiny.id"]
    assert tiny[2] == "smallint"
    assert tiny[5] == pytest.approx(91.56, abs=0.01)
    assert result.status == "critical"
    assert result.values["max_used_percent"] == tiny[5]


def test_dead_tuples_and_last_autovacuum(probe: Any) -> None:
    probe.execute(
        f"CREATE TABLE {SCHEMA}.notification WITH (autovacuum_enabled = false) AS"
        " SELECT g AS id FROM generate_series(1, 4000) g"
    )
    probe.execute(f"DELETE FROM {SCHEMA}.notification WHERE id <= 3000")
    probe.execute("SELECT pg_stat_force_next_flush()")
    result = run("dead_tuples")
    row = next(r for r in result.rows if r[0] == f"{SCHEMA}.notification")
    assert row[1:4] == [1000, 3000, 75.0]
    assert row[4] is None  # never autovacuumed
    assert result.status == "critical"
    probe.execute(f"VACUUM {SCHEMA}.notification")
    probe.execute("SELECT pg_stat_force_next_flush()")
    assert f"{SCHEMA}.notification" not in first_column(run("dead_tuples"))


def test_slow_queries_explain_how_to_enable_pg_stat_statements(
    pg_server: Any, connect: Any, settings: Any
) -> None:
    result = run("slow_queries")
    assert result.status == "info"
    assert "shared_preload_libraries" in result.hint
    assert "CREATE EXTENSION pg_stat_statements" in result.hint
    assert "parameter group" in result.hint
    if pg_server.cluster is None:
        pytest.skip("creating pg_stat_statements needs the local cluster's superuser")
    dbname = settings.DATABASES["default"]["NAME"]
    admin = psycopg.connect(**pg_server.cluster.conninfo("superuser", dbname), autocommit=True)
    try:
        admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        session = connect()
        for _ in range(2):
            session.execute("SELECT pg_sleep(0.06) /* slow probe */")
        settings.DB_HEALTH_THRESHOLDS = {"slow_queries": {"mean_ms": 50, "min_calls": 2}}
        result = run("slow_queries")
        assert result.status == "warning"
        assert any("slow probe" in row[4] for row in result.rows)
        settings.DB_HEALTH_THRESHOLDS = {"slow_queries": {"mean_ms": 10**7}}
        assert run("slow_queries").status == "ok"
    finally:
        admin.execute("DROP EXTENSION IF EXISTS pg_stat_statements")
        admin.close()


def test_thresholds_merge_settings_over_defaults(settings: Any) -> None:
    settings.DB_HEALTH_THRESHOLDS = {"connections": {"warning": 50}}
    assert health.thresholds("connections") == {"warning": 50, "critical": 90}
    settings.DB_HEALTH_THRESHOLDS = {"conections": {"warning": 50}}
    with pytest.raises(ImproperlyConfigured, match="unknown checks \\['conections'\\]"):
        health.thresholds("connections")
    settings.DB_HEALTH_THRESHOLDS = {"connections": {"warn": 50}}
    with pytest.raises(ImproperlyConfigured, match="has no key 'warn'"):
        health.thresholds("connections")
    settings.DB_HEALTH_THRESHOLDS = {"connections": {"warning": "high"}}
    with pytest.raises(ImproperlyConfigured, match="is not a number"):
        health.thresholds("connections")


def test_a_failing_check_is_a_warning_and_the_others_still_run(monkeypatch: Any) -> None:
    def broken(cursor: Any) -> health.CheckResult:
        cursor.execute("SELECT * FROM no_such_view")
        raise AssertionError("unreachable")

    monkeypatch.setitem(health.CHECKS, "sequences", broken)
    results = {r.name: r for r in health.run_checks()}
    assert results["sequences"].status == "warning"
    assert "no_such_view" in results["sequences"].summary
    assert results["dead_tuples"].status in {"ok", "warning", "critical"}
    assert results["dead_tuples"].summary


def test_checks_run_in_a_read_only_transaction(monkeypatch: Any) -> None:
    def writer(cursor: Any) -> health.CheckResult:
        cursor.execute("CREATE TABLE health_should_not_exist (id int)")
        raise AssertionError("unreachable")

    monkeypatch.setitem(health.CHECKS, "table_sizes", writer)
    results = {r.name: r for r in health.run_checks(names=["table_sizes", "connections"])}
    assert "read-only transaction" in results["table_sizes"].summary
    assert results["connections"].status == "ok"
