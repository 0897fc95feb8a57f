"""Recorded health history with known figures, for the page and browser tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from dbops.models import HealthSnapshot, HealthStatementSample

QUERYID = -7_311_902_771_123
QUERY_TEXT = "SELECT * FROM chores WHERE household_id = $1"
HOURS = 72


def make_history(now: datetime) -> list[HealthSnapshot]:
    """Snapshots an hour apart for three days (and a minute), the newest a warning.

    Known figures: connections 40-44 of 100, cache hit ratio 97.5%, 3.0 GB, seven tables
    of 1 to 7 MB, 1,234 dead tuples, 2.5 s of replay lag in the last three hours, and one
    statement taking 12 ms a call in every interval.
    """
    snapshots = [
        HealthSnapshot.objects.create(
            taken_at=now - timedelta(hours=hours, minutes=1),
            status=1 if hours == 0 else 0,
            connections=40 + hours % 5,
            max_connections=100,
            cache_hit_ratio=0.975,
            database_bytes=3 * 1024**3,
            dead_tuples=1234,
            replication_lag_seconds=2.5 if hours < 3 else None,
            table_sizes={f"public.t{i}": (i + 1) * 1024**2 for i in range(7)},
        )
        for hours in range(HOURS, -1, -1)
    ]
    HealthStatementSample.objects.bulk_create(
        HealthStatementSample(
            snapshot=snapshot,
            queryid=QUERYID,
            query=QUERY_TEXT,
            calls=10 * (n + 1),
            total_ms=120.0 * (n + 1),
            mean_ms=12.0,
        )
        for n, snapshot in enumerate(snapshots)
    )
    return snapshots
