"""Write the V12 rollups from the source tables, one day per transaction.

What a day is. A household's and a member's day is a date of the household's time zone
(`completed_at AT TIME ZONE households.timezone`, `due_at` likewise); the service's day is a
UTC date. Day D's transaction brings the household and member rows of local day D and the
service row of UTC day D level with the source: rows no longer there are deleted, new ones
inserted, changed ones updated, equal ones left alone (their refreshed_at is when their
figures last changed); the service row is always written (its refreshed_at is when the day
was last computed). A local day D lies within UTC [D - 14h, D + 1 + 12h) in every time zone;
that range prefilters `completed_at` and `due_at` (partition pruning).

The figures. Completions and points: completions of that day. Assignments due: due that
day, cancelled ones excepted. Done on time: status done, and done no later than due_at (the
status changed to done before the due time, or a completion linked to it was made in the
LINKED_WINDOW before the due time). Overdue: due that day, past due now, status open or
missed. Active members: members with a completion that day. Active users: profiles with a
completion that day or last seen (last_seen_at) that day; last_seen_at keeps only the
latest sign-in, so a day keeps counting a profile seen again later until that day is
computed again (`--since`, `--full`). New profiles: profiles created that day (soft-deleted
ones too). Notifications sent and read: created and read that day.

Which days. The watermark says that every source row recorded (created_at, updated_at,
last_seen_at, read_at) up to it is in the rollups. A refresh computes again the days of the
rows recorded after it (late completions, changed assignments, profiles created or seen,
notifications created or read), every day after `through_day` up to tomorrow (UTC; today in
the time zones ahead of it), with `since` every day from it, with `full` every day from the
first data. A day computed after its last change (its service row's refreshed_at, less the
margin) and already over everywhere then is skipped, so a run that was interrupted
continues where it stopped. Deleted source rows and moved due times leave no trace to
follow: `--since` or `--full` picks them up.

The watermark's margin. A row's created_at is its transaction's start, and the transaction
may commit later, after a refresh has read past it. So the new watermark is the moment the
run started reading, less ANALYTICS_REFRESH_MARGIN (300 s by default, longer than any write
transaction and than DB_REPLICA_MAX_LAG). The watermark moves only when the last day of a
run is committed; `through_day` (the last day over in every time zone when it was
computed) moves with each day.

Where it reads. On the primary one statement per day reads the source once and writes the
three tables. With a usable read replica (dbops.connections.replicas) the day's rows are
selected there, in one repeatable-read transaction, and written on the primary; their
refreshed_at, and the run's moment, is then the commit time of the last transaction the
standby replayed (pg_last_xact_replay_timestamp()), not the primary's clock: what the
standby had not replayed is after it, so the watermark and the skipped days stay correct
across the two servers. A replica more than DB_REPLICA_MAX_LAG behind is not read, and the
result says so. Each day's transaction takes a transaction-level advisory lock first: two
refreshes at once wait for each other day by day (never writing one day at once; each day
computed from the source when written), and the watermark only moves forward.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from chores.analytics.sql import (
    CHANGED_DAYS,
    FIRST_DAY,
    SAVE_STATE,
    SOURCE,
    TABLES,
    WRITE_ALL,
)
from dbops.connections import replicas

ROLLUP = "daily"
# pg_advisory_xact_lock key: crc32(b"chores.analytics.refresh"), as a signed 32-bit number.
LOCK_KEY = 0x3A_A1_70_5E
LINKED_WINDOW = timedelta(days=31)
# For the refresh's transactions only. JIT would spend seconds compiling each day's statement
# (its estimated cost is high, its run short); a day's member rows fit in memory.
TUNING = "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'"
# Local day D lies within UTC [D - 14h, D + 1 + 12h): zones run from UTC-12 to UTC+14.
AHEAD = timedelta(hours=14)
BEHIND = timedelta(hours=12)


class RefreshError(Exception):
    """A day could not be refreshed; the days before it are committed."""

    def __init__(self, day: date, cause: BaseException) -> None:
        self.day = day
        message = str(cause).strip().splitlines()[0] if str(cause).strip() else repr(cause)
        super().__init__(
            f"analytics refresh failed on {day.isoformat()}: {message}. The days before it "
            "are committed; run `manage.py analytics refresh` again to continue."
        )


@dataclass
class DayDone:
    day: date
    rows: int
    seconds: float
    index: int  # 1-based position in the run
    total: int


@dataclass
class RefreshResult:
    days: list[date] = field(default_factory=list)
    skipped: int = 0
    rows: int = 0
    seconds: float = 0.0
    read_from: str = DEFAULT_DB_ALIAS
    replica_note: str = ""
    watermark: datetime | None = None
    through_day: date | None = None


def margin() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "ANALYTICS_REFRESH_MARGIN", 300)))


def settled_through(moment: datetime) -> date:
    """Return the last day that is over in every time zone at `moment`."""
    return (moment.astimezone(UTC) - timedelta(days=1) - BEHIND).date()


def settled(day: date, refreshed_at: datetime) -> bool:
    return day <= settled_through(refreshed_at)


def utc_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def read_alias() -> tuple[str, str]:
    """Return the alias to read the source from, and why not the replica when it is not."""
    if replicas.REPLICA not in settings.DATABASES:
        return DEFAULT_DB_ALIAS, ""
    if replicas.usable(replicas.REPLICA):
        return replicas.REPLICA, ""
    lag = float(getattr(settings, "DB_REPLICA_MAX_LAG", 10))
    return DEFAULT_DB_ALIAS, (
        f"the read replica is unavailable or more than DB_REPLICA_MAX_LAG ({lag:g}s) behind: "
        "reading the primary"
    )


# On a standby: the commit time of the last transaction replayed; every row of an earlier
# transaction is visible, unless it stayed open past it (the margin covers that). Before the
# standby has replayed one, its replay delay.
REPLICA_MOMENT = (
    "SELECT coalesce(pg_last_xact_replay_timestamp(),"
    f" now() - make_interval(secs => {replicas.REPLAY_DELAY}))"
)


def read_moment(alias: str) -> datetime:
    """Return the moment up to which `alias` shows every committed row (now, or replayed)."""
    with connections[alias].cursor() as cursor:
        if alias == DEFAULT_DB_ALIAS:
            cursor.execute("SELECT now()")
        else:
            cursor.execute(REPLICA_MOMENT)
        return cursor.fetchone()[0]


def plan(
    alias: str, *, since: date | None, full: bool, started: datetime
) -> tuple[list[date], int, datetime | None, date | None]:
    """Return the days to rewrite (oldest first), how many were skipped, and the old state."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT watermark, through_day FROM analytics_refresh_state WHERE rollup = %s",
            [ROLLUP],
        )
        watermark, through = cursor.fetchone() or (None, None)
    upper = started.astimezone(UTC).date() + timedelta(days=1)
    forced: set[date] = set()
    changed: dict[date, datetime] = {}
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute(TUNING)
        if full:
            cursor.execute(FIRST_DAY)
            first = cursor.fetchone()[0] or upper - timedelta(days=1)
            forced = set(days_between(first, upper))
        else:
            cursor.execute(
                CHANGED_DAYS,
                {"since": watermark or datetime.min.replace(tzinfo=UTC), "upper": upper},
            )
            changed = dict(cursor.fetchall())
    if since is not None:
        forced |= set(days_between(since, upper))
    start = through + timedelta(days=1) if through else min(changed, default=upper - timedelta(1))
    recent = set(days_between(min(start, upper), upper))
    candidates = sorted(forced | set(changed) | recent)
    written = refreshed_at(candidates)
    todo = [
        day
        for day in candidates
        if day in forced
        or day not in written
        or not settled(day, written[day])
        or (day in changed and changed[day] > written[day] - margin())
    ]
    return todo, len(candidates) - len(todo), watermark, through


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def refreshed_at(days: list[date]) -> dict[date, datetime]:
    if not days:
        return {}
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT day, refreshed_at FROM service_daily_stats WHERE day >= %s AND day <= %s",
            [days[0], days[-1]],
        )
        return dict(cursor.fetchall())


