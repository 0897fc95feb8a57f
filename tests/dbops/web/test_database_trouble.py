"""The database in trouble, under a real server: bounded waits, 503 with Retry-After, recovery.

Each test starts `manage.py runserver` (tests/faultserver.py) on a throwaway cluster of its
own and makes the database misbehave the way production sees it: a table locked by
another session, a statement that runs too long, a pool of one whose connection a slow
request holds, sessions terminated, a read-only database, the server stopped for 20 s.
Every request must end (each waits at most a generous bound, so a hang fails the test),
the database's trouble must answer 503 with Retry-After and a page without internals,
logged once with its cause, and bugs must stay 500s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from django.test import RequestFactory

from dbops.localdb import LocalCluster
from dbops.web.dbtrouble import BUSY, READ_ONLY, UNAVAILABLE, server_error
from tests.dbops.web.fault_urls import HOLD_MARK
from tests.faultserver import (
    Answer,
    FaultServer,
    cluster_superuser_sql,
    make_cluster,
    owner_sql,
    terminate_app_sessions,
    wait_for_session,
)

# A request that waits on the database longer than this has hung: far above every
# timeout the tests set (1-2 s), far below "forever".
BOUND = 30
# After the database is back, the first request succeeds within this many seconds (the
# pool retries a failed connect at most about a second later; docs/operations.md).
RECOVERY_BOUND = 3.0
INTERNALS = ("Traceback", "psycopg", "fault_rows", "LockNotAvailable", "127.0.0.1")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = make_cluster(tmp_path_factory.mktemp("faults") / "pg")
    yield cluster
    cluster.destroy()


@pytest.fixture
def serve(cluster: LocalCluster, tmp_path: Path) -> Iterator[Callable[..., FaultServer]]:
    servers: list[FaultServer] = []
    owner_sql(cluster, "TRUNCATE fault_rows")

    def start(**env: str) -> FaultServer:
        server = FaultServer(cluster, tmp_path / f"server{len(servers)}", env)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
    if not cluster.running():
        cluster.start()


def assert_503(answer: Answer, text: str) -> None:
    assert answer.status == 503, answer
    assert answer.headers["Retry-After"] == "5"
    assert text in answer.body
    for internal in INTERNALS:
        assert internal not in answer.body


def trouble_lines(server: FaultServer) -> list[str]:
    return [line for line in server.log().splitlines() if "database trouble (" in line]


def test_a_request_behind_a_locked_table_ends_with_a_503_at_the_lock_timeout(
    cluster: LocalCluster, serve: Callable[..., FaultServer]
) -> None:
    server = serve(DB_LOCK_TIMEOUT="1s")
    with psycopg.connect(**cluster.conninfo("owner")) as locker:
        locker.execute("LOCK TABLE fault_rows IN ACCESS EXCLUSIVE MODE")
        answer = server.get("/rows/", timeout=BOUND)  # unbounded, it waited for the lock
        rendered = server.get("/render/", timeout=BOUND)  # raised while the page renders
        locker.rollback()
    assert_503(answer, BUSY)
    assert_503(rendered, BUSY)
    lines = trouble_lines(server)
    assert len(lines) == 2, server.log()  # once each, not again as "Service Unavailable"
    assert (
        "database trouble (lock timeout): GET /rows/ -> 503: OperationalError: canceling "
        in (lines[0])
    )
    assert "Service Unavailable" not in server.log()
    assert server.get("/rows/").status == 200


def test_a_statement_past_the_statement_timeout_ends_with_a_503(
    serve: Callable[..., FaultServer],
) -> None:
    server = serve(DB_STATEMENT_TIMEOUT="1s")
    assert_503(server.get("/sleep/?s=60", timeout=BOUND), BUSY)
    assert "database trouble (statement timeout): GET /sleep/" in trouble_lines(server)[0]


def test_an_exhausted_pool_answers_503_and_names_the_requests_holding_it(
    cluster: LocalCluster, serve: Callable[..., FaultServer]
) -> None:
    server = serve(DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1", DB_POOL_TIMEOUT="1")
    held: list[Answer] = []
    holder = threading.Thread(target=lambda: held.append(server.get("/hold/?s=6")))
    holder.start()
    try:
        wait_for_session(cluster, HOLD_MARK)
        answer = server.get("/rows/", timeout=BOUND)
    finally:
        holder.join(timeout=BOUND)
    assert_503(answer, BUSY)
    assert held[0].status == 200
    (line,) = trouble_lines(server)
    assert "database trouble (no pooled connection): GET /rows/ -> 503" in line
    assert (
        "all 1 connections of this process's pool (database 'default') were in use for 1 s, "
        "held by GET /hold/ for " in line
    )
    assert "raise DB_POOL_MAX_SIZE if the server has room" in line


def test_terminated_sessions_are_replaced_and_a_request_cut_off_answers_503(
    cluster: LocalCluster, serve: Callable[..., FaultServer]
) -> None:
    server = serve(DB_POOL_MIN_SIZE="2", DB_POOL_MAX_SIZE="2")
    assert terminate_app_sessions(cluster) >= 1
    # Idle pooled connections are checked before use: the next request gets a new one.
    assert server.get("/rows/").status == 200
    cut: list[Answer] = []
    sleeper = threading.Thread(target=lambda: cut.append(server.get("/sleep/?s=20")))
    sleeper.start()
    try:
        wait_for_session(cluster, "pg_sleep")
        terminate_app_sessions(cluster)
    finally:
        sleeper.join(timeout=BOUND)
    assert_503(cut[0], UNAVAILABLE)
    assert "database trouble (server shutting down): GET /sleep/" in trouble_lines(server)[0]
    assert server.get("/rows/").status == 200


def test_a_read_only_database_answers_503_to_writes(
    cluster: LocalCluster, serve: Callable[..., FaultServer]
) -> None:
    server = serve()
    role_sql = "ALTER ROLE choregarden IN DATABASE faults {} default_transaction_read_only"
    cluster_superuser_sql(cluster, role_sql.format("SET") + " = on")
    try:
        terminate_app_sessions(cluster)  # new sessions: read-only, as on a standby
        assert_503(server.get("/write/?note=refused", timeout=BOUND), READ_ONLY)
        assert server.get("/rows/").body == "rows 0"
    finally:
        cluster_superuser_sql(cluster, role_sql.format("RESET"))
    assert "database trouble (read-only database): GET /write/" in trouble_lines(server)[0]


def test_bugs_stay_500s(serve: Callable[..., FaultServer]) -> None:
    server = serve()
    assert server.get("/boom/").status == 500
    assert server.get("/duplicate/").status == 500  # an IntegrityError is ours to fix
    assert trouble_lines(server) == []


def test_an_outage_answers_503_then_the_first_request_after_it_succeeds_at_once(
    cluster: LocalCluster, serve: Callable[..., FaultServer]
) -> None:
    server = serve(DB_POOL_MIN_SIZE="2", DB_POOL_MAX_SIZE="4", DB_POOL_TIMEOUT="2")
    written = [server.get(f"/write/?note=before-{i}").status for i in range(5)]
    assert written == [200] * 5
    cluster.stop()
    outage = time.monotonic()
    during: list[Answer] = []
    while time.monotonic() - outage < 20:
        during.append(server.get(f"/write/?note=during-{len(during)}", timeout=BOUND))
        time.sleep(0.5)
    cluster.start()
    back = time.monotonic()
    while (answer := server.get("/rows/", timeout=BOUND)).status != 200:
        during.append(answer)
        assert time.monotonic() - back < BOUND
    recovered = time.monotonic() - back
    print(f"RECOVERED {recovered:.2f} after {len(during)}")
    assert recovered < RECOVERY_BOUND, f"first success {recovered:.1f} s after the restart"
    for answer in during:
        assert_503(answer, UNAVAILABLE)
    # Nothing lost, nothing half-done: every acknowledged write is there, no refused one.
    notes = {row[0] for row in owner_sql(cluster, "SELECT note FROM fault_rows")}
    assert notes == {f"before-{i}" for i in range(5)}
    log = server.log()
    assert "Connection refused" in log  # the pool timeout names the real cause
    assert "DB_POOL_MAX_SIZE" not in log  # and sends no one to resize the pool
    assert "Internal Server Error" not in log
    # One line per failed request, not the pool's warning per connect attempt besides.
    assert len(trouble_lines(server)) == len(during)
    assert "error connecting" not in log
    # Requests that came while the server was known down did not wait for the pool.
    assert "answered without waiting for the pool" in log


def test_handler500_turns_the_databases_trouble_in_a_middleware_into_a_503() -> None:
    request = RequestFactory().get("/admin/")
    try:
        raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    except psycopg.Error:
        response = server_error(request)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    try:
        raise ValueError("a bug")
    except ValueError:
        assert server_error(request).status_code == 500
