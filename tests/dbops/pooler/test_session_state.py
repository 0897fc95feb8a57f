"""Nothing a request sets on its connection leaks to another client behind PgBouncer (D9).

A PgBouncer in transaction mode with ONE server connection: every transaction of every
client runs on that same server session, one after the other. Two clients (threads, each
with its own Django connection to PgBouncer) write audited rows as different actors, in
interleaved transactions; every audit row must name its own client's actor. The control
shows that the test would see a leak: a session-level SET made through the pooler is
seen by the other client.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connections

from accounts.models import UserProfile
from chores.audit import acting_as, current_actor
from dbops.connections.config import DatabaseEnvironment, behind_pooler
from dbops.localdb.pgbouncer import LocalPgBouncer

POOLED = "pooled"
ROUNDS = 10
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", POOLED])


@pytest.fixture(scope="module")
def one_server_connection(pg_server: Any) -> Iterator[LocalPgBouncer]:
    if pg_server.cluster is None:
        pytest.fail("These tests start PgBouncer in front of the local test cluster.")
    bouncer = LocalPgBouncer(pg_server.cluster, pool_size=1, name="pgbouncer-one")
    bouncer.start()
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="module", autouse=True)
def _pooled_alias(one_server_connection: LocalPgBouncer, django_db_setup: None) -> Iterator[None]:
    """The application role's connection through PgBouncer, as DB_POOLER=pgbouncer makes it."""
    config = copy.deepcopy(settings.DATABASES["default"])
    config.update(PORT=one_server_connection.port())
    config["OPTIONS"] = {k: v for k, v in config["OPTIONS"].items() if k != "options"}
    config["TEST"] = {"MIRROR": "default"}
    behind_pooler(config, DatabaseEnvironment(pooler="pgbouncer", conn_max_age=60))
    settings.DATABASES[POOLED] = config
    try:
        yield
    finally:
        connections[POOLED].close()
        del connections[POOLED]
        del settings.DATABASES[POOLED]


def _client(actor: str, turns: list[threading.Semaphore], me: int, errors: list[str]) -> None:
    try:
        for i in range(ROUNDS):
            turns[me].acquire()  # interleave: A's transaction, B's, A's ...
            try:
                with acting_as(actor, using=POOLED):
                    UserProfile.objects.using(POOLED).create(
                        cognito_sub=f"{actor}-{i}", email=f"{actor[5:]}{i}@example.com"
                    )
                    if current_actor(POOLED) != actor:
                        errors.append(f"{actor} saw actor {current_actor(POOLED)!r}")
                # Outside any transaction: nothing of the last one is left for this client.
                if current_actor(POOLED):
                    errors.append(f"{actor} sees {current_actor(POOLED)!r} after its commit")
            finally:
                turns[1 - me].release()
    except Exception as err:  # noqa: BLE001 - reported by the test
        errors.append(f"{actor}: {err!r}")
    finally:
        connections[POOLED].close()


def test_two_clients_behind_one_server_connection_keep_their_own_actor(
    one_server_connection: LocalPgBouncer,
) -> None:
    turns = [threading.Semaphore(1), threading.Semaphore(0)]
    errors: list[str] = []
    threads = [
        threading.Thread(target=_client, args=(actor, turns, me, errors))
        for me, actor in enumerate(("user:alice", "user:bob"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT u.cognito_sub, a.actor FROM audit_log a JOIN users u ON u.id::text = a.row_key"
            " WHERE a.table_name = 'users' AND a.action = 'INSERT'"
        )
        rows = cursor.fetchall()
    assert len(rows) == 2 * ROUNDS
    assert all(sub.startswith(f"{actor}-") for sub, actor in rows), rows
    assert {actor for _, actor in rows} == {"user:alice", "user:bob"}


def test_the_control_a_session_level_set_would_leak(one_server_connection: LocalPgBouncer) -> None:
    """Both clients share the one server session: a plain SET by one is the other's too."""
    info = one_server_connection.conninfo("app", settings.DATABASES["default"]["NAME"])
    with (
        psycopg.connect(**info, autocommit=True, prepare_threshold=None) as a,
        psycopg.connect(**info, autocommit=True, prepare_threshold=None) as b,
    ):
        pid_a = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert b.execute("SELECT pg_backend_pid()").fetchone()[0] == pid_a
        a.execute("SET choregarden.actor = 'user:mallory'")  # what the project never does
        try:
            assert b.execute("SELECT current_setting('choregarden.actor', true)").fetchone() == (
                "user:mallory",
            )
        finally:
            a.execute("RESET choregarden.actor")