def parameters(day: date) -> dict[str, Any]:
    midnight = utc_midnight(day)
    return {
        "day": day,
        "lo": midnight - AHEAD,
        "hi": midnight + timedelta(days=1) + BEHIND,
        "ulo": midnight,
        "uhi": midnight + timedelta(days=1),
        "linked": LINKED_WINDOW,
    }


def select_day(alias: str, day: date) -> tuple[datetime, list[list[tuple[Any, ...]]]]:
    """Select a day's rows of the three tables on `alias` from one snapshot, and its moment."""
    params = parameters(day)
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cursor.execute(TUNING)
        cursor.execute(REPLICA_MOMENT)
        moment = cursor.fetchone()[0]
        found = []
        for rollup in TABLES:
            cursor.execute(SOURCE + rollup.rows, params)
            found.append(cursor.fetchall())
    return moment, found


def write_rows(cursor: Any, day: date, moment: datetime, found: list[list[tuple[Any, ...]]]) -> int:
    """Bring a day's rows level with rows selected elsewhere (on the replica)."""
    written = 0
    for rollup, values in zip(TABLES, found, strict=True):
        if rollup.key != "day":
            keys = [row[0] for row in values]
            cursor.execute(
                f"DELETE FROM {rollup.table} WHERE day = %s AND {rollup.key} <> ALL(%s)",
                [day, keys],
            )
            written += cursor.rowcount
        if values:
            # refreshed_at: what the replica's snapshot showed, not the primary's now().
            marks = ", ".join(["%s"] * (len(values[0]) + 1))
            cursor.executemany(
                rollup.upsert(f"VALUES ({marks})", stamped=True),
                [(*row, moment) for row in values],
            )
            written += max(cursor.rowcount, 0)
    return written


