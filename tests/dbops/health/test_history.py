"""Health history: `record` against the catalog, retention, the series the page charts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from dbops.health import history
from dbops.models import HealthSnapshot, HealthStatementSample

SCHEMA = "history_probe"
SECRET = "Leaky-Passw0rd-77"


def make_snapshot(at: Any, **figures: Any) -> HealthSnapshot:
    values = {
        "status": 0,
        "connections": 3,
        "max_connections": 100,
        "cache_hit_ratio": 0.99,
        "database_bytes": 10_000_000,
        "dead_tuples": 0,
        "table_sizes": {"public.users": 4096},
        **figures,
    }
    return HealthSnapshot.objects.create(taken_at=at, **values)


def make_sample(snapshot: HealthSnapshot, queryid: int, calls: int, total_ms: float) -> None:
    HealthStatementSample.objects.create(
        snapshot=snapshot,
        queryid=queryid,
        query="SELECT * FROM users WHERE id = $1",
        calls=calls,
        total_ms=total_ms,
        mean_ms=total_ms / calls,
    )


def catalog(sql: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def client_backends() -> int:
    catalog("SELECT pg_stat_clear_snapshot()")
    return int(
        catalog("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")[0][0]
    )


@pytest.mark.django_db
def test_record_stores_the_figures_the_catalog_shows() -> None:
    used = client_backends()
    ((max_connections, database_bytes, dead),) = catalog(
        "SELECT current_setting('max_connections')::int,"
        " pg_database_size(current_database()),"
        " (SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables)"
    )
    largest = catalog(
        "SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p', 'm')"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 2 DESC, 1 LIMIT 10"
    )
    recording = history.record()
    snapshot = HealthSnapshot.objects.get(pk=recording.snapshot.pk)
    assert snapshot.max_connections == max_connections
    # Connections come and go (a pool fills in the background): read again after.
    assert used <= snapshot.connections <= client_backends()
    assert snapshot.database_bytes == database_bytes
    assert snapshot.dead_tuples == dead
    assert snapshot.table_sizes == dict(largest)
    assert snapshot.replication_lag_seconds is None  # no standby streams from the test server
    assert snapshot.cache_hit_ratio is None or 0 <= snapshot.cache_hit_ratio <= 1
    assert (
        snapshot.status
        == {"ok": 0, "info": 0, "warning": 1, "critical": 2}[
            history.worst_status(recording.results)
        ]
    )
    assert abs(snapshot.taken_at - timezone.now()) < timedelta(minutes=1)


@pytest.fixture
def superuser(pg_server: Any, settings: Any) -> Iterator[psycopg.Connection]:
    """A superuser session on the test database with pg_stat_statements created."""
    dbname = settings.DATABASES["default"]["NAME"]
    admin = psycopg.connect(**pg_server.cluster.conninfo("superuser", dbname), autocommit=True)
    admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    admin.execute("SELECT pg_stat_statements_reset()")
    yield admin
    admin.execute("DROP EXTENSION IF EXISTS pg_stat_statements")
    admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    admin.execute("DROP ROLE IF EXISTS history_probe_role")
    admin.close()


@pytest.mark.django_db(transaction=True)
def test_record_samples_the_top_statements_without_values(
    superuser: psycopg.Connection, settings: Any
) -> None:
    superuser.execute(f"CREATE SCHEMA {SCHEMA}")
    superuser.execute(f"CREATE TABLE {SCHEMA}.item (id int, note text)")
    superuser.execute(f"INSERT INTO {SCHEMA}.item SELECT g, 'n' FROM generate_series(1, 2000) g")
    for i in range(5):
        superuser.execute(f"SELECT count(*) FROM {SCHEMA}.item WHERE note = 'value-{i}'")
    long_select = "SELECT " + ", ".join(f"{i} AS column_{i}" for i in range(300))
    superuser.execute(long_select)
    superuser.execute(f"CREATE ROLE history_probe_role PASSWORD '{SECRET}'")
    superuser.execute(f"ALTER ROLE history_probe_role PASSWORD '{SECRET}'")
    settings.DB_HEALTH_HISTORY_STATEMENTS = 500
    recording = history.record()
    assert recording.note == ""
    samples = list(recording.snapshot.statements.all())
    assert recording.statements == len(samples) > 0
    expected = {
        queryid: (calls, total)
        for queryid, calls, total in superuser.execute(
            "SELECT queryid, sum(calls), sum(total_exec_time) FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " GROUP BY queryid"
        )
    }
    count = next(s for s in samples if f"FROM {SCHEMA}.item WHERE note = $1" in s.query)
    assert count.calls == 5
    calls, total = expected[count.queryid]
    assert calls >= count.calls and total >= count.total_ms
    assert count.mean_ms == pytest.approx(count.total_ms / count.calls)
    assert all(len(s.query) <= history.STATEMENT_TEXT_LIMIT for s in samples)
    assert any(
        s.query.startswith("SELECT $1 AS column_0") and s.query.endswith("…") for s in samples
    )
    roles = [s.query for s in samples if "history_probe_role" in s.query]
    assert roles  # the utility statements are kept, their values masked
    text = "\n".join(s.query for s in samples)
    assert SECRET not in text and "value-" not in text


@pytest.mark.django_db
def test_without_pg_stat_statements_there_are_no_samples_and_a_note() -> None:
    recording = history.record()
    assert recording.statements == 0
    assert not recording.snapshot.statements.exists()
    assert "pg_stat_statements is not created" in recording.note


@pytest.mark.django_db
def test_retention_deletes_only_snapshots_past_it(settings: Any) -> None:
    settings.DB_HEALTH_HISTORY_DAYS = 35
    now = timezone.now()
    old = [make_snapshot(now - timedelta(days=d)) for d in (40, 35.001, 35.01)]
    kept = [make_snapshot(now - timedelta(days=d)) for d in (34.9, 0.5)]
    for snapshot in [*old, *kept]:
        make_sample(snapshot, 7, 10, 100.0)
    recording = history.record()
    assert recording.pruned == 3
    remaining = set(HealthSnapshot.objects.values_list("pk", flat=True))
    assert remaining == {s.pk for s in kept} | {recording.snapshot.pk}
    samples = set(HealthStatementSample.objects.values_list("snapshot_id", flat=True))
    assert samples == {s.pk for s in kept}
    settings.DB_HEALTH_HISTORY_DAYS = 1
    assert history.prune() == 1  # the 34.9-day snapshot
    settings.DB_HEALTH_HISTORY_DAYS = 0
    with pytest.raises(ImproperlyConfigured, match="DB_HEALTH_HISTORY_DAYS=0 must be"):
        history.prune()


@pytest.mark.django_db
def test_statement_series_is_the_mean_between_snapshots_through_a_reset() -> None:
    now = timezone.now()
    queryid = -4_242_424_242
    # (minutes ago, calls, total ms): cumulative figures as pg_stat_statements keeps them.
    figures = [(120, 10, 100.0), (100, 20, 300.0), (80, 5, 50.0), (60, 5, 50.0), (40, 15, 250.0)]
    for minutes, calls, total in figures:
        make_sample(make_snapshot(now - timedelta(minutes=minutes)), queryid, calls, total)
    make_sample(make_snapshot(now - timedelta(minutes=30)), 99, 1, 1.0)  # another statement
    series = history.statement_series(queryid, history.RANGES["24h"], now=now)
    # 10 calls for 200 ms; a reset: 5 calls for 50 ms; no calls: a gap; 10 calls for 200 ms.
    assert [v for _, v in series.mean_ms] == [20.0, 10.0, None, 20.0]
    assert [v for _, v in series.calls] == [10, 5, 0, 10]
    assert series.resets == 1
    times = [at for at, _ in series.mean_ms]
    assert times == sorted(times)
    assert times[0] == history._bucket(now - timedelta(minutes=100), timedelta(minutes=5))


@pytest.mark.django_db
def test_statement_series_starts_from_the_sample_before_the_range() -> None:
    now = timezone.now()
    make_sample(make_snapshot(now - timedelta(hours=25)), 5, 100, 1000.0)
    make_sample(make_snapshot(now - timedelta(hours=23)), 5, 150, 3000.0)
    series = history.statement_series(5, history.RANGES["24h"], now=now)
    assert [v for _, v in series.mean_ms] == [40.0]


@pytest.mark.django_db
def test_figure_series_buckets_a_month_into_at_most_289_points() -> None:
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO health_snapshots (taken_at, status, connections, max_connections,"
            " cache_hit_ratio, database_bytes, dead_tuples, table_sizes)"
            " SELECT %s - make_interval(mins => 5 * g), 0, g %% 10, 100, 0.5, 1000 + g, 7,"
            " jsonb_build_object('public.a', 10 * g, 'public.b', 5)"
            " FROM generate_series(0, 8640) g",  # the oldest is 30 days old: outside
            [now],
        )
    month = history.figure_series(history.RANGES["30d"], now=now)
    assert month.snapshots == 8640
    assert 288 <= len(month.connections) <= 289
    assert {v for _, v in month.max_connections} == {100}
    assert {v for _, v in month.cache_hit_ratio} == {0.5}
    assert list(month.tables) == ["public.b", "public.a"]  # the newest sizes: 5 and 0
    day = history.figure_series(history.RANGES["24h"], now=now)
    assert day.snapshots == 288
    # 5-minute snapshots in 5-minute buckets: each point is one snapshot, as stored.
    newest_at, newest = day.database_bytes[-1]
    assert newest == 1000 and newest_at <= now
    assert day.connections[-1][1] == 0.0


@pytest.mark.django_db
def test_figure_series_averages_levels_and_keeps_the_largest_size() -> None:
    now = timezone.now().replace(minute=2, second=0, microsecond=0)
    make_snapshot(now - timedelta(minutes=1), connections=10, database_bytes=100, dead_tuples=4)
    make_snapshot(now, connections=20, database_bytes=300, dead_tuples=8)
    make_snapshot(now - timedelta(days=2), connections=99)  # outside 24 hours
    day = history.figure_series(history.RANGES["24h"], now=now + timedelta(seconds=1))
    assert day.snapshots == 2
    assert [v for _, v in day.connections] == [15.0]
    assert [v for _, v in day.database_bytes] == [300]
    assert [v for _, v in day.dead_tuples] == [6.0]
    assert day.lag_seconds == [(day.connections[0][0], None)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("24h", "24h"), ("7d", "7d"), ("30d", "30d"), ("", "24h"), ("1y", "24h"), (None, "24h")],
)
def test_an_unknown_range_is_the_24_hour_range(value: Any, expected: str) -> None:
    assert history.parse_range(value).key == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("42", 42),
        ("-9223372036854775808", -(2**63)),
        ("9223372036854775808", None),
        ("4e2", None),
        ("", None),
        ("١٢", None),
        ("9" * 5000, None),
    ],
)
def test_a_queryid_is_a_bigint(value: str, expected: int | None) -> None:
    assert history.parse_queryid(value) == expected


def run_dbhealth(*args: str) -> str:
    out = StringIO()
    call_command("dbhealth", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_dbhealth_record_prints_one_line(settings: Any) -> None:
    settings.DB_HEALTH_HISTORY_DAYS = 3
    make_snapshot(timezone.now() - timedelta(days=4))
    out = run_dbhealth("--record")
    snapshot = HealthSnapshot.objects.get()
    assert out.strip().splitlines() == [
        f"Recorded health snapshot {snapshot.pk} at {snapshot.taken_at:%Y-%m-%d %H:%M:%S} UTC: "
        f"status {['ok', 'warning', 'critical'][snapshot.status]}, 0 statements "
        "(pg_stat_statements is not created in this database: slow queries cannot be "
        "listed.); pruned 1 snapshot older than 3 days."
    ]


@pytest.mark.django_db
def test_dbhealth_record_json(settings: Any) -> None:
    data = json.loads(run_dbhealth("--record", "--json"))
    snapshot = HealthSnapshot.objects.get()
    assert data["recorded"]["snapshot"] == snapshot.pk
    assert data["recorded"]["pruned"] == 0
    assert data["recorded"]["retention_days"] == settings.DB_HEALTH_HISTORY_DAYS
    assert data["recorded"]["status"] == data["status"]
    assert data["checks"][0]["name"] == "connections"


@pytest.mark.django_db
def test_dbhealth_record_needs_every_check() -> None:
    with pytest.raises(CommandError, match="--record does not go with --check or --database"):
        run_dbhealth("--record", "--check", "connections")
    assert not HealthSnapshot.objects.exists()


@pytest.mark.django_db
def test_record_refuses_without_the_figures_it_needs(settings: Any) -> None:
    settings.DB_HEALTH_THRESHOLDS = {"table_sizes": {"top": -1}}  # PostgreSQL refuses it
    with pytest.raises(history.HistoryError, match=r"without the table_sizes check: .*LIMIT"):
        history.record()
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="cannot record a health snapshot") as refused:
        call_command("dbhealth", "--record", "--json", stdout=out, stderr=err)
    assert refused.value.returncode == 1
    data = json.loads(out.getvalue())  # the checks are still reported
    assert data["recorded"] is None
    assert next(c for c in data["checks"] if c["name"] == "table_sizes")["status"] == "warning"
    assert not HealthSnapshot.objects.exists()


@pytest.mark.django_db
def test_dbhealth_record_keeps_the_alert_of_fail_on(settings: Any) -> None:
    settings.DB_HEALTH_THRESHOLDS = {"connections": {"warning": 0.01, "critical": 0.02}}
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("dbhealth", "--record", "--fail-on", "critical", stdout=out)
    assert exited.value.code == 2
    assert HealthSnapshot.objects.get().status == 2
    assert "status critical" in out.getvalue()


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("SELECT *\n  FROM users WHERE id = $1", "SELECT * FROM users WHERE id = $1"),
        ("-- V6: a household's tasks\nCREATE TABLE t (a text)", "CREATE TABLE t (a text)"),
        ("SET application_name = 'mallory'", "SET application_name = '…'"),
        ("SELECT 'it''s -- no comment', $1 /* tag */", "SELECT '…', $1 /* tag */"),
        ("DO $body$ BEGIN PERFORM 'x'; END $body$", "DO '…'"),
        (f"ALTER ROLE r PASSWORD '{SECRET}'", "ALTER ROLE r PASSWORD '********'"),
        (f"ALTER ROLE r PASSWORD '{SECRET[:6]}", "ALTER ROLE r PASSWORD '********'"),
    ],
)
def test_statement_text_masks_values_and_drops_line_comments(text: str, stored: str) -> None:
    assert history.statement_text(text) == stored
