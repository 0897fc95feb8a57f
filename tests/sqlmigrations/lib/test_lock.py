"""The migrators' advisory lock: Flyway's key, held for a block, excluding Flyway's own lock."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from sqlmigrations.lib.lock import FLYWAY_LOCK_BASE, advisory_lock, java_string_hash, lock_key
from tests.sqlmigrations.lib.conftest import Connect

# What Flyway 10 takes for "public"."flyway_schema_history" (PostgreSQLAdvisoryLockTemplate).
FLYWAY_LOCK_KEY = 77433833903597


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("hello", 99162322),
        # Java's int arithmetic wraps: this string hashes to Integer.MIN_VALUE.
        ("polygenelubricants", -2147483648),
        # Outside the BMP Java hashes the two UTF-16 code units of the surrogate pair.
        ("\N{GRINNING FACE}", 0xD83D * 31 + 0xDE00),
    ],
)
def test_java_string_hash_is_javas_string_hashcode(text: str, expected: int) -> None:
    assert java_string_hash(text) == expected


def test_lock_key_is_flyways() -> None:
    assert lock_key('"public"."flyway_schema_history"') == FLYWAY_LOCK_KEY
    assert lock_key('"app"."history"') == FLYWAY_LOCK_BASE + java_string_hash('"app"."history"')


def other_session_gets(conn: psycopg.Connection[Any], key: int) -> bool:
    """Whether a second session can take the lock (releasing it at once if it did)."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
    assert row is not None
    if row[0]:
        conn.execute("SELECT pg_advisory_unlock(%s)", [key])
    return bool(row[0])


def test_the_lock_is_held_for_the_block_and_released_after(connect: Connect) -> None:
    mine, other = connect(), connect()
    key = lock_key('"t"."held_for_the_block"')
    with advisory_lock(mine.cursor(), key):
        assert not other_session_gets(other, key)
        # Flyway's CLI takes the transaction-level lock on the same key: it must wait too.
        with other.transaction():
            row = other.execute("SELECT pg_try_advisory_xact_lock(%s)", [key]).fetchone()
            assert row == (False,)
    assert other_session_gets(other, key)


def test_the_lock_is_released_when_the_block_raises(connect: Connect) -> None:
    mine, other = connect(), connect()
    key = lock_key('"t"."released_on_error"')
    with pytest.raises(RuntimeError), advisory_lock(mine.cursor(), key):
        raise RuntimeError("the migration failed")
    assert other_session_gets(other, key)


def test_a_waiter_says_so_once_and_gets_the_lock_when_it_is_released(connect: Connect) -> None:
    holder, waiter = connect(), connect()
    key = lock_key('"t"."waited_for"')
    holder.execute("SELECT pg_advisory_lock(%s)", [key])
    waits: list[float] = []

    def release_later() -> None:
        time.sleep(0.5)
        holder.execute("SELECT pg_advisory_unlock(%s)", [key])

    releaser = threading.Thread(target=release_later)
    started = time.monotonic()
    releaser.start()
    try:
        with advisory_lock(
            waiter.cursor(), key, on_wait=lambda: waits.append(time.monotonic()), poll_seconds=0.05
        ):
            got_it = time.monotonic()
            assert not other_session_gets(holder, key)
    finally:
        releaser.join()
    assert len(waits) == 1
    assert waits[0] - started < 0.4
    assert got_it - started >= 0.5
