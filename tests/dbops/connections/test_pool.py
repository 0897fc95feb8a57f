"""Django's native psycopg pool (D5): never more than its maximum, and a clear timeout."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from django.db import connections
from django.db.utils import OperationalError

from dbops.models import MigrationTest
from tests.helpers import direct_settings

# Worker threads share the default alias's pool; a transactional test lets them see the
# test database as it is committed.
pytestmark = pytest.mark.django_db(transaction=True)
ALIAS = "default"


@pytest.fixture
def pooled(pg_server: Any) -> Iterator[Any]:
    """Give the default alias a pool of the given sizes for one test, then restore it.

    Directly to the server: Django's own pool is never used behind a pooler (DB_POOLER
    refuses DB_POOL), so under TEST_DB_POOLER this test's alias bypasses PgBouncer.
    """
    connection = connections[ALIAS]
    config = connection.settings_dict  # the dict Django reads: changed in place
    saved = dict(config)
    application_name = f"pooltest-{os.getpid()}"

    def reset_pool() -> None:
        connection.close()
        connection.close_pool()

    def make(**pool: Any) -> str:
        reset_pool()
        direct = direct_settings(saved, pg_server.conninfo(saved["NAME"], role="app"))
        direct["OPTIONS"] = {
            **direct["OPTIONS"],
            "application_name": application_name,
            "pool": pool,
        }
        config.clear()
        config.update(direct)
        return application_name

    yield make
    reset_pool()
    config.clear()
    config.update(saved)


def backends(pg_server: Any, application_name: str) -> int:
    """Count the server's sessions of the pool (seen by the same role, so none is hidden)."""
    config = connections["default"].settings_dict
    role = "app" if config["USER"] == pg_server.app_user else "owner"
    with psycopg.connect(**pg_server.conninfo(config["NAME"], role=role)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        ).fetchone()
        return int(row[0])


def read_rows(_: int) -> int:
    """One request: borrow a connection, read a few rows, give it back."""
    connection = connections[ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM migration_test, pg_sleep(0.02) LIMIT 5")
            return len(cursor.fetchall())
    finally:
        connection.close()  # with a pool: back to the pool, not closed


def test_the_pool_never_opens_more_than_its_maximum(pooled: Any, pg_server: Any) -> None:
    application_name = pooled(min_size=1, max_size=3, timeout=30)
    # Transactional tests start from empty tables: give the requests rows to read.
    MigrationTest.objects.bulk_create(MigrationTest(name=f"row {i}") for i in range(5))
    connections[ALIAS].close()
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, backends(pg_server, application_name))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=12) as workers:
            results = list(workers.map(read_rows, range(120)))
    finally:
        done.set()
        sampler.join()
    assert results == [5] * 120
    assert backends(pg_server, application_name) <= 3
    assert 2 <= peak <= 3  # it grew under load, and stopped at max_size
    stats = connections[ALIAS].pool.get_stats()
    assert stats["pool_max"] == 3
    assert stats["requests_num"] >= 120
    connections[ALIAS].close_pool()
    # A server process leaves pg_stat_activity a moment after its client said goodbye.
    left = backends(pg_server, application_name)
    for _ in range(100):
        if not left:
            break
        time.sleep(0.1)
        left = backends(pg_server, application_name)
    assert left == 0


def test_an_exhausted_pool_fails_with_a_clear_error(pooled: Any) -> None:
    pooled(min_size=1, max_size=1, timeout=0.5)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        connection = connections[ALIAS]
        connection.ensure_connection()
        holding.set()
        release.wait()
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        with pytest.raises(OperationalError) as raised:
            connections[ALIAS].ensure_connection()
        message = str(raised.value)
        assert "couldn't get a connection after 0.50 sec" in message
        assert "all 1 connections of this process's pool (database 'default')" in message
        assert "DB_POOL_MAX_SIZE" in message and "DB_POOL_TIMEOUT" in message
    finally:
        release.set()
        holder.join()
    # Once the connection is back, the next request gets it.
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
