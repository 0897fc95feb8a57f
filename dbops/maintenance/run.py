"""Run a plan: one run at a time (an advisory lock), within the budget and the window.

A step starts only while the time left covers its estimate: the budget less the time
since the run began, and, unless --now, the time until the window closes. The first
step that does not fit, and every step after it, is skipped. Each step is logged with
its duration. A step that fails is reported and the run goes on with the next, unless
the connection is gone (the lock with it): then the rest are skipped.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from dbops.maintenance import MaintenanceError
from dbops.maintenance.plan import (
    DONE,
    FAILED,
    PLANNED,
    SKIPPED_BUDGET,
    SKIPPED_LOST,
    SKIPPED_WINDOW,
    Plan,
    Step,
)
from dbops.maintenance.window import Window
from sqlmigrations.redact import redact

log = logging.getLogger("dbops.maintenance")
APPLICATION_NAME = "choregarden-maintenance"
# pg_try_advisory_lock key: crc32(b"choregarden dbmaintenance"), as a positive 31-bit
# number, so that pg_locks shows it as objid with classid 0.
LOCK_KEY = zlib.crc32(b"choregarden dbmaintenance") & 0x7FFFFFFF

HOLDER = (
    "SELECT l.pid, a.backend_start, a.application_name, a.state"
    " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = %s AND l.objsubid = 1"
    " AND l.granted"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@contextmanager
def exclusive(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Hold the maintenance lock for the block; refuse when another run holds it."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()
    if not (row and row[0]):
        holder = conn.execute(HOLDER, [LOCK_KEY]).fetchone()
        if holder:
            pid, since, app, state = holder
            when = f"{since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if since else "unknown"
            who = f"pid {pid}, connected since {when}, {app or 'no application name'}, {state}"
            stuck = f"SELECT pg_terminate_backend({pid})"
        else:
            who, stuck = "it ended just now", "nothing"
        raise MaintenanceError(
            f"another dbmaintenance run holds the maintenance lock ({who}): nothing was done. "
            f"Let it finish, then run again; if it is stuck, end it first ({stuck})"
        )
    try:
        yield
    finally:
        if not (conn.closed or conn.broken):
            conn.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


@dataclass
class Clock:
    """The run's two clocks: seconds elapsed (monotonic), and the wall-clock time."""

    elapsed: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def seconds_left(
    budget: float, began: float, window: Window | None, anytime: bool, clock: Clock
) -> tuple[float, str]:
    """The time left to start a step in, and what limits it (budget or window)."""
    left = budget - (clock.elapsed() - began)
    if window is None or anytime:
        return left, SKIPPED_BUDGET
    closes = window.seconds_left(clock.now())
    return (closes, SKIPPED_WINDOW) if closes < left else (left, SKIPPED_BUDGET)


def execute(
    plan: Plan,
    conn: psycopg.Connection[Any],
    *,
    budget: float,
    began: float,
    window: Window | None,
    anytime: bool,
    clock: Clock | None = None,
) -> None:
    """Run the plan's steps in order, setting each one's status, duration and detail."""
    clock = clock or Clock()
    stop = ""
    for step in plan.steps:
        if stop:
            step.status = stop
            continue
        left, limit = seconds_left(budget, began, window, anytime, clock)
        if left < step.estimate:
            stop = step.status = limit
            step.detail = f"{max(left, 0):.0f} s left, estimated {step.estimate:.0f} s"
            log.info("dbmaintenance: %s %s: %s (%s)", step.kind, step.target, stop, step.detail)
            continue
        _run_step(step, clock)
        if step.status == FAILED and (conn.closed or conn.broken):
            stop = SKIPPED_LOST


def _run_step(step: Step, clock: Clock) -> None:
    assert step.action is not None and step.status == PLANNED
    log.info("dbmaintenance: %s %s: started (%s)", step.kind, step.target, step.statement)
    start = clock.elapsed()
    try:
        step.detail = step.action()
        step.status = DONE
    except Exception as err:  # noqa: BLE001 - any failure of a step is reported, not raised
        step.status = FAILED
        step.detail = failure_text(err)
    step.duration = clock.elapsed() - start
    level = logging.INFO if step.status == DONE else logging.ERROR
    log.log(
        level,
        "dbmaintenance: %s %s: %s in %.2f s (estimated %.0f s): %s",
        step.kind,
        step.target,
        step.status,
        step.duration,
        step.estimate,
        step.detail,
    )


def failure_text(err: BaseException) -> str:
    """One line: the error's first line and its notes, with any secret masked."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    notes = list(getattr(err, "__notes__", []))
    return redact("; ".join([first, *notes]))
