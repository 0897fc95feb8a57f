"""Reporting reads go to a real streaming replica, writes to the primary (D9).

The replica is the test cluster's hot standby (`streaming_replica`: pg_basebackup -R, a
slot, SSL); the "replica" alias is its application-role connection to the test database.
It only sees what the primary committed and replayed, so these tests commit
(transaction=True) and wait for replay where they need to see a row. Replay is paused
with pg_wal_replay_pause() to make lag, and the replica is stopped to make it fail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, connections, router
from django.test import Client, override_settings

from dbops.connections.routers import (
    REPLICA,
    reporting,
    reporting_alias,
    reporting_connection,
    tracking_writes,
)
from dbops.localdb.replica import LocalReplica
from dbops.models import MigrationTest
from dbops.web.replicarouting import COOKIE
from tests.dbops.connections import replica_urls
from tests.dbops.connections.replica_alias import BOTH, replica_alias

FAST = {"DB_REPLICA_CHECK_INTERVAL": 0, "DB_REPLICA_MAX_LAG": 3600}
pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)
# The rows these tests write (the table also holds the migration's own).
OURS = MigrationTest.objects.filter(name__startswith="r-")


@pytest.fixture(scope="module", autouse=True)
def _alias(streaming_replica: LocalReplica, django_db_setup: None) -> Iterator[None]:
    name = settings.DATABASES["default"]["NAME"]
    with replica_alias(streaming_replica.conninfo("app", name)):
        yield


@pytest.fixture
def replica(streaming_replica: LocalReplica) -> Iterator[LocalReplica]:
    """The standby, left running and replaying whatever the test did to it."""
    try:
        with override_settings(**FAST):
            yield streaming_replica
    finally:
        connections[REPLICA].close()
        if not streaming_replica.running():
            streaming_replica.start()
        _resume(streaming_replica)


def _superuser(replica: LocalReplica) -> psycopg.Connection[Any]:
    return psycopg.connect(**replica.conninfo("superuser", "postgres"), autocommit=True)


def _resume(replica: LocalReplica) -> None:
    with _superuser(replica) as conn:
        conn.execute("SELECT pg_wal_replay_resume()")


PAUSE_STATE = "SELECT pg_get_wal_replay_pause_state()"


def _pause(replica: LocalReplica) -> None:
    # Everything replayed first: a pause in the middle of the previous test's TRUNCATE
    # (Django's flush) would leave its lock held on the standby, blocking every read. The
    # other workers write to the same cluster meanwhile, so the pause may still stop on a
    # replayed lock that blocks new connections: then resume, catch up and pause again,
    # until the paused standby lets the application's role connect and read.
    for _ in range(10):
        _replayed(replica)
        with _superuser(replica) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
            _until(lambda c=conn: c.execute(PAUSE_STATE).fetchone()[0] == "paused")
        if _serves_reads(replica):
            return
        _resume(replica)
    raise AssertionError("the paused standby never let a new connection read")


def _serves_reads(replica: LocalReplica) -> bool:
    try:
        database = connections[REPLICA].settings_dict["NAME"]
        with psycopg.connect(**replica.conninfo("app", database), connect_timeout=3) as conn:
            conn.execute("SET statement_timeout = '3s'")
            conn.execute("SELECT count(*) FROM migration_test").fetchone()
    except psycopg.OperationalError:
        return False
    return True


def _until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _replayed(replica: LocalReplica) -> None:
    """Wait until the replica has replayed everything the primary has written so far.

    The insert position, not pg_current_wal_lsn(): the test cluster commits
    asynchronously, so a commit record may not have been written out yet.
    """
    with psycopg.connect(**replica.cluster.conninfo("superuser", "postgres")) as conn:
        (lsn,) = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    query = "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"
    with _superuser(replica) as conn:
        _until(lambda: conn.execute(query, [lsn]).fetchone()[0])


def _server_port(alias: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT inet_server_port()")
        return int(cursor.fetchone()[0])


def test_reporting_reads_are_served_by_the_standby(replica: LocalReplica) -> None:
    MigrationTest.objects.create(name="r-committed-on-the-primary")
    _replayed(replica)
    with reporting() as alias:
        assert alias == REPLICA
        assert _server_port(REPLICA) == replica.port()
        assert list(OURS.values_list("name", flat=True)) == ["r-committed-on-the-primary"]
        with reporting_connection().cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()")
            assert cursor.fetchone() == (True,)
    assert MigrationTest.objects.all().db == "default"


def test_writes_inside_reporting_go_to_the_primary(replica: LocalReplica) -> None:
    with reporting():
        MigrationTest.objects.create(name="r-router-created")
        assert router.db_for_write(MigrationTest) == "default"
    assert MigrationTest.objects.filter(name="r-router-created").exists()
    _replayed(replica)
    with reporting():
        copied = MigrationTest.objects.get(name="r-router-created")
        assert copied._state.db == REPLICA
        copied.name = "r-router-saved"
        copied.save()  # Django would save it back to where it came from; the router says no
    assert OURS.using("default").get().name == "r-router-saved"


def test_models_marked_as_reporting_read_from_the_standby(replica: LocalReplica) -> None:
    with override_settings(REPORTING_MODELS=["dbops.MigrationTest"]):
        assert MigrationTest.objects.all().db == REPLICA
    with override_settings(REPORTING_MODELS=["dbops"]):
        assert MigrationTest.objects.all().db == REPLICA
    assert MigrationTest.objects.all().db == "default"


def test_the_standby_refuses_writes(replica: LocalReplica) -> None:
    with (
        pytest.raises(DatabaseError, match="read-only transaction"),
        connections[REPLICA].cursor() as cursor,
    ):
        cursor.execute("INSERT INTO migration_test (name) VALUES ('r-router-sneaky')")


def test_migrations_never_run_on_the_replica() -> None:
    assert router.allow_migrate_model(REPLICA, MigrationTest) is False
    assert router.allow_migrate_model("default", MigrationTest) is True


def test_lag_over_the_limit_sends_reads_to_the_primary_with_a_log_line(
    replica: LocalReplica, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dbops.replica")
    _replayed(replica)
    with override_settings(DB_REPLICA_MAX_LAG=0.5):
        assert reporting_alias() == REPLICA
        _pause(replica)
        MigrationTest.objects.create(name="r-not-replayed-yet")
        time.sleep(0.6)
        _until(lambda: reporting_alias() == "default")
        with reporting():
            assert MigrationTest.objects.filter(name="r-not-replayed-yet").exists()
        assert "behind the primary (DB_REPLICA_MAX_LAG is 0.5s)" in caplog.text
        assert "reporting reads fall back to the primary" in caplog.text
        _resume(replica)
        _until(lambda: reporting_alias() == REPLICA)
    assert "is back" in caplog.text


@override_settings(ROOT_URLCONF="tests.dbops.connections.replica_urls")
def test_a_client_reads_its_own_writes_while_the_standby_lags(replica: LocalReplica) -> None:
    writer, other = Client(), Client()
    _pause(replica)  # the standby has not replayed the write: only the primary has it
    response = writer.post("/write/", {"name": "r-my-own-change"})
    assert response.status_code == 200
    assert COOKIE in response.cookies
    assert writer.get("/names/").content == b"r-my-own-change"
    assert other.get("/names/").content == b""  # from the standby, which lags
    with override_settings(DB_READ_YOUR_WRITES=0):
        fresh = Client()
        assert COOKIE not in fresh.post("/write/", {"name": "r-x"}).cookies
    _resume(replica)
    _replayed(replica)
    assert other.get("/names/").content == b"r-my-own-change,r-x"


@override_settings(ROOT_URLCONF="tests.dbops.connections.replica_urls")
def test_a_standby_stopped_mid_request_answers_from_the_primary(
    replica: LocalReplica, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dbops.replica")
    MigrationTest.objects.create(name="r-on-both")
    _replayed(replica)
    ports: list[int] = []
    replica_urls.BETWEEN_READS.append(lambda: (ports.append(_server_port(REPLICA)), replica.stop()))
    try:
        response = Client().get("/names/")
    finally:
        replica_urls.BETWEEN_READS.clear()
    assert ports == [replica.port()]  # the first read was the standby's
    assert response.status_code == 200
    assert response.content == b"r-on-both"
    assert "failed during GET /names/: the request runs again on the primary" in caplog.text
    # Down: the next requests go to the primary at once, still no error page.
    assert reporting_alias() == "default"
    assert Client().get("/names/").content == b"r-on-both"


@override_settings(ROOT_URLCONF="tests.dbops.connections.replica_urls")
def test_a_standby_that_is_down_is_never_an_error_page(
    replica: LocalReplica, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dbops.replica")
    replica.stop()
    MigrationTest.objects.create(name="r-only-the-primary-knows")
    response = Client().get("/names/")
    assert response.status_code == 200
    assert response.content == b"r-only-the-primary-knows"
    assert "is unavailable" in caplog.text
    replica.start()
    _until(lambda: reporting_alias() == REPLICA)


def test_tracking_writes_marks_orm_writes_only(replica: LocalReplica) -> None:
    with tracking_writes() as marks:
        list(MigrationTest.objects.all())
        assert not marks
        MigrationTest.objects.create(name="r-w")
        assert marks
        assert reporting_alias() == "default"  # this request's own reads stay on the primary
