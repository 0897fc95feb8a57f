"""Which errors are the database's trouble (503) and which are ours (500), by SQLSTATE class."""

from __future__ import annotations

import psycopg
import pytest
from django.db import utils
from psycopg_pool import PoolTimeout

from dbops.connections.errors import DatabaseUnavailable
from dbops.web.dbtrouble import BUSY, READ_ONLY, UNAVAILABLE, diagnose

ERRORS = sorted(
    (
        cls
        for cls in vars(psycopg.errors).values()
        if isinstance(cls, type) and issubclass(cls, psycopg.Error) and getattr(cls, "sqlstate", "")
    ),
    key=lambda cls: cls.sqlstate,
)
# psycopg's classes for our own mistakes: bad SQL, bad data, a broken rule, a query too big.
OURS = (
    psycopg.ProgrammingError,
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.errors.ProgramLimitExceeded,
)


def as_django_raises(err: psycopg.Error) -> BaseException:
    """Wrap `err` the way Django's wrap_database_errors does (its class, `from` psycopg's)."""
    wrapper = next(
        getattr(utils, base.__name__)
        for base in type(err).__mro__
        if base.__module__ == "psycopg" and hasattr(utils, base.__name__)
    )
    try:
        raise wrapper(str(err)) from err
    except utils.Error as wrapped:
        return wrapped


@pytest.mark.parametrize("cls", [c for c in ERRORS if issubclass(c, OURS)], ids=str)
def test_our_mistakes_stay_500s(cls: type[psycopg.Error]) -> None:
    assert diagnose(as_django_raises(cls("x"))) is None


@pytest.mark.parametrize(
    ("cls", "cause", "text"),
    [
        (psycopg.errors.LockNotAvailable, "lock timeout", BUSY),
        (psycopg.errors.QueryCanceled, "statement timeout", BUSY),
        (psycopg.errors.IdleInTransactionSessionTimeout, "idle-in-transaction timeout", BUSY),
        (psycopg.errors.AdminShutdown, "server shutting down", UNAVAILABLE),
        (psycopg.errors.ReadOnlySqlTransaction, "read-only database", READ_ONLY),
        (psycopg.errors.TooManyConnections, "connection failed", UNAVAILABLE),
        (psycopg.errors.CannotConnectNow, "connection failed", UNAVAILABLE),
        (psycopg.errors.DeadlockDetected, "connection failed", UNAVAILABLE),
    ],
)
def test_the_databases_state_is_a_503(cls: type[psycopg.Error], cause: str, text: str) -> None:
    assert diagnose(as_django_raises(cls("x"))) == (cause, text)


def test_no_connection_is_busy_when_the_pool_timed_out_else_unavailable() -> None:
    def unavailable_from(err: Exception) -> DatabaseUnavailable:
        try:
            raise DatabaseUnavailable("cannot connect") from err
        except DatabaseUnavailable as raised:
            return raised

    assert diagnose(unavailable_from(PoolTimeout("all in use"))) == ("no pooled connection", BUSY)
    refused = unavailable_from(psycopg.OperationalError("Connection refused"))
    assert diagnose(refused) == ("connection failed", UNAVAILABLE)
    assert diagnose(DatabaseUnavailable("no database is configured")) == (
        "connection failed",
        UNAVAILABLE,
    )


def test_an_error_raised_while_handling_one_is_not_the_databases() -> None:
    try:
        try:
            raise psycopg.errors.AdminShutdown("x")
        except psycopg.Error:
            raise ValueError("a bug in an except block") from None
    except ValueError as bug:
        assert diagnose(bug) is None
