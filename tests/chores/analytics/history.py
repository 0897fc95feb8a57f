"""A small random history across time zones, and the rollups computed from it in Python.

The expected figures follow the definitions of chores/analytics/refresh.py, written the
plain way: every row looked at, dates taken with zoneinfo.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction

# From UTC+14 to UTC-11, with half-hour and daylight-saving zones.
ZONES = [
    "Pacific/Kiritimati",
    "Asia/Kolkata",
    "Europe/Berlin",
    "UTC",
    "America/Los_Angeles",
    "Pacific/Pago_Pago",
]
STATUSES = ["open", "done", "done", "done", "missed", "skipped", "cancelled"]
LINKED_WINDOW = timedelta(days=31)


@dataclass
class History:
    now: datetime
    zones: dict[int, str] = field(default_factory=dict)  # household -> time zone
    members: dict[int, tuple[int, str]] = field(default_factory=dict)  # id -> household, user
    users: list[tuple[str, datetime, datetime | None]] = field(default_factory=list)
    completions: list[dict[str, Any]] = field(default_factory=list)
    assignments: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[tuple[datetime, datetime | None]] = field(default_factory=list)


def _moment(rng: random.Random, now: datetime, days_back: int, days_ahead: int = 0) -> datetime:
    seconds = rng.randint(-days_back * 86400, days_ahead * 86400)
    moment = now + timedelta(seconds=seconds)
    # Never within an hour of now: "overdue" is judged at the refresh's own now().
    if abs(moment - now) < timedelta(hours=1):
        moment -= timedelta(hours=2)
    return moment.replace(microsecond=0)


def make_history(seed: int, *, households: int = 4, days: int = 20) -> History:
    """Insert a random history (committed by the caller's transaction) and return it."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    history = History(now=now)
    with transaction.atomic(), connection.cursor() as cursor:
        user_ids = []
        for n in range(households * 3):
            created = _moment(rng, now, days)
            seen = _moment(rng, now, days) if rng.random() < 0.7 else None
            if seen is not None and seen < created:
                seen = created + timedelta(minutes=5)
                seen = min(seen, now - timedelta(hours=1))
            cursor.execute(
                "INSERT INTO users (cognito_sub, email, display_name, created_at, last_seen_at)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                [f"an-{seed}-{n}", f"an{seed}x{n}@example.com", f"User {n}", created, seen],
            )
            user_id = str(cursor.fetchone()[0])
            user_ids.append(user_id)
            history.users.append((user_id, created, seen))
        for h in range(households):
            zone = ZONES[(seed + h) % len(ZONES)]
            cursor.execute(
                "INSERT INTO households (name, timezone) VALUES (%s, %s) RETURNING id",
                [f"Household {seed}-{h}", zone],
            )
            household = cursor.fetchone()[0]
            history.zones[household] = zone
            for k in range(rng.randint(1, 3)):
                user = user_ids[3 * h + k]
                cursor.execute(
                    "INSERT INTO household_members (household_id, user_id, role)"
                    " VALUES (%s, %s, %s) RETURNING id",
                    [household, user, "owner" if k == 0 else "member"],
                )
                history.members[cursor.fetchone()[0]] = (household, user)
            cursor.execute(
                "INSERT INTO tasks (household_id, title, starts_on) VALUES (%s, 'Dishes', %s)"
                " RETURNING id",
                [household, now.date() - timedelta(days=days + 2)],
            )
            task = cursor.fetchone()[0]
            members = [m for m, (hh, _) in history.members.items() if hh == household]
            dues: set[datetime] = set()
            for _ in range(rng.randint(5, 25)):
                due = _moment(rng, now, days, 3)
                if due in dues:
                    continue
                dues.add(due)
                status = rng.choice(STATUSES)
                changed = due + timedelta(hours=rng.randint(-30, 30))
                assignee = rng.choice([*members, None])
                cursor.execute(
                    "INSERT INTO assignments (task_id, household_id, assignee_id, due_at, status,"
                    " status_changed_at) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    [task, household, assignee, due, status, changed],
                )
                history.assignments.append(
                    {
                        "id": cursor.fetchone()[0],
                        "household": household,
                        "assignee": assignee,
                        "due": due,
                        "status": status,
                        "changed": changed,
                    }
                )
            for _ in range(rng.randint(5, 40)):
                done = _moment(rng, now, days)
                done = min(done, now - timedelta(minutes=1))
                linked = None
                if history.assignments and rng.random() < 0.3:
                    candidate = rng.choice(history.assignments)
                    if candidate["household"] == household:
                        linked = candidate["id"]
                add_completion(
                    cursor,
                    history,
                    household=household,
                    member=rng.choice([*members, None]),
                    completed_at=done,
                    points=rng.randint(0, 10),
                    assignment=linked,
                )
        for _ in range(rng.randint(0, 15)):
            created = _moment(rng, now, days)
            read = created + timedelta(hours=rng.randint(0, 60)) if rng.random() < 0.6 else None
            if read is not None and read > now:
                read = None
            cursor.execute(
                "INSERT INTO notifications (recipient_id, kind, created_at, read_at)"
                " VALUES (%s, 'system', %s, %s)",
                [rng.choice(user_ids), created, read],
            )
            history.notifications.append((created, read))
    return history


def add_completion(
    cursor: Any,
    history: History,
    *,
    household: int,
    member: int | None,
    completed_at: datetime,
    points: int,
    assignment: int | None = None,
) -> None:
    cursor.execute(
        "INSERT INTO completions (household_id, member_id, assignment_id, completed_at, points)"
        " VALUES (%s, %s, %s, %s, %s)",
        [household, member, assignment, completed_at, points],
    )
    history.completions.append(
        {
            "household": household,
            "member": member,
            "assignment": assignment,
            "at": completed_at,
            "points": points,
        }
    )


def on_time(history: History, a: dict[str, Any]) -> bool:
    if a["status"] != "done":
        return False
    if a["changed"] <= a["due"]:
        return True
    return any(
        c["assignment"] == a["id"] and a["due"] - LINKED_WINDOW <= c["at"] <= a["due"]
        for c in history.completions
    )


def local(moment: datetime, zone: str) -> date:
    return moment.astimezone(ZoneInfo(zone)).date()


def expected(history: History, last_day: date) -> dict[str, dict[Any, tuple[int, ...]]]:
    """The rollups' rows (without ids and refreshed_at) for every day up to last_day.

    Service rows are given for the days with some figure; the refresh also writes rows of
    zeros for the days between.
    """
    household: dict[tuple[int, date], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0, set()])
    member: dict[tuple[int, date], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    service: dict[date, list[Any]] = defaultdict(lambda: [set(), set(), 0, 0, 0, 0, 0, 0, 0])
    for c in history.completions:
        day = local(c["at"], history.zones[c["household"]])
        row = household[(c["household"], day)]
        row[0] += 1
        row[1] += c["points"]
        if c["member"] is not None:
            row[5].add(c["member"])
            member[(c["member"], day)][0] += 1
            member[(c["member"], day)][1] += c["points"]
        utc = c["at"].astimezone(UTC).date()
        s = service[utc]
        if c["member"] is not None:
            s[0].add(history.members[c["member"]][1])
        s[1].add(c["household"])
        s[3] += 1
        s[4] += c["points"]
    for a in history.assignments:
        if a["status"] == "cancelled":
            continue
        done = on_time(history, a)
        overdue = a["status"] in ("open", "missed") and a["due"] < history.now
        day = local(a["due"], history.zones[a["household"]])
        row = household[(a["household"], day)]
        row[2] += 1
        row[3] += done
        row[4] += overdue
        if a["assignee"] is not None:
            member[(a["assignee"], day)][2] += 1
            member[(a["assignee"], day)][3] += done
        s = service[a["due"].astimezone(UTC).date()]
        s[5] += 1
        s[6] += done
    for user, created, seen in history.users:
        service[created.astimezone(UTC).date()][2] += 1
        if seen is not None:
            service[seen.astimezone(UTC).date()][0].add(user)
    for created, read in history.notifications:
        service[created.astimezone(UTC).date()][7] += 1
        if read is not None:
            service[read.astimezone(UTC).date()][8] += 1
    return {
        "household": {
            key: (*row[:5], len(row[5])) for key, row in household.items() if key[1] <= last_day
        },
        "member": {
            (m, day): (history.members[m][0], *row)
            for (m, day), row in member.items()
            if day <= last_day
        },
        "service": {
            day: (len(row[0]), len(row[1]), *row[2:])
            for day, row in service.items()
            if day <= last_day
        },
    }


def rollups() -> dict[str, dict[Any, tuple[int, ...]]]:
    """The rollup tables' rows as `expected` gives them (service rows of zeros left out)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT household_id, day, completions, points, assignments_due, done_on_time,"
            " overdue, active_members FROM household_daily_stats"
        )
        household = {(r[0], r[1]): tuple(r[2:]) for r in cursor.fetchall()}
        cursor.execute(
            "SELECT member_id, day, household_id, completions, points, assignments_due,"
            " done_on_time FROM member_daily_stats"
        )
        member = {(r[0], r[1]): tuple(r[2:]) for r in cursor.fetchall()}
        cursor.execute(
            "SELECT day, active_users, active_households, new_profiles, completions, points,"
            " assignments_due, done_on_time, notifications_sent, notifications_read"
            " FROM service_daily_stats"
        )
        service = {r[0]: tuple(r[1:]) for r in cursor.fetchall() if any(r[1:])}
    return {"household": household, "member": member, "service": service}


def refreshed_at() -> dict[tuple[str, Any], datetime]:
    """Every rollup row's refreshed_at, by table and key."""
    with connection.cursor() as cursor:
        found: dict[tuple[str, Any], datetime] = {}
        for table, key in (
            ("household_daily_stats", "household_id"),
            ("member_daily_stats", "member_id"),
            ("service_daily_stats", "NULL"),
        ):
            cursor.execute(f"SELECT {key}, day, refreshed_at FROM {table}")
            found.update({(table, (k, day)): at for k, day, at in cursor.fetchall()})
    return found


def upper_day() -> date:
    """The last day a refresh writes: tomorrow (UTC)."""
    return datetime.now(UTC).date() + timedelta(days=1)
