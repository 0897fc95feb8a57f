"""Dropping a database as the owner role while another role's session is still in it."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbops.connections.databases import drop_database
from tests.helpers import create_database

# An autovacuum worker is such a session: the owner role may not end it, and PostgreSQL
# itself cancels it on a plain DROP DATABASE. A session of the application role stands in.


def exists(pg_server: Any, name: str) -> bool:
    with psycopg.connect(**pg_server.conninfo()) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return row is not None


@pytest.fixture
def database(pg_server: Any) -> Any:
    name = create_database(pg_server, f"dropme_{os.getpid()}_{time.monotonic_ns()}")
    yield name
    drop_database(pg_server.conninfo(), name)


def test_it_waits_out_a_session_that_force_may_not_end(pg_server: Any, database: str) -> None:
    other = psycopg.connect(**pg_server.conninfo(database, role="app"))
    force = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database))
    with (
        psycopg.connect(**pg_server.conninfo(), autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="member of the role"),
    ):
        conn.execute(force)  # what the plain FORCE did: the drop failed
    threading.Timer(1.0, other.close).start()

    drop_database(pg_server.conninfo(), database)

    assert other.closed
    assert not exists(pg_server, database)


def test_a_session_that_stays_is_reported_after_the_timeout(pg_server: Any, database: str) -> None:
    with (
        psycopg.connect(**pg_server.conninfo(database, role="app")),
        pytest.raises(psycopg.errors.ObjectInUse, match="is being accessed by other users"),
    ):
        drop_database(pg_server.conninfo(), database, timeout=0)
    assert exists(pg_server, database)


def test_a_role_that_does_not_own_it_is_refused_at_once(pg_server: Any, database: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner"):
        drop_database(pg_server.conninfo(role="app"), database)
    assert exists(pg_server, database)
