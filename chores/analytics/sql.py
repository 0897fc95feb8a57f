"""The SQL of `analytics refresh` (chores.analytics.refresh says what each figure means).

SOURCE reads one day's completions and assignments once (%(day)s is both the local day
and the UTC day; %(lo)s..%(hi)s the UTC range every time zone's day D lies in); each
Rollup's SELECT makes a table's rows from it; WRITE_ALL does a whole day in one statement.
"""

from __future__ import annotations

from dataclasses import dataclass

# The source rows of one day; %(day)s is the local day and the UTC day at once.
SOURCE = """
WITH c AS (
    SELECT c.household_id, c.member_id, c.points,
           (c.completed_at AT TIME ZONE h.timezone)::date = %(day)s AS local_day,
           c.completed_at >= %(ulo)s AND c.completed_at < %(uhi)s AS utc_day
    FROM completions c
    JOIN households h ON h.id = c.household_id
    WHERE c.completed_at >= %(lo)s AND c.completed_at < %(hi)s
), a AS (
    SELECT a.household_id, a.assignee_id,
           (a.due_at AT TIME ZONE h.timezone)::date = %(day)s AS local_day,
           a.due_at >= %(ulo)s AND a.due_at < %(uhi)s AS utc_day,
           a.status = 'done' AND (a.status_changed_at <= a.due_at OR EXISTS (
               SELECT 1 FROM completions l
               WHERE l.assignment_id = a.id AND l.completed_at <= a.due_at
                 AND l.completed_at >= a.due_at - %(linked)s)) AS on_time,
           a.status IN ('open', 'missed') AND a.due_at < now() AS overdue
    FROM assignments a
    JOIN households h ON h.id = a.household_id
    WHERE a.due_at >= %(lo)s AND a.due_at < %(hi)s AND a.status <> 'cancelled'
)"""

HOUSEHOLD_COLUMNS = (
    "household_id, day, completions, points, assignments_due, done_on_time, overdue, active_members"
)
HOUSEHOLD_ROWS = """
SELECT household_id, %(day)s::date, sum(completions), sum(points), sum(due), sum(on_time),
       sum(overdue), sum(active)
FROM (
    SELECT household_id, count(*) AS completions, sum(points) AS points, 0 AS due,
           0 AS on_time, 0 AS overdue, count(DISTINCT member_id) AS active
    FROM c WHERE local_day GROUP BY household_id
    UNION ALL
    SELECT household_id, 0, 0, count(*), count(*) FILTER (WHERE on_time),
           count(*) FILTER (WHERE overdue), 0
    FROM a WHERE local_day GROUP BY household_id
) x
GROUP BY household_id"""

MEMBER_COLUMNS = "member_id, household_id, day, completions, points, assignments_due, done_on_time"
MEMBER_ROWS = """
SELECT member_id, household_id, %(day)s::date, sum(completions), sum(points), sum(due),
       sum(on_time)
FROM (
    SELECT member_id, household_id, count(*) AS completions, sum(points) AS points, 0 AS due,
           0 AS on_time
    FROM c WHERE local_day AND member_id IS NOT NULL GROUP BY member_id, household_id
    UNION ALL
    SELECT assignee_id, household_id, 0, 0, count(*), count(*) FILTER (WHERE on_time)
    FROM a WHERE local_day AND assignee_id IS NOT NULL GROUP BY assignee_id, household_id
) x
GROUP BY member_id, household_id"""

SERVICE_COLUMNS = (
    "day, active_users, active_households, new_profiles, completions, points, "
    "assignments_due, done_on_time, notifications_sent, notifications_read"
)
SERVICE_ROWS = """
SELECT %(day)s::date,
       (SELECT count(*) FROM (
            SELECT m.user_id FROM c JOIN household_members m ON m.id = c.member_id
            WHERE c.utc_day
            UNION
            SELECT id FROM users WHERE last_seen_at >= %(ulo)s AND last_seen_at < %(uhi)s) u),
       (SELECT count(DISTINCT household_id) FROM c WHERE utc_day),
       (SELECT count(*) FROM users WHERE created_at >= %(ulo)s AND created_at < %(uhi)s),
       (SELECT count(*) FROM c WHERE utc_day),
       (SELECT coalesce(sum(points), 0) FROM c WHERE utc_day),
       (SELECT count(*) FROM a WHERE utc_day),
       (SELECT count(*) FROM a WHERE utc_day AND on_time),
       n.sent, n.read
FROM (SELECT count(*) FILTER (WHERE created_at >= %(ulo)s AND created_at < %(uhi)s) AS sent,
             count(*) FILTER (WHERE read_at >= %(ulo)s AND read_at < %(uhi)s) AS read
      FROM notifications
      WHERE (created_at >= %(ulo)s AND created_at < %(uhi)s)
         OR (read_at >= %(ulo)s AND read_at < %(uhi)s)) n"""


