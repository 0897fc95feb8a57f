"""Bounded lock waits for migration files: lock_timeout, retries, blockers named (issue 19).

An `ALTER TABLE` that waits for its lock behind one long transaction queues every later
query on that table behind it: the application stalls until the migration gets its lock.
So each try of a file (or, outside a transaction, of a statement) waits at most
`lock_timeout`; on a lock timeout (SQLSTATE 55P03) its transaction is gone, so no lock is
held, and it is tried again after a pause that doubles each time (with jitter, capped).
While a try runs, a watcher thread on a connection of its own reads
`pg_blocking_pids(<our backend>)`: the blockers can only be read while we wait, not after
the timeout. It names them (pid, application_name, user, state, transaction age and the
start of their query with every literal masked: never a parameter's value) and, when
asked, ends those that sit idle in a transaction.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

log = logging.getLogger("sqlmigrations.locks")

T = TypeVar("T")

LOCK_NOT_AVAILABLE = "55P03"

UNITS_MS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000}
_DURATION = re.compile(r"\s*(\d+)\s*(ms|s|min|h)?\s*")
# Statements that build or drop an index CONCURRENTLY: their SHARE UPDATE EXCLUSIVE lock
# blocks neither reads nor writes, and a build cut short leaves an invalid index behind,
# which a retry would not repair. They run without lock_timeout and are not retried.
_CONCURRENTLY = re.compile(
    r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(?:CREATE|DROP|REINDEX)\b[^;]*?\bCONCURRENTLY\b",
    re.IGNORECASE | re.DOTALL,
)
QUERY_CHARS = 60


def parse_duration(raw: str, *, what: str, example: str = "5s", off: str = "it") -> int:
    """Parse "5s", "500ms", "2min" or "0" (off) into milliseconds, as PostgreSQL reads them.

    `what` names the setting or file line in the error (ValueError) so it can be fixed;
    `example` is the first example it gives, `off` what 0 turns off.
    """
    match = _DURATION.fullmatch(str(raw))
    if not match:
        raise ValueError(
            f"{what}={raw!r} is not a duration: use a whole number with a unit, e.g. "
            f"{example}, 500ms or 2min (0 turns {off} off)"
        )
    number, unit = int(match.group(1)), match.group(2)
    if unit is None and number != 0:
        raise ValueError(
            f"{what}={raw!r} has no unit: write {number}s or {number}ms, whichever is meant "
            "(0 turns it off)"
        )
    return number * UNITS_MS[unit or "ms"]


def parse_count(raw: str, *, what: str) -> int:
    """Parse a whole number of retries (0 or more)."""
    text = str(raw).strip()
    if not text.isdigit():
        raise ValueError(f"{what}={raw!r} is not a whole number of retries, e.g. 5 (0: no retry)")
    return int(text)


@dataclass(frozen=True)
class LockLimits:
    """How long one try may wait for a lock, how often a file is tried, and the options."""

    lock_timeout_ms: int = 5000
    statement_timeout_ms: int = 0
    retries: int = 5
    backoff_ms: int = 500
    backoff_max_ms: int = 10_000
    # --wait-for-blockers N: keep trying, past `retries`, until N seconds after the first try.
    wait_for_blockers_s: float | None = None
    # --terminate-blockers-older-than S: end blockers idle in a transaction for S seconds.
    terminate_idle_after_s: float | None = None

    def for_file(self, config: Any) -> LockLimits:
        """Apply a file's `# choregarden:` directive (lib.scriptconfig) over these limits."""
        changes = {
            name: getattr(config, name, None)
            for name in ("lock_timeout_ms", "statement_timeout_ms", "retries")
        }
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def pause(self, tries: int) -> float:
        """Seconds to wait before the next try: doubling from `backoff_ms`, capped, with
        jitter so that several migrators (or retrying clients) do not line up again."""
        ceiling = min(self.backoff_max_ms, self.backoff_ms * 2 ** (tries - 1)) / 1000
        return random.uniform(ceiling / 2, ceiling)

    def may_retry(self, tries: int, started: float) -> bool:
        """Tell whether a file that timed out `tries` times, first at `started`, goes on."""
        if tries <= self.retries:
            return True
        if self.wait_for_blockers_s is None:
            return False
        return time.monotonic() - started < self.wait_for_blockers_s


