"""Each query pattern of docs/query-patterns.md uses its index on analyzed data (issue 4.4).

No planner switches (enable_seqscan = off would prove only that an index *can* serve the
query): the tables hold enough rows for an index to be the cheaper plan, the owner runs
VACUUM ANALYZE, and the plan of the SQL the ORM function renders must name the index.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection

from bench import data
from bench.query_patterns import drop_statement, indexes_used, patterns

PROFILES, HOUSEHOLDS, COMPLETIONS, NOTIFICATIONS = 1_500, 500, 50_000, 10_000


def completion_partitions(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'completions'::regclass"
    ).fetchall()
    return {name for (name,) in rows}


@pytest.fixture
def owner(pg_server: Any, transactional_db: None) -> Iterator[psycopg.Connection[Any]]:
    """The owner role on the test database (the tests run as the application role)."""
    with psycopg.connect(**pg_server.conninfo(connection.settings_dict["NAME"])) as conn:
        conn.autocommit = True
        yield conn


@pytest.fixture
def loaded(owner: psycopg.Connection[Any]) -> Iterator[None]:
    """Committed bench data, VACUUM ANALYZEd; transactional_db empties the tables after."""
    before = completion_partitions(owner)
    with data.audit_off(owner):
        data.load_profiles(owner, PROFILES)
        data.load_households(owner, HOUSEHOLDS)
        data.load_assignments(owner, HOUSEHOLDS)
        data.load_completions(owner, COMPLETIONS, HOUSEHOLDS)
        data.load_notifications(owner, NOTIFICATIONS, HOUSEHOLDS)
    owner.execute("VACUUM ANALYZE users, households, household_members, tasks, assignments")
    owner.execute("VACUUM ANALYZE completions, notifications")
    yield
    for name in sorted(completion_partitions(owner) - before):  # the months the load added
        owner.execute(f'DROP TABLE "{name}"')


def test_each_query_pattern_uses_its_index(loaded: None) -> None:
    plans = {}
    with connection.cursor() as cursor:
        for pattern in patterns():
            used = indexes_used(cursor, *pattern.sql(pattern.samples(1)[0]))
            plans[pattern.key] = (pattern.index, used)
    assert {key: index for key, (index, used) in plans.items() if index in used} == {
        key: index for key, (index, _) in plans.items()
    }, plans


def test_an_index_owned_by_a_constraint_is_dropped_with_the_constraint(db: None) -> None:
    with connection.cursor() as cursor:
        assert drop_statement(cursor, "users_cognito_sub_key") == (
            'ALTER TABLE "users" DROP CONSTRAINT "users_cognito_sub_key"'
        )
        assert drop_statement(cursor, "notifications_unread") == (
            'DROP INDEX "notifications_unread"'
        )
        with pytest.raises(LookupError, match="no_such_index does not exist"):
            drop_statement(cursor, "no_such_index")
