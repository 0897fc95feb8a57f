"""The replication checks against the test cluster's real streaming replica.

The replica (tests/conftest.py, `streaming_replica`) is shared by the session: a test that
pauses its replay or stops it resumes or starts it again in a `finally`, and waits until
it has caught up, so that the tests after it find it streaming.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.urls import reverse

from dbops import health
from dbops.connections.config import DatabaseEnvironment, databases
from dbops.health.replication import check_replication, check_replication_slots
from dbops.localdb.replica import SLOT, LocalReplica
from tests.helpers import run_manage

pytestmark = pytest.mark.django_db

HEALTH = reverse("admin:dbops_databasehealth_changelist")
STANDBY = "choregarden_replica"  # the replica's application_name (pg_basebackup -R)
PASSWORD = "s3cret-Replica-pw"


def run(name: str) -> health.CheckResult:
    (result,) = health.run_checks(names=[name])
    return result


def wait_for(condition: Callable[[], Any], what: str) -> None:
    # Polls a server-side state change (a slot released, WAL replayed); the bound only
    # guards against hanging forever, it is not a timing assertion.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def primary_superuser(replica: LocalReplica) -> psycopg.Connection:
    return psycopg.connect(**replica.cluster.conninfo("superuser", "postgres"), autocommit=True)


def replica_superuser(replica: LocalReplica) -> psycopg.Connection:
    return psycopg.connect(**replica.conninfo("superuser", "postgres"), autocommit=True)


def write_wal(replica: LocalReplica, size: int = 1024 * 1024) -> None:
    """Commit a transaction and write `size` bytes of WAL on the primary."""
    with primary_superuser(replica) as conn:
        conn.execute("SELECT txid_current()")  # an xid: its commit is a replayed transaction
        conn.execute(
            "SELECT pg_logical_emit_message(false, 'choregarden-health-test', repeat('x', %s))",
            [size],
        )
        (inserted,) = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        # The checks measure from pg_current_wal_lsn(), what is written: with
        # synchronous_commit off, the WAL writer writes it a moment later.
        wait_for(
            lambda: conn.execute(
                "SELECT pg_current_wal_lsn() >= %s::pg_lsn", [inserted]
            ).fetchone()[0],
            "the WAL to be written",
        )


def caught_up(replica: LocalReplica) -> bool:
    """The standby streams and has replayed everything the primary had written."""
    with primary_superuser(replica) as conn:
        # The insert position: with synchronous_commit off a commit may not be written yet.
        (target,) = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        (streaming,) = conn.execute(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = %s"
            " AND state = 'streaming'",
            [STANDBY],
        ).fetchone()
    if not streaming:
        return False
    with replica_superuser(replica) as conn:
        (done,) = conn.execute(
            "SELECT NOT pg_is_wal_replay_paused() AND pg_last_wal_replay_lsn() >= %s::pg_lsn",
            [target],
        ).fetchone()
    return bool(done)


def leave_streaming(replica: LocalReplica) -> None:
    """Hand the shared replica on as the session found it: running, replaying, current."""
    if not replica.running():
        replica.start()
    with replica_superuser(replica) as conn:
        conn.execute("SELECT pg_wal_replay_resume()")
    wait_for(lambda: caught_up(replica), "the replica to stream and catch up again")


@contextmanager
def replica_alias(url: str) -> Iterator[dict[str, Any]]:
    """Register the `replica` alias as REPLICA_DATABASE_URL=url would make it.

    Registered after the test's database setup (Django's per-test guard of aliases does
    not cover it), with the defaults Django gives the aliases it knows at start.
    """
    from dbops.connections.replicas import REPLICA

    assert REPLICA not in settings.DATABASES
    tls = {"sslmode": connections["default"].settings_dict["OPTIONS"].get("sslmode", "prefer")}
    rootcert = connections["default"].settings_dict["OPTIONS"].get("sslrootcert")
    made = databases(
        DatabaseEnvironment(replica_database_url=url, **tls, sslrootcert=rootcert or "")
    )
    config = {**copy.deepcopy(connections["default"].settings_dict), **made[REPLICA]}
    settings.DATABASES[REPLICA] = config  # the same dict as connections.settings
    try:
        yield config
    finally:
        connections[REPLICA].close()
        del connections[REPLICA]
        del settings.DATABASES[REPLICA]


def database_name() -> str:
    return str(settings.DATABASES["default"]["NAME"])


def row_of(result: health.CheckResult, name: str) -> list[Any]:
    return next(row for row in result.rows if row[0] == name)


def test_without_standby_slot_or_replica_every_replication_check_is_ok(pg_server: Any) -> None:
    with psycopg.connect(**pg_server.conninfo(), autocommit=True) as conn:
        (standbys,) = conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()
        (slots,) = conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()
    results = {
        r.name: r for r in health.run_checks(names=["replication", "replication_slots", "replica"])
    }
    assert {name: r.status for name, r in results.items()} == {
        "replication": "ok",
        "replication_slots": "ok",
        "replica": "ok",
    }
    assert results["replica"].summary.startswith(
        "No read replica is configured (REPLICA_DATABASE_URL is not set)"
    )
    # Earlier tests of this worker may have started the session's replica: then there is
    # a standby and its slot, and the checks say OK for another reason (tested below).
    if not standbys:
        assert results["replication"].summary == (
            "No standby is connected to this server (pg_stat_replication is empty)."
        )
        assert results["replication"].values == {
            "standbys": 0,
            "max_lag_bytes": None,
            "max_lag_seconds": None,
        }
    if not slots:
        assert results["replication_slots"].summary.startswith("No replication slot")
        assert results["replication_slots"].values["count"] == 0
    out = StringIO()
    call_command(
        "dbhealth",
        "--check",
        "replication",
        "--check",
        "replication_slots",
        "--check",
        "replica",
        "--fail-on",
        "warning",
        stdout=out,
    )
    assert "Overall: ok." in out.getvalue()


def test_a_streaming_standby_is_reported_with_no_lag(streaming_replica: LocalReplica) -> None:
    wait_for(lambda: caught_up(streaming_replica), "the replica to stream")
    # The standby reports its replay position with its next status message. The report
    # that shows no lag is the one checked: other tests share this primary, and any WAL
    # they write between two reports is lag again.
    seen: list[health.CheckResult] = []

    def no_lag() -> bool:
        seen.append(run("replication"))
        return row_of(seen[-1], STANDBY)[5] == 0

    wait_for(no_lag, "a replay lag of 0 bytes")
    result = seen[-1]
    standby = row_of(result, STANDBY)
    assert standby[2:4] == ["streaming", "async"]
    assert standby[5:7] == [0, "0 bytes"]
    assert standby[7] is None or standby[7] < 30  # NULL once an idle primary sent nothing
    assert standby[8] == "ok"
    assert result.status == "ok"
    assert result.values["standbys"] >= 1
    assert "1 standby connected, 1 streaming" in result.summary
    slots = run("replication_slots")
    slot = row_of(slots, SLOT)
    assert slot[1:4] == ["physical", None, "yes"]  # a physical slot: no database
    assert slot[7] == "ok"
    assert slots.status == "ok"


def test_paused_replay_makes_the_lag_cross_the_thresholds(
    streaming_replica: LocalReplica, settings: Any
) -> None:
    write_wal(streaming_replica, size=0)  # a committed transaction the standby replays
    wait_for(lambda: caught_up(streaming_replica), "the replica to replay it")
    with replica_superuser(streaming_replica) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
    try:
        with replica_superuser(streaming_replica) as standby:
            wait_for(
                lambda: (
                    standby.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0]
                    == "paused"
                ),
                "replay to pause",
            )
        write_wal(streaming_replica)
        settings.DB_HEALTH_THRESHOLDS = {
            "replication": {"warning_bytes": 1024, "critical_bytes": 1024**3}
        }
        result = run("replication")
        standby_row = row_of(result, STANDBY)
        # The megabyte of WAL, give or take what was written before replay stopped.
        assert standby_row[5] > 1000 * 1000
        assert standby_row[8] == "warning"
        assert result.status == "warning"
        assert result.values["max_lag_bytes"] > 1000 * 1000
        assert "of WAL to replay" in result.summary
        settings.DB_HEALTH_THRESHOLDS = {"replication": {"critical_bytes": 512 * 1024}}
        critical = run("replication")
        assert critical.status == "critical"
        assert row_of(critical, STANDBY)[8] == "critical"
        out = StringIO()
        with pytest.raises(SystemExit) as exit_info:
            call_command("dbhealth", "--check", "replication", "--fail-on", "critical", stdout=out)
        assert exit_info.value.code == 2
        assert "Replication (standbys) (critical): " in out.getvalue()
        assert STANDBY in out.getvalue()

        # The replica itself says it is behind, and that its replay is paused.
        replica_url = streaming_replica.url("app", database_name())
        with replica_alias(replica_url):
            wait_for(
                lambda: (run("replica").values["replay_backlog_bytes"] or 0) > 1000 * 1000,
                "the standby to receive the WAL it does not replay",
            )
            replica = run("replica")
            assert replica.status == "warning"  # paused; the default 30 s not reached yet
            assert "Replay is paused" in replica.summary
            assert replica.values["lag_seconds"] > 0
            assert replica.rows[0][1] == "streaming"
            assert replica.rows[0][6] == "yes"
            settings.DB_HEALTH_THRESHOLDS = {
                "replica": {"warning_seconds": 0.001, "critical_seconds": 0.002}
            }
            settings.DB_REPLICA_MAX_LAG = 0.001
            critical = run("replica")
            assert critical.status == "critical"
            assert "Beyond DB_REPLICA_MAX_LAG (0.001 s): reporting reads go to the primary" in (
                critical.summary
            )
    finally:
        leave_streaming(streaming_replica)
    settings.DB_HEALTH_THRESHOLDS = {}
    wait_for(lambda: run("replication").status == "ok", "the standby's lag to be reported gone")


def test_a_stopped_standby_leaves_an_inactive_slot_holding_wal(
    streaming_replica: LocalReplica, settings: Any
) -> None:
    wait_for(lambda: caught_up(streaming_replica), "the replica to stream")
    replica_url = streaming_replica.url("app", database_name())
    streaming_replica.stop()
    try:
        wait_for(lambda: row_of(run("replication_slots"), SLOT)[3] == "no", "the slot's release")
        write_wal(streaming_replica)
        slots = run("replication_slots")
        slot = row_of(slots, SLOT)
        assert slot[3] == "no"
        assert slot[5] > 1000 * 1000
        assert slot[7] == "warning"  # under the default 1 GB, but only growing
        assert slots.status == "warning"
        assert slots.values["inactive"] == 1
        assert f"Inactive (no standby or subscriber connected): {SLOT}." in slots.summary
        settings.DB_HEALTH_THRESHOLDS = {"replication_slots": {"critical_bytes": 512 * 1024}}
        assert run("replication_slots").status == "critical"
        with pytest.raises(SystemExit) as exit_info:
            call_command(
                "dbhealth",
                "--check",
                "replication_slots",
                "--fail-on",
                "warning",
                stdout=StringIO(),
            )
        assert exit_info.value.code == 2
        # The standby is gone from pg_stat_replication: nothing to judge there.
        assert STANDBY not in [row[0] for row in run("replication").rows]

        # The replica alias at the stopped server: critical, in one line.
        with replica_alias(replica_url):
            replica = run("replica")
        assert replica.status == "critical"
        assert replica.summary.startswith("cannot connect to the database")
        assert "(REPLICA_DATABASE_URL): Connection refused." in replica.summary
        assert "\n" not in replica.summary
    finally:
        leave_streaming(streaming_replica)


def test_on_a_standby_the_primary_side_checks_find_nothing_to_judge(
    streaming_replica: LocalReplica,
) -> None:
    # `dbhealth --database replica`: pg_current_wal_lsn() would raise during recovery.
    with psycopg.connect(**streaming_replica.conninfo("app", database_name())) as conn:
        standbys = check_replication(conn.cursor())
        slots = check_replication_slots(conn.cursor())
    assert standbys.status == "ok"
    assert standbys.summary == "This server is itself a standby; no standby streams from it."
    assert (slots.status, slots.rows) == ("ok", [])  # a base backup copies no slot


def test_a_role_without_pg_monitor_is_told_what_it_cannot_see(
    streaming_replica: LocalReplica, pg_server: Any
) -> None:
    wait_for(lambda: caught_up(streaming_replica), "the replica to stream")
    with psycopg.connect(**pg_server.conninfo(database_name())) as conn:  # the owner role
        (monitor,) = conn.execute("SELECT pg_has_role('pg_read_all_stats', 'USAGE')").fetchone()
        if monitor:
            pytest.skip("the owner role may read the statistics of other roles' sessions")
        result = check_replication(conn.cursor())
    assert result.status == "warning"
    assert row_of(result, STANDBY)[2:] == ["-", None, None, None, None, None, "warning"]
    assert "hidden from this role (GRANT pg_monitor TO it)" in result.summary
    owner_url = streaming_replica.url("owner", database_name())
    with replica_alias(owner_url):
        replica = run("replica")
    assert replica.status == "warning"
    assert "hidden from this role (GRANT pg_monitor TO it)" in replica.summary


def test_an_unreachable_replica_is_critical_in_one_line_without_its_password() -> None:
    url = f"postgres://reporter:{PASSWORD}@127.0.0.1:1/{database_name()}"
    with replica_alias(url):
        result = run("replica")
        out = StringIO()
        with pytest.raises(SystemExit) as exit_info:
            call_command("dbhealth", "--check", "replica", "--fail-on", "critical", stdout=out)
    assert result.status == "critical"
    assert result.summary.startswith(
        f"cannot connect to the database reporter@127.0.0.1:1/{database_name()} "
        "(REPLICA_DATABASE_URL): Connection refused."
    )
    assert "\n" not in result.summary
    assert exit_info.value.code == 2
    assert "Read replica (critical): cannot connect to the database reporter@" in out.getvalue()
    assert "Traceback" not in out.getvalue()
    assert PASSWORD not in result.summary + out.getvalue()


def test_a_replica_url_at_the_primary_is_critical(pg_server: Any) -> None:
    with replica_alias(pg_server.url(database_name(), role="app")):
        result = run("replica")
    assert result.status == "critical"
    assert result.summary.startswith(
        f"REPLICA_DATABASE_URL points at a primary ({pg_server.host}:{pg_server.port} accepts "
        "writes: pg_is_in_recovery() is false)"
    )
    assert pg_server.app_password not in result.summary


def test_dbhealth_of_a_replica_url_at_the_primary_is_critical_in_one_line(
    pg_server: Any, manage_env: dict[str, str]
) -> None:
    # The replica's connection itself refuses a primary (ReplicaIsPrimary): `--database
    # replica` cannot run a check, and says why as an unreachable database does.
    env = dict(manage_env, REPLICA_DATABASE_URL=pg_server.url(database_name(), role="app"))
    proc = run_manage("dbhealth", "--database", "replica", env=env)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith("CommandError: REPLICA_DATABASE_URL points at a primary (")
    assert pg_server.app_password not in proc.stdout + proc.stderr
    data = json.loads(run_manage("dbhealth", "--json", "--database", "replica", env=env).stdout)
    assert data["status"] == "critical"
    assert data["error"].startswith("REPLICA_DATABASE_URL points at a primary (")
    # On the primary, the replica check says the same; the other checks run.
    proc = run_manage("dbhealth", "--json", env=env)
    assert proc.returncode == 0, proc.stderr  # no --fail-on
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["replica"]["status"] == "critical"
    assert checks["replica"]["summary"] == data["error"]
    assert checks["connections"]["status"] == "ok"


def test_the_health_page_shows_the_replication_checks(
    admin_client: Any, streaming_replica: LocalReplica
) -> None:
    wait_for(lambda: caught_up(streaming_replica), "the replica to stream")
    with replica_alias(streaming_replica.url("app", database_name())):
        page = admin_client.get(HEALTH).content.decode()
    for name in ("replication", "replication_slots", "replica"):
        assert f'class="dbops-check ok" id="check-{name}"' in page, name
    assert f"<td>{STANDBY}</td>" in page
    assert f"<td>{SLOT}</td>" in page
    assert "The replica is a standby streaming from" in page
    assert "warning_bytes 16.0 MB, critical_bytes 1.0 GB" in page


def test_the_health_page_says_when_the_replica_url_is_the_primary(
    admin_client: Any, pg_server: Any
) -> None:
    with replica_alias(pg_server.url(database_name(), role="app")):
        page = admin_client.get(HEALTH).content.decode()
    assert 'class="dbops-check critical" id="check-replica"' in page
    assert "REPLICA_DATABASE_URL points at a primary" in page
    assert 'id="dbops-overall">critical<' in page
