"""Fixtures of the engine library's tests: a schema of their own on the real test server."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbops.connections.databases import drop_database
from tests.helpers import create_database

_schemas = itertools.count()

Connect = Callable[[], psycopg.Connection[Any]]


@pytest.fixture(scope="session")
def library_database(pg_server: Any) -> Iterator[str]:
    """One database for the library's tests; each test works in a schema of its own."""
    name = create_database(pg_server, f"sqlmigrations_lib_{os.getpid()}")
    yield name
    drop_database(pg_server.conninfo(), name)


@pytest.fixture
def connect(pg_server: Any, library_database: str) -> Iterator[Connect]:
    """Open owner connections (autocommit) whose search_path is a fresh, empty schema."""
    schema = f"t{next(_schemas)}"
    opened: list[psycopg.Connection[Any]] = []

    def open_connection() -> psycopg.Connection[Any]:
        conn = psycopg.connect(**pg_server.conninfo(library_database), autocommit=True)
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        opened.append(conn)
        return conn

    first = open_connection()
    first.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield open_connection
    for conn in opened:
        conn.close()
    with psycopg.connect(**pg_server.conninfo(library_database), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def conn(connect: Connect) -> psycopg.Connection[Any]:
    """An owner connection (autocommit) in the test's own schema."""
    return connect()


@pytest.fixture
def schema(conn: psycopg.Connection[Any]) -> str:
    """The name of the test's own schema."""
    row = conn.execute("SELECT current_schema()").fetchone()
    assert row is not None
    return str(row[0])
