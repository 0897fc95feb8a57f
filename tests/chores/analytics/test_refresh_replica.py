"""The refresh reads a real streaming replica and writes the primary (chores.analytics.refresh).

The replica is the test cluster's hot standby (`streaming_replica`); replay is paused to
make it lag, as in tests/dbops/connections/test_replica_routing.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, connections
from django.test import override_settings

from chores.analytics.refresh import refresh
from dbops.connections import replicas
from dbops.connections.routers import REPLICA
from dbops.localdb.replica import LocalReplica
from tests.chores.analytics.history import (
    add_completion,
    expected,
    make_history,
    rollups,
    upper_day,
)
from tests.dbops.connections.replica_alias import BOTH, replica_alias
from tests.dbops.connections.test_replica_routing import _pause, _replayed, _resume, _until

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)
FAST = {"DB_REPLICA_CHECK_INTERVAL": 0, "DB_REPLICA_MAX_LAG": 3600}


@pytest.fixture(scope="module", autouse=True)
def _alias(streaming_replica: LocalReplica, django_db_setup: None) -> Iterator[None]:
    name = settings.DATABASES["default"]["NAME"]
    with replica_alias(streaming_replica.conninfo("app", name)):
        yield


@pytest.fixture
def replica(streaming_replica: LocalReplica, no_margin: None) -> Iterator[LocalReplica]:
    try:
        with override_settings(**FAST):
            yield streaming_replica
    finally:
        connections[REPLICA].close()
        _resume(streaming_replica)
        _replayed(streaming_replica)


def test_it_reads_the_replica_and_the_watermark_stays_behind_what_it_replayed(
    replica: LocalReplica,
) -> None:
    history = make_history(41)
    _replayed(replica)
    _pause(replica)
    household = next(iter(history.zones))
    with connection.cursor() as cursor:
        before = expected(history, upper_day())
        add_completion(
            cursor,
            history,
            household=household,
            member=None,
            completed_at=history.now - timedelta(days=3),
            points=7,
        )
    first = refresh()
    assert first.read_from == REPLICA and first.replica_note == ""
    # Written on the primary, from what the standby had replayed: not the late completion.
    assert rollups() == before
    _resume(replica)
    _replayed(replica)
    second = refresh()
    assert second.read_from == REPLICA
    assert rollups() == expected(history, upper_day())


def test_a_lagging_replica_is_not_read_and_the_result_says_so(replica: LocalReplica) -> None:
    history = make_history(42)
    _replayed(replica)
    with override_settings(DB_REPLICA_MAX_LAG=0.5):
        _pause(replica)
        with connection.cursor() as cursor:
            add_completion(
                cursor,
                history,
                household=next(iter(history.zones)),
                member=None,
                completed_at=history.now - timedelta(days=2),
                points=3,
            )
        time.sleep(0.6)
        _until(lambda: not replicas.usable(REPLICA))
        result = refresh()
    assert result.read_from == "default"
    assert "DB_REPLICA_MAX_LAG (0.5s)" in result.replica_note
    assert rollups() == expected(history, upper_day())
