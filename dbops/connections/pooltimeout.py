"""Say truthfully why the pool gave no connection: every one in use, or the server unreachable.

psycopg_pool raises the same PoolTimeout whether its connections were all checked out by
slow requests (raise the pool size or find what holds them) or it could not open one
(the server is down or refuses: no pool setting helps). The backend tells the two apart
with what it tracks: the connections this process's requests hold (and which requests),
and the pool's last failed connect.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any, ClassVar

import psycopg

# "GET /admin/..." while a request runs (set by dbops.web.dbtrouble's middleware).
current_request: ContextVar[str] = ContextVar("dbops_current_request", default="")
MAX_HOLDERS_SHOWN = 5
# A connect failed this recently and the pool has no connection at all: the server is down.
KNOWN_DOWN_SECONDS = 1.0


class ConnectFailures:
    """The last failed connect of one pool, forgotten at the next successful one."""

    def __init__(self) -> None:
        self.last: tuple[float, psycopg.Error] | None = None

    def record(self, err: psycopg.Error) -> None:
        self.last = (time.monotonic(), err)

    def clear(self) -> None:
        self.last = None

    def recent(self, within: float) -> psycopg.Error | None:
        last = self.last
        if last is None or time.monotonic() - last[0] > within:
            return None
        return last[1]


class RecordingConnection(psycopg.Connection):  # type: ignore[type-arg]
    """A pool's connection class that remembers why its last connect failed."""

    failures: ClassVar[ConnectFailures]

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            conn = super().connect(conninfo, **kwargs)
        except psycopg.Error as err:
            cls.failures.record(err)
            raise
        cls.failures.clear()
        return conn


class Checkouts:
    """Which request holds each pooled connection of this process, and since when.

    A plain dict, no lock: each entry is written and removed by the thread that holds
    the connection, and a dict's single operations are atomic.
    """

    def __init__(self) -> None:
        self._held: dict[int, tuple[int, str, float]] = {}

    def take(self, conn: Any) -> None:
        pool = id(getattr(conn, "_pool", None))
        self._held[id(conn)] = (pool, current_request.get(), time.monotonic())

    def release(self, conn: Any) -> None:
        self._held.pop(id(conn), None)

    def held(self, pool: Any) -> list[tuple[str, float]]:
        """Return (request, seconds held) for the pool's checked-out connections, longest first."""
        now = time.monotonic()
        found = [
            (label or "work outside a request", now - since)
            for owner, label, since in list(self._held.values())
            if owner == id(pool)
        ]
        return sorted(found, key=lambda item: -item[1])


checkouts = Checkouts()


def known_down(pool: Any) -> psycopg.OperationalError | None:
    """Return the error to raise at once, without waiting for the pool, if the server is down.

    Down: the pool's last connect failed under KNOWN_DOWN_SECONDS ago, and it has no
    connection, idle or checked out, that could come back. Waiting DB_POOL_TIMEOUT would
    hold the request, and a worker thread, for nothing. The pool is told to connect again
    (pool.check(), a no-op while an attempt is under way), so once the server is back the
    connection is there within about a second.
    """
    from dbops.connections.errors import cause

    last = pool.connection_class.failures.last
    if last is None:
        return None
    age = time.monotonic() - last[0]
    if age > KNOWN_DOWN_SECONDS or pool.get_stats().get("pool_available", 0):
        return None
    if checkouts.held(pool):
        return None
    # Have the pool connect again now, unless an attempt is under way: the next request
    # finds the connection as soon as the server is back.
    pool.check()
    return psycopg.OperationalError(
        f"connection failed: {cause(last[1])} (the pool's last connect, {age:.1f} s ago; "
        "answered without waiting for the pool)"
    )


def pool_timeout(alias: str, pool: Any, err: Exception) -> psycopg.Error:
    """Return the error to raise for a PoolTimeout: exhausted pool, or the connect failure."""
    from psycopg_pool import PoolTimeout

    held = checkouts.held(pool)
    if len(held) >= pool.max_size:
        waiting = pool.get_stats().get("requests_waiting", 0)
        holders = ", ".join(f"{label} for {age:.1f} s" for label, age in held[:MAX_HOLDERS_SHOWN])
        more = f" and {len(held) - MAX_HOLDERS_SHOWN} more" if len(held) > MAX_HOLDERS_SHOWN else ""
        return PoolTimeout(
            f"{err}: all {pool.max_size} connections of this process's pool (database "
            f"{alias!r}) were in use for {pool.timeout:g} s, held by {holders}{more}; "
            f"{waiting} more request(s) waiting. Look for slow requests or long transactions "
            "holding them (`manage.py dbhealth`); raise DB_POOL_MAX_SIZE if the server has "
            "room for more connections, or DB_POOL_TIMEOUT to wait longer."
        )
    # Connections were free to open, yet none came: the pool could not connect. Its own
    # attempts say why; a stale or missing reason is asked of the server once, now.
    failed = pool.connection_class.failures.recent(within=pool.timeout + pool.reconnect_timeout)
    if failed is not None:
        return psycopg.OperationalError(str(failed))
    try:
        pool.connection_class.connect(pool.conninfo, **pool.kwargs).close()
    except psycopg.Error as probe:
        return probe
    return PoolTimeout(
        f"{err}: the pool (database {alias!r}, {len(held)} of {pool.max_size} connections "
        "in use) could not hand out a working connection in time, though the server accepts "
        "one now: its idle connections were broken and being replaced (after a restart or "
        "terminated sessions), or the server was slow to accept connections."
    )