def _masked(query: str) -> str:
    """Return the start of a query with its literals masked: a value may be a secret."""
    text = re.sub(r"\$(\w*)\$.*?(?:\$\1\$|\Z)", "$?$", query, flags=re.DOTALL)
    text = re.sub(r"(?:(?<!\w)(?:[EeBbXx]|[Uu]&))?'(?:[^']|'')*(?:'|\Z)", "?", text)
    text = re.sub(r"(?<![\w$])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b", "?", text)
    text = " ".join(text.split())
    return text if len(text) <= QUERY_CHARS else text[: QUERY_CHARS - 1] + "…"


@dataclass(frozen=True)
class Blocker:
    """A session that held a lock this migration waited for."""

    pid: int
    application_name: str
    user: str
    state: str
    xact_seconds: float | None
    idle_seconds: float | None
    query: str  # masked: see _masked

    def describe(self) -> str:
        age = (
            "no transaction"
            if self.xact_seconds is None
            else f"in a transaction for {self.xact_seconds:.1f}s"
        )
        return (
            f"pid {self.pid} (application_name {self.application_name!r}, user "
            f"{self.user or '?'}, {self.state or 'unknown state'}, {age}): {self.query}"
        )


_BLOCKERS = """
SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
       coalesce(a.state, ''), extract(epoch FROM now() - a.xact_start)::float8,
       extract(epoch FROM now() - a.state_change)::float8, coalesce(left(a.query, 2000), ''),
       (SELECT l.mode || ' on ' || coalesce(l.relation::regclass::text, l.locktype)
          FROM pg_locks l WHERE l.pid = %(pid)s AND NOT l.granted LIMIT 1)
  FROM pg_stat_activity a
 WHERE a.pid = ANY (pg_blocking_pids(%(pid)s))
 ORDER BY a.pid
"""

# Ends only sessions that still block us, idle in a transaction for S seconds: re-checked
# in the same statement, so a session that moved on since the last look is left alone.
_TERMINATE = """
SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
       extract(epoch FROM now() - a.state_change)::float8, pg_terminate_backend(a.pid)
  FROM pg_stat_activity a
 WHERE a.pid = ANY (pg_blocking_pids(%(pid)s))
   AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
   AND now() - a.state_change >= make_interval(secs => %(after)s)
"""


class Watcher:
    """Read, from a connection of its own, who blocks a backend while a try runs.

    It connects only once a try has run for `delay` seconds, so a file that does not wait
    costs no connection; then it polls every `interval` seconds and keeps the last
    non-empty set of blockers.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        pid: int,
        *,
        delay: float,
        interval: float = 0.1,
        terminate_after: float | None = None,
    ) -> None:
        self._connect, self._pid = connect, pid
        self._delay, self._interval, self._terminate_after = delay, interval, terminate_after
        self._stop = threading.Event()
        self.blockers: list[Blocker] = []
        self.waiting_for = ""
        self.terminated: list[str] = []
        self.error = ""
        self._thread = threading.Thread(target=self._run, name="sqlmigrations-locks", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        if self._stop.wait(self._delay):
            return
        try:
            conn = self._connect()
        except Exception as error:  # noqa: BLE001 - naming blockers is best effort
            self.error = f"could not connect to read the blockers ({type(error).__name__})"
            return
        try:
            while not self._stop.is_set():
                self._poll(conn)
                self._stop.wait(self._interval)
        except Exception as error:  # noqa: BLE001 - naming blockers is best effort
            self.error = f"could not read the blockers ({type(error).__name__})"
        finally:
            conn.close()

    def _poll(self, conn: Any) -> None:
        rows = conn.execute(_BLOCKERS, {"pid": self._pid}).fetchall()
        if rows:
            self.blockers = [Blocker(*row[:6], _masked(row[6])) for row in rows]  # type: ignore[arg-type]
            self.waiting_for = rows[0][7] or self.waiting_for
        if self._terminate_after is not None and rows:
            params = {"pid": self._pid, "after": self._terminate_after}
            for pid, app, user, idle, done in conn.execute(_TERMINATE, params).fetchall():
                self.terminated.append(
                    f"pid {pid} (application_name {app!r}, user {user or '?'}, idle in a "
                    f"transaction for {idle:.1f}s)" + ("" if done else ": could not end it")
                )


def sqlstate(error: BaseException | None) -> str | None:
    """Return the SQLSTATE of a psycopg error, also through Django's wrapper exceptions."""
    while error is not None:
        diag = getattr(error, "diag", None)
        if diag is not None:
            return getattr(diag, "sqlstate", None)
        error = error.__cause__
    return None


