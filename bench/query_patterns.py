"""The query patterns the app runs and the index serving each (docs/query-patterns.md).

Each pattern is built by the project's own ORM function, so the SQL measured by
bench/query_patterns_bench.py and checked by tests/chores/test_query_patterns.py is the SQL
the application sends. `fallbacks` are other indexes the planner would use instead when the
pattern's own index is gone; the benchmark's "without" run drops them too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet


@dataclass(frozen=True)
class Pattern:
    key: str
    title: str
    index: str  # on a partitioned table, the parent index's name
    query: Callable[[Any], QuerySet[Any]]
    samples: Callable[[int], list[Any]]  # n arguments for `query`, from the database
    fallbacks: tuple[str, ...] = field(default=())

    def sql(self, argument: Any) -> tuple[str, tuple[Any, ...]]:
        """Return the SQL and parameters of this pattern's query for one argument."""
        return self.query(argument).query.sql_with_params()


def previous_month(now: datetime | None = None) -> tuple[int, int]:
    now = now or datetime.now(UTC)
    return (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)


def patterns() -> list[Pattern]:
    """The six patterns of issue 4, item 4 (imports Django models: call after setup)."""
    from accounts.models import UserProfile
    from chores import queries
    from chores.models import Household, HouseholdMember

    def members(n: int) -> list[Any]:
        return list(HouseholdMember.objects.select_related("household", "user").order_by("?")[:n])

    def households(n: int) -> list[Any]:
        return list(Household.objects.order_by("?")[:n])

    def member_users(n: int) -> list[Any]:
        return list(HouseholdMember.objects.order_by("?").values_list("user_id", flat=True)[:n])

    def profiles(n: int) -> list[Any]:
        return list(UserProfile.objects.order_by("?")[:n])

    year, month = previous_month()
    return [
        Pattern(
            "member_week",
            "a member's open assignments this week",
            "assignments_assignee_due",
            queries.open_assignments_this_week,
            members,
            # the open-assignments index, read for the whole week and filtered by assignee
            fallbacks=("assignments_household_open_due",),
        ),
        Pattern(
            "overdue",
            "overdue assignments per household",
            "assignments_household_open_due",
            queries.overdue_assignments,
            households,
        ),
        Pattern(
            "leaderboard",
            "a household's points leaderboard for a month",
            "completions_household_month",
            lambda household: queries.leaderboard(household, year, month),
            households,
        ),
        Pattern(
            "unread",
            "unread notifications per user",
            "notifications_unread",
            queries.unread_notifications,
            member_users,
            # (recipient_id, created_at DESC) serves it too, reading the read rows as well
            fallbacks=("notifications_recipient_time",),
        ),
        Pattern(
            "cognito_sub",
            "profile lookup by cognito_sub",
            "users_cognito_sub_key",
            # what accounts.cognito sends: .filter(cognito_sub=...).first()
            lambda profile: UserProfile.all_objects.filter(
                cognito_sub=profile.cognito_sub
            ).order_by("pk")[:1],
            profiles,
            fallbacks=("users_cognito_sub_trgm",),
        ),
        Pattern(
            "email",
            "profile lookup by email",
            "users_email_lower_uniq",
            lambda profile: UserProfile.objects.by_email(profile.email.upper()),
            profiles,
            fallbacks=("users_email_trgm",),
        ),
    ]


def _index_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "Index Name" in node:
            yield node["Index Name"]
        for value in node.values():
            yield from _index_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _index_names(item)


def parent_indexes(cursor: Any, names: list[str]) -> list[str]:
    """Map each partition's index to the partitioned index it belongs to (else itself)."""
    cursor.execute(
        "SELECT c.relname, coalesce(p.relname, c.relname) FROM pg_class c"
        " LEFT JOIN pg_inherits i ON i.inhrelid = c.oid"
        " LEFT JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE c.relname = ANY(%s) AND c.relkind IN ('i', 'I')",
        [names],
    )
    parents = dict(cursor.fetchall())
    return sorted({parents.get(name, name) for name in names})


def indexes_used(cursor: Any, sql: str, params: Any) -> list[str]:
    """Return the indexes (partitioned indexes by their parent name) in the plan of `sql`."""
    cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
    plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return parent_indexes(cursor, list(_index_names(plan)))


def drop_statement(cursor: Any, index: str) -> str:
    """SQL that removes `index`: DROP CONSTRAINT when a constraint owns it, else DROP INDEX."""
    cursor.execute(
        "SELECT t.relname, con.conname FROM pg_class i"
        " LEFT JOIN pg_constraint con ON con.conindid = i.oid AND con.contype IN ('p', 'u', 'x')"
        " LEFT JOIN pg_class t ON t.oid = con.conrelid"
        " WHERE i.relname = %s AND i.relkind IN ('i', 'I')",
        [index],
    )
    row = cursor.fetchone()
    if row is None:
        raise LookupError(f"index {index} does not exist; run manage.py migrate")
    table, constraint = row
    if constraint:
        return f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}"'
    return f'DROP INDEX "{index}"'
