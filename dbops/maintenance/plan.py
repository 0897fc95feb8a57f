"""The steps of a maintenance run, in order of value, each with its estimated cost.

Order: first the leftovers of an interrupted REINDEX CONCURRENTLY (every write still
updates them), then the monthly partitions missing ahead (without them, rows go to the
DEFAULT partition), then VACUUM and REINDEX by the bytes they give back, then the analytics
refresh, then the backups past retention. A step's estimate is its size over a rate
(MAINTENANCE_VACUUM_MB_PER_SECOND, MAINTENANCE_REINDEX_MB_PER_SECOND), at least a second:
the run starts a step only while the budget left covers its estimate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import import_module
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from psycopg import sql

from dbops.backups import BackupError
from dbops.health.base import pretty
from dbops.maintenance.bloat import bloated_indexes, dead_tables
from sqlmigrations.lib.invalid_indexes import InvalidIndex, invalid_indexes
from sqlmigrations.redact import redact

MIN_STEP_SECONDS = 1.0
MB = 1024 * 1024
# What REINDEX CONCURRENTLY leaves when it is interrupted: the new index (`_ccnew`, before
# the swap) or the old one (`_ccold`, after it), invalid; a number follows on a clash.
LEFTOVER = re.compile(r"_cc(new|old)[0-9]*$")
PLANNED, DONE, FAILED = "planned", "done", "failed"
SKIPPED_BUDGET, SKIPPED_WINDOW = "skipped (budget)", "skipped (window)"
SKIPPED_LOST = "skipped (connection lost)"
# Lower rank first; within a rank, more value (bytes given back) first.
RANK = {"drop-invalid-index": 0, "partitions": 1, "vacuum": 2, "reindex": 2, "analytics": 3,
        "prune": 4}  # fmt: skip


@dataclass
class Step:
    kind: str
    target: str
    reason: str
    statement: str  # what it runs, for people and the log
    estimate: float  # seconds
    value: int = 0  # bytes it gives back (vacuum, reindex)
    status: str = PLANNED
    duration: float | None = None
    detail: str = ""
    action: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    table: str = ""  # the table a VACUUM or REINDEX works on

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "reason": self.reason,
            "statement": self.statement,
            "estimate_seconds": round(self.estimate, 3),
            "value_bytes": self.value,
            "status": self.status,
            "duration_seconds": None if self.duration is None else round(self.duration, 3),
            "detail": self.detail,
        }


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ordered(self) -> None:
        """Sort by rank, then value; a table's VACUUM goes before the REINDEX of its index
        (the rebuild then leaves out the rows the VACUUM removes)."""
        self.steps.sort(key=lambda s: (RANK[s.kind], -s.value))
        for vacuum in [s for s in self.steps if s.kind == "vacuum"]:
            first = next(s for s in self.steps if s.table == vacuum.table)
            if first is not vacuum:
                self.steps.remove(vacuum)
                self.steps.insert(self.steps.index(first), vacuum)


def rate(name: str, default: float) -> float:
    """Bytes per second of a kind of step (a setting in MB/s)."""
    return float(getattr(settings, name, default)) * MB


def seconds(size: int, bytes_per_second: float) -> float:
    return max(MIN_STEP_SECONDS, size / bytes_per_second)


def make_plan(conn: psycopg.Connection[Any], now: datetime | None = None) -> Plan:
    """Everything a run would do now, ordered; what could not be looked at is a note."""
    now = now or datetime.now(UTC)
    plan = Plan()
    with conn.cursor() as cursor:
        plan.steps += leftover_steps(conn, cursor, plan.notes)
        plan.steps += vacuum_steps(conn, cursor)
        reindex, notes = reindex_steps(conn, cursor)
        plan.steps += reindex
        plan.notes += notes
    for kind, planner in (
        ("partitions", partition_steps),
        ("analytics", analytics_steps),
        ("prune", prune_steps),
    ):
        try:
            plan.steps += planner(conn, now)
        except (BackupError, psycopg.Error, DatabaseError, ImproperlyConfigured, OSError,
                ValueError) as err:  # fmt: skip
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            plan.notes.append(f"{kind}: not looked at: {redact(first)}")
    plan.ordered()
    return plan


def _leftover_busy(cursor: Any, index: InvalidIndex) -> bool:
    """Whether an index build runs on the leftover's table (a REINDEX of someone else's)."""
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p"
        " JOIN pg_class t ON t.oid = p.relid JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = %s AND t.relname = %s)",
        [index.schema, index.table],
    )
    return bool(cursor.fetchone()[0])


def leftover_steps(conn: psycopg.Connection[Any], cursor: Any, notes: list[str]) -> list[Step]:
    steps = []
    for index in invalid_indexes(cursor):
        if not LEFTOVER.search(index.name):
            notes.append(
                f"invalid index {index.schema}.{index.name} on {index.table} was not left by "
                "a REINDEX of this command: left alone (`dbhealth --check invalid_indexes` "
                "says how to fix it)"
            )
            continue
        if _leftover_busy(cursor, index):
            notes.append(f"{index.schema}.{index.name}: an index build runs on its table now")
            continue
        steps.append(
            Step(
                "drop-invalid-index",
                f"{index.schema}.{index.name}",
                f"left invalid on {index.table} by an interrupted REINDEX CONCURRENTLY: "
                "queries never use it, every write updates it",
                index.drop.rstrip(";"),
                MIN_STEP_SECONDS,
                action=_runs(conn, index.drop.rstrip(";"), "dropped"),
            )
        )
    return steps


def _runs(conn: psycopg.Connection[Any], statement: str | sql.Composed, done: str) -> Any:
    def action() -> str:
        conn.execute(statement)
        return done

    return action


def vacuum_steps(conn: psycopg.Connection[Any], cursor: Any) -> list[Step]:
    steps = []
    per_second = rate("MAINTENANCE_VACUUM_MB_PER_SECOND", 50)
    for t in dead_tables(cursor):
        query = sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(t.schema, t.table))
        steps.append(
            Step(
                "vacuum",
                f"{t.schema}.{t.table}",
                f"{t.dead:,} dead rows ({t.dead_percent:.0f}% of the rows; "
                f"{pretty(t.heap_bytes)} table)",
                query.as_string(conn),
                seconds(t.heap_bytes, per_second),
                value=int(t.heap_bytes * t.dead_percent / 100),
                action=_runs(conn, query, "vacuumed and analysed"),
                table=f"{t.schema}.{t.table}",
            )
        )
    return steps


def reindex_steps(conn: psycopg.Connection[Any], cursor: Any) -> tuple[list[Step], list[str]]:
    steps = []
    per_second = rate("MAINTENANCE_REINDEX_MB_PER_SECOND", 20)
    found, notes = bloated_indexes(cursor)
    for ix in found:
        query = sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(sql.Identifier(ix.schema, ix.name))
        steps.append(
            Step(
                "reindex",
                f"{ix.schema}.{ix.name}",
                f"{ix.ratio:.0%} bloat ({pretty(ix.bloat_bytes)} of {pretty(ix.bytes)}; "
                f"{ix.method})",
                query.as_string(conn),
                seconds(ix.bytes, per_second),
                value=ix.bloat_bytes,
                action=_reindex(conn, query, ix.schema, ix.name),
                table=f"{ix.schema}.{ix.table}",
            )
        )
    return steps, notes


def _reindex(conn: psycopg.Connection[Any], query: sql.Composed, schema: str, name: str) -> Any:
    def action() -> str:
        before = _size(conn, schema, name)
        try:
            conn.execute(query)
        except psycopg.Error as err:
            if not (conn.closed or conn.broken):
                dropped = drop_leftovers(conn, schema, name)
                if dropped:
                    err.add_note(f"dropped the invalid leftover {', '.join(dropped)}")
            raise
        after = _size(conn, schema, name)
        return f"rebuilt: {pretty(before)} -> {pretty(after)}"

    return action


def _size(conn: psycopg.Connection[Any], schema: str, name: str) -> int:
    row = conn.execute(
        "SELECT pg_relation_size(c.oid) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        [schema, name],
    ).fetchone()
    return int(row[0]) if row else 0


def drop_leftovers(conn: psycopg.Connection[Any], schema: str, name: str) -> list[str]:
    """Drop the invalid `<name>_ccnew`/`_ccold` a failed REINDEX CONCURRENTLY just left."""
    dropped = []
    with conn.cursor() as cursor:
        for index in invalid_indexes(cursor):
            rest = index.name[len(name) :]
            if index.schema == schema and index.name.startswith(name) and LEFTOVER.fullmatch(rest):
                conn.execute(index.drop)
                dropped.append(f"{index.schema}.{index.name}")
    return dropped


def partition_steps(conn: psycopg.Connection[Any], now: datetime) -> list[Step]:
    from dbops.partitions.tables import month_add, open_partitions, partitioned_tables, this_month

    ahead = int(getattr(settings, "MAINTENANCE_PARTITION_MONTHS_AHEAD", 6))
    first, last = this_month(now), month_add(this_month(now), ahead)
    steps = []
    for table in partitioned_tables():
        parts = open_partitions(table)
        with parts.conn:
            found = parts.conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()
            if not (found and found[0]):
                continue  # not migrated yet
            missing = [s.partition for s in parts.create(first, last, execute=False)
                       if s.action == "create"]  # fmt: skip
        if missing:
            steps.append(
                Step(
                    "partitions",
                    table,
                    f"{len(missing)} monthly partition(s) missing up to {last:%Y-%m}: "
                    + ", ".join(missing),
                    f"partitions create --months-ahead {ahead}",
                    MIN_STEP_SECONDS * len(missing),
                    action=_create_partitions(table, first, last),
                )
            )
    return steps


def _create_partitions(table: str, first: Any, last: Any) -> Any:
    def action() -> str:
        from dbops.partitions.tables import open_partitions

        parts = open_partitions(table)
        with parts.conn:
            made = [s.partition for s in parts.create(first, last) if s.action == "create"]
        return f"created {', '.join(made) or 'none (made meanwhile)'}"

    return action


def analytics_steps(conn: psycopg.Connection[Any], now: datetime) -> list[Step]:
    """The analytics refresh, when the chores app and its rollups (V12) are there."""
    from django.apps import apps

    if not apps.is_installed("chores"):
        return []
    row = conn.execute("SELECT to_regclass('analytics_refresh_state') IS NOT NULL").fetchone()
    if not (row and row[0]):
        return []
    refresh = import_module("chores.analytics.refresh")  # an app's: looked up, not imported
    alias, _ = refresh.read_alias()
    days, _skipped, _, _ = refresh.plan(
        alias, since=None, full=False, started=refresh.read_moment(alias)
    )
    if not days:
        return []
    per_day = float(getattr(settings, "MAINTENANCE_ANALYTICS_SECONDS_PER_DAY", 2))

    def action() -> str:
        result = refresh.refresh()
        return f"refreshed {len(result.days)} day(s), {result.rows} row(s)"

    return [
        Step(
            "analytics",
            "daily rollups",
            f"{len(days)} day(s) to compute again ({days[0]}..{days[-1]})",
            "analytics refresh",
            max(MIN_STEP_SECONDS, per_day * len(days)),
            action=action,
        )
    ]


def prune_steps(conn: psycopg.Connection[Any], now: datetime) -> list[Step]:
    from dbops.backups.names import check_env
    from dbops.backups.prune import execute_prune, plan_prune
    from dbops.backups.replica import replica_storage
    from dbops.backups.store import backup_storage

    storage, env = backup_storage(), check_env(settings.BACKUP_ENV)
    replica = replica_storage()  # `backup prune` prunes both sides: so does maintenance
    keep_days, keep_min = settings.BACKUP_RETENTION_DAYS, settings.BACKUP_KEEP_MIN
    pruning = plan_prune(storage, env, keep_days, keep_min, now, replica=replica)
    if not (pruning.delete or pruning.replica_delete):
        return []

    def action() -> str:
        deleted = execute_prune(storage, pruning, replica=replica)
        return f"deleted {len(deleted)} object(s)" + (
            f" and {len(pruning.replica_delete)} in the replica" if pruning.replica_delete else ""
        )

    return [
        Step(
            "prune",
            f"{env} backups",
            f"{len(pruning.delete)} object(s) older than {keep_days} days or abandoned"
            + (f"; refused: {pruning.refusal}" if pruning.refusal else ""),
            f"backup prune --keep-days {keep_days} --keep-min {keep_min}",
            MIN_STEP_SECONDS + 0.5 * len(pruning.delete),
            action=action,
        )
    ]