@dataclass
class GaveUp(Exception):
    """The tries of one file (or statement) ran out, each ending in a lock timeout."""

    error: BaseException
    tries: int
    seconds: float
    limits: LockLimits
    blockers: list[Blocker] = field(default_factory=list)
    waiting_for: str = ""

    def describe(self) -> str:
        """Say what waited, for how long, and who held the lock: the message's middle."""
        lines = [
            f"it waited for a lock longer than lock_timeout ({self.limits.lock_timeout_ms}ms) "
            f"{self.tries} time{'s' if self.tries != 1 else ''} in {self.seconds:.1f}s"
            + (f", for {self.waiting_for}" if self.waiting_for else "")
        ]
        if self.blockers:
            lines.append("blocked by:")
            lines += [f"  {b.describe()}" for b in self.blockers]
        else:
            lines.append("the blocking sessions could not be read")
        return "\n".join(lines)


def _log(message: str) -> None:
    log.warning("%s", message)


@dataclass
class LockGuard:
    """What a file's tries need: the limits, our backend and how to watch it, and where to
    say that a try timed out."""

    limits: LockLimits
    pid: int | None = None
    connect: Callable[[], Any] | None = None
    # The file runs inside a transaction opened by the caller: each try takes a savepoint.
    in_transaction: bool = False
    say: Callable[[str], None] = _log

    def for_file(self, config: Any) -> LockGuard:
        return replace(self, limits=self.limits.for_file(config))


def is_concurrent(statement: str) -> bool:
    """Tell whether a statement builds, drops or rebuilds an index CONCURRENTLY."""
    return _CONCURRENTLY.match(statement) is not None


def with_retries(guard: LockGuard, what: str, attempt: Callable[[], T]) -> T:
    """Run `attempt` until it does not time out waiting for a lock, or the tries run out.

    `attempt` must leave no lock behind when it fails (its transaction or savepoint rolled
    back). Any other error goes up as it is; the last lock timeout goes up as GaveUp.
    """
    limits = guard.limits
    started = time.monotonic()
    tries = 0
    while True:
        tries += 1
        watcher = None
        if guard.connect is not None and guard.pid is not None and limits.lock_timeout_ms:
            watcher = Watcher(
                guard.connect,
                guard.pid,
                delay=min(0.2, limits.lock_timeout_ms / 4000),
                terminate_after=limits.terminate_idle_after_s,
            ).start()
        try:
            result = attempt()
        except Exception as error:
            _finish(watcher, guard, what)
            if sqlstate(error) != LOCK_NOT_AVAILABLE:
                raise
            blockers = watcher.blockers if watcher is not None else []
            waiting_for = watcher.waiting_for if watcher is not None else ""
            if not limits.may_retry(tries, started):
                raise GaveUp(
                    error, tries, time.monotonic() - started, limits, blockers, waiting_for
                ) from error
            pause = limits.pause(tries)
            named = "; ".join(b.describe() for b in blockers) or (
                watcher.error if watcher is not None and watcher.error else "not read"
            )
            guard.say(
                f"  {what}: lock_timeout ({limits.lock_timeout_ms}ms) reached"
                + (f" waiting for {waiting_for}" if waiting_for else "")
                + f", try {tries}; rolled back, no lock held; blocked by: {named}; "
                f"trying again in {pause:.1f}s"
            )
            time.sleep(pause)
            continue
        finally:
            if watcher is not None:
                watcher.stop()  # also on KeyboardInterrupt; stopping twice is harmless
        _finish(watcher, guard, what)
        return result


def _finish(watcher: Watcher | None, guard: LockGuard, what: str) -> None:
    """Stop the watcher of a try and say which blocking sessions it ended, once."""
    if watcher is None:
        return
    watcher.stop()
    for ended in watcher.terminated:
        guard.say(f"  {what}: ended a blocking session idle in a transaction: {ended}")
    watcher.terminated = []