@dataclass(frozen=True)
class Rollup:
    table: str
    key: str  # with `day`, the unique key
    columns: str  # every written column but refreshed_at
    rows: str  # the SELECT of a day's rows over SOURCE
    always: bool = False  # rewritten even when equal: the day's "computed at" (service)

    @property
    def values(self) -> list[str]:
        return [c.strip() for c in self.columns.split(",") if c.strip() not in (self.key, "day")]

    def upsert(self, rows: str, *, stamped: bool = False) -> str:
        """INSERT `rows`; a row that exists is updated only when a figure changed.

        `stamped`: the rows end with their refreshed_at (else now()).
        """
        assign = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.values)
        stamp = "EXCLUDED.refreshed_at" if stamped else "now()"
        changed = (
            ""
            if self.always
            else f" WHERE ({', '.join(f't.{c}' for c in self.values)}) IS DISTINCT FROM"
            f" ({', '.join(f'EXCLUDED.{c}' for c in self.values)})"
        )
        target = "day" if self.key == "day" else f"{self.key}, day"
        columns = f"{self.columns}, refreshed_at" if stamped else self.columns
        return (
            f"INSERT INTO {self.table} AS t ({columns}) {rows}"
            f" ON CONFLICT ({target}) DO UPDATE SET {assign}, refreshed_at = {stamp}{changed}"
        )


TABLES = (
    Rollup("household_daily_stats", "household_id", HOUSEHOLD_COLUMNS, HOUSEHOLD_ROWS),
    Rollup("member_daily_stats", "member_id", MEMBER_COLUMNS, MEMBER_ROWS),
    Rollup("service_daily_stats", "day", SERVICE_COLUMNS, SERVICE_ROWS, always=True),
)


def _write_all() -> str:
    """One statement on the primary: the source read once, the three tables brought level.

    Rows of the day that are no longer there are deleted, new ones inserted, changed ones
    updated; an unchanged household or member row is not written (its refreshed_at stays).
    """
    parts, counts = [], []
    for n, rollup in enumerate(TABLES):
        if rollup.key != "day":
            parts.append(f"r{n} ({rollup.columns}) AS ({rollup.rows})")
            parts.append(
                f"d{n} AS (DELETE FROM {rollup.table} t WHERE t.day = %(day)s AND NOT EXISTS"
                f" (SELECT FROM r{n} WHERE r{n}.{rollup.key} = t.{rollup.key}) RETURNING 1)"
            )
            # Only the new and changed rows reach the upsert: one hash join with the day's
            # rows is far cheaper than a conflict check per unchanged row.
            differs = " OR ".join(f"o.{c} IS DISTINCT FROM r.{c}" for c in rollup.values)
            fresh = (
                f"SELECT r.* FROM r{n} r LEFT JOIN {rollup.table} o ON o.day = %(day)s"
                f" AND o.{rollup.key} = r.{rollup.key} WHERE o.{rollup.key} IS NULL OR {differs}"
            )
            parts.append(f"u{n} AS ({rollup.upsert(fresh)} RETURNING 1)")
            counts += [f"(SELECT count(*) FROM d{n})", f"(SELECT count(*) FROM u{n})"]
        else:
            parts.append(f"u{n} AS ({rollup.upsert(rollup.rows)} RETURNING 1)")
            counts.append(f"(SELECT count(*) FROM u{n})")
    return SOURCE + ",\n" + ",\n".join(parts) + "\nSELECT " + " + ".join(counts)


WRITE_ALL = _write_all()

# The days each source row recorded after the watermark touches, with its latest record.
CHANGED_DAYS = """
SELECT day, max(changed) FROM (
    SELECT d.day, c.created_at AS changed
    FROM completions c
    JOIN households h ON h.id = c.household_id
    CROSS JOIN LATERAL (VALUES ((c.completed_at AT TIME ZONE h.timezone)::date),
                               ((c.completed_at AT TIME ZONE 'UTC')::date)) d(day)
    WHERE c.created_at > %(since)s
    UNION ALL
    SELECT d.day, a.updated_at
    FROM assignments a
    JOIN households h ON h.id = a.household_id
    CROSS JOIN LATERAL (VALUES ((a.due_at AT TIME ZONE h.timezone)::date),
                               ((a.due_at AT TIME ZONE 'UTC')::date)) d(day)
    WHERE a.updated_at > %(since)s
    UNION ALL
    SELECT (d.at AT TIME ZONE 'UTC')::date, d.at
    FROM users u
    CROSS JOIN LATERAL (VALUES (u.created_at), (u.last_seen_at)) d(at)
    WHERE (u.created_at > %(since)s OR u.last_seen_at > %(since)s) AND d.at > %(since)s
    UNION ALL
    SELECT (d.at AT TIME ZONE 'UTC')::date, d.at
    FROM notifications n
    CROSS JOIN LATERAL (VALUES (n.created_at), (n.read_at)) d(at)
    WHERE (n.created_at > %(since)s OR n.read_at > %(since)s) AND d.at > %(since)s
) x
WHERE day <= %(upper)s
GROUP BY day"""

FIRST_DAY = """
SELECT least(
    (SELECT (min(completed_at) AT TIME ZONE 'UTC')::date FROM completions),
    (SELECT (min(due_at) AT TIME ZONE 'UTC')::date FROM assignments),
    (SELECT (min(created_at) AT TIME ZONE 'UTC')::date FROM users),
    (SELECT (min(created_at) AT TIME ZONE 'UTC')::date FROM notifications),
    (SELECT min(day) FROM service_daily_stats),
    (SELECT min(day) FROM household_daily_stats))"""

SAVE_STATE = """
INSERT INTO analytics_refresh_state AS s (rollup, watermark, through_day, updated_at)
VALUES (%(rollup)s, %(watermark)s, %(through)s, now())
ON CONFLICT (rollup) DO UPDATE SET
    watermark = CASE WHEN s.watermark IS NULL OR EXCLUDED.watermark > s.watermark
                     THEN coalesce(EXCLUDED.watermark, s.watermark) ELSE s.watermark END,
    through_day = greatest(s.through_day, EXCLUDED.through_day),
    updated_at = now()"""
