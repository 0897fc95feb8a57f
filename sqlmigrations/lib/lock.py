"""The advisory lock that serialises migrators, with Flyway's key for the same table (D3)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

FLYWAY_LOCK_BASE = 0x466C79776179  # "Flyway" in ASCII: 77431708279161


def java_string_hash(text: str) -> int:
    """Return Java's String.hashCode() of text: over UTF-16 code units, signed 32-bit."""
    data = text.encode("utf-16-be", "surrogatepass")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def lock_key(quoted_table: str) -> int:
    """Return Flyway's key for `"schema"."table"` (PostgreSQLAdvisoryLockTemplate)."""
    return FLYWAY_LOCK_BASE + java_string_hash(quoted_table)


@contextmanager
def advisory_lock(
    cursor: Any,
    key: int,
    *,
    on_wait: Callable[[], None] | None = None,
    poll_seconds: float = 0.1,
) -> Iterator[None]:
    """Hold a session-level advisory lock on key for the duration of the block.

    Session and transaction-level advisory locks on one key exclude each other, so this
    also excludes a Flyway CLI run, which takes pg_try_advisory_xact_lock on the same key.
    """
    waited = False
    while True:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        if cursor.fetchone()[0]:
            break
        if not waited and on_wait is not None:
            on_wait()
        waited = True
        time.sleep(poll_seconds)
    try:
        yield
    finally:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