def write_day(day: date, read_from: str, state: dict[str, Any]) -> int:
    """Replace a day's rows and save the state, in one transaction on the primary."""
    rows = None if read_from == DEFAULT_DB_ALIAS else select_day(read_from, day)
    with (
        transaction.atomic(using=DEFAULT_DB_ALIAS),
        connections[DEFAULT_DB_ALIAS].cursor() as cursor,
    ):
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        cursor.execute(TUNING)
        if rows is None:
            cursor.execute(WRITE_ALL, parameters(day))
            written = int(cursor.fetchone()[0])
        else:
            written = write_rows(cursor, day, *rows)
        cursor.execute(SAVE_STATE, {"rollup": ROLLUP, **state})
    return written


def refresh(
    *,
    since: date | None = None,
    full: bool = False,
    progress: Callable[[DayDone], None] | None = None,
) -> RefreshResult:
    """Rewrite the days that changed since the last refresh; raise RefreshError naming a day."""
    begun = time.perf_counter()
    alias, note = read_alias()
    started = read_moment(alias)
    new_watermark = started - margin()
    settled_day = settled_through(started)
    days, skipped, _old_watermark, through = plan(alias, since=since, full=full, started=started)
    result = RefreshResult(read_from=alias, replica_note=note, skipped=skipped)
    for n, day in enumerate(days, 1):
        last = n == len(days)
        state = {
            "watermark": new_watermark if last else None,
            "through": min(day, settled_day) if day <= settled_day or last else None,
        }
        day_begun = time.perf_counter()
        try:
            rows = write_day(day, alias, state)
        except DatabaseError as err:
            raise RefreshError(day, err) from err
        result.days.append(day)
        result.rows += rows
        if progress is not None:
            progress(DayDone(day, rows, time.perf_counter() - day_begun, n, len(days)))
    result.seconds = time.perf_counter() - begun
    result.watermark = new_watermark
    result.through_day = settled_day if days else through
    return result
