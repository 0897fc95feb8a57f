"""Helpers for schema tests: raw SQL that must fail with a given SQLSTATE."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError


def sql(query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """Run one statement on the test database; return its rows (if any)."""
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def rejects(query: str, params: Sequence[Any] | None = None, *, sqlstate: str) -> str:
    """Assert that the statement fails with SQLSTATE; return the server's message."""
    with pytest.raises(DatabaseError) as excinfo, transaction.atomic():
        sql(query, params)
    cause = excinfo.value.__cause__
    assert isinstance(cause, psycopg.Error), excinfo.value
    assert cause.sqlstate == sqlstate, f"{cause.sqlstate}: {cause}"
    return str(cause)


UNIQUE = "23505"
CHECK = "23514"
NOT_NULL = "23502"
FOREIGN_KEY = "23503"
INTEGRITY_VIOLATION = "23000"  # raised by the deferred has-an-owner triggers
