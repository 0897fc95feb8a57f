"""Is the read replica fit to serve reads now? Its health, cached per process, and failures.

The router (dbops.connections.routers) sends reporting reads to the replica only while it
is a standby, reachable, and no more than DB_REPLICA_MAX_LAG behind; otherwise they go to
the primary, with one log line when that starts and one when it ends. The state is checked
at most every DB_REPLICA_CHECK_INTERVAL, with one query on the replica's own connection.
A replica that fails mid-query is marked down at once (ReplicaErrorWrapper), and the
request noted, so that the middleware can run a read-only request again on the primary.
"""

from __future__ import annotations

import logging
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.utils import DatabaseErrorWrapper

from dbops.connections.config import REPLICA_KEY

logger = logging.getLogger("dbops.replica")

REPLICA = "replica"

# On a standby, how far behind what it serves is: 0 when everything received has been
# replayed (an idle primary sends nothing, which is no lag), else the age of the last
# replayed transaction. `devdb status` and the health checks use it too.
REPLAY_DELAY = (
    "CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0"
    " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"
)
LAG_QUERY = f"SELECT pg_is_in_recovery(), {REPLAY_DELAY}"


class ReplicaIsPrimary(ImproperlyConfigured):
    """The replica's URL points at a server that is not in recovery (it accepts writes)."""


def not_a_standby(setting: str, host: Any, port: Any) -> ReplicaIsPrimary:
    return ReplicaIsPrimary(
        f"{setting or 'The replica database'} points at a primary ({host}:{port} accepts "
        "writes: pg_is_in_recovery() is false): reporting reads must go to a standby. Set it "
        "to the read replica's address (on RDS, the replica's endpoint), or unset it to "
        "read from the primary."
    )


def require_standby(connection: Any) -> None:
    """Refuse a new replica connection to a writable server (init_connection_state)."""
    raw = connection.connection
    (in_recovery,) = raw.execute("SELECT pg_is_in_recovery()").fetchone()
    if not in_recovery:
        info = raw.info
        raise not_a_standby(
            str(connection.settings_dict.get("SETTING") or ""), info.host, info.port
        )


def verify_at_start(alias: str = REPLICA) -> tuple[bool, str] | None:
    """Connect to the replica once, as a server starts: (refused, message), or None if fine.

    A replica URL that points at the primary is refused (the server does not start); an
    unreachable replica is only reported: reads go to the primary until it is back.
    """
    from django.db import DatabaseError

    connection = connections[alias]
    try:
        connection.ensure_connection()
    except ReplicaIsPrimary as err:
        return True, str(err)
    except (DatabaseError, ImproperlyConfigured) as err:
        return False, (
            f"The read replica is unavailable ({_one_line(err)}): reporting reads go to the "
            "primary until it is back."
        )
    finally:
        connection.close()
    return None


@dataclass
class Verdict:
    usable: bool
    reason: str
    checked: float


_verdicts: dict[str, Verdict] = {}
_lock = threading.Lock()
# Set for the duration of one request (ReplicaRoutingMiddleware): a replica query failed.
_failed_in_request: ContextVar[list[str] | None] = ContextVar("dbops_replica_failed", default=None)


def _seconds(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def _fresh(alias: str) -> Verdict | None:
    verdict = _verdicts.get(alias)
    interval = _seconds("DB_REPLICA_CHECK_INTERVAL", 1)
    return verdict if verdict and time.monotonic() - verdict.checked < interval else None


def usable(alias: str = REPLICA) -> bool:
    """Tell whether reads may go to `alias` now (cached for DB_REPLICA_CHECK_INTERVAL)."""
    verdict = _fresh(alias)
    if verdict is not None:
        return verdict.usable
    with _lock:  # one thread checks; the others waiting for it take its verdict
        verdict = _fresh(alias)
        if verdict is not None:
            return verdict.usable
        ok, reason = _check(alias)
        _record(alias, ok, reason)
        return ok


def _check(alias: str) -> tuple[bool, str]:
    from django.db import DatabaseError

    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(LAG_QUERY)
            in_recovery, lag = cursor.fetchone()
    except (DatabaseError, ImproperlyConfigured) as err:
        connections[alias].close()
        return False, f"unavailable ({_one_line(err)})"
    if not in_recovery:
        return False, "not a standby (pg_is_in_recovery() is false)"
    max_lag = _seconds("DB_REPLICA_MAX_LAG", 10)
    if lag is not None and float(lag) > max_lag:
        return False, f"{float(lag):.1f}s behind the primary (DB_REPLICA_MAX_LAG is {max_lag:g}s)"
    return True, "streaming"


def _one_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _record(alias: str, ok: bool, reason: str, *, log: bool = True) -> None:
    before = _verdicts.get(alias)
    _verdicts[alias] = Verdict(ok, reason, time.monotonic())
    if not log or (before is not None and before.usable == ok and before.reason == reason):
        return
    if ok:
        if before is not None:
            logger.warning("Read replica %r is back: reporting reads go to it again.", alias)
    else:
        logger.warning(
            "Read replica %r is %s: reporting reads fall back to the primary.", alias, reason
        )


def mark_failed(alias: str, err: BaseException | None) -> None:
    """A query or connect on the replica failed: down until the next check says otherwise.

    Logged in a request only, where reads then fall back to the primary: a command that
    asked for the replica itself (`dbhealth --database replica`) reports the error.
    """
    failed = _failed_in_request.get()
    _record(alias, False, f"failing ({_one_line(err) if err else 'error'})", log=failed is not None)
    if failed is not None and alias not in failed:
        failed.append(alias)


def forget() -> None:
    """Forget every verdict (tests; a changed setting)."""
    _verdicts.clear()


def track_request() -> Any:
    """Start noting replica failures for this request; returns the token to reset."""
    return _failed_in_request.set([])


def failed_in_request() -> list[str]:
    return list(_failed_in_request.get() or [])


def end_request(token: Any) -> None:
    _failed_in_request.reset(token)


class ReplicaErrorWrapper(DatabaseErrorWrapper):
    """Django's error wrapper, which also marks a replica down when one of its calls fails.

    Every connection has one (the backend's); only a failure reads whether it is a replica's.
    """

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        if (
            exc_type is not None
            and self.wrapper.settings_dict.get(REPLICA_KEY)
            and _is_connection_failure(exc_value)
        ):
            mark_failed(self.wrapper.alias, exc_value)
        super().__exit__(exc_type, exc_value, traceback)


def _is_connection_failure(err: Any) -> bool:
    """A lost or refused connection, a server shutting down: not a bad query."""
    import psycopg

    cause = err if isinstance(err, psycopg.Error) else getattr(err, "__cause__", None)
    if isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    sqlstate = getattr(cause, "sqlstate", None) or ""
    # 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot connect now.
    return sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03")
