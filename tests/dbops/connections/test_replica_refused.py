"""A replica URL that points at the primary is refused, never read from (D9)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connections
from django.test import override_settings

from dbops.connections import replicas
from dbops.connections.routers import REPLICA, reporting_alias
from tests.dbops.connections.replica_alias import BOTH, replica_alias

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH)


@pytest.fixture(scope="module", autouse=True)
def _alias(pg_server: Any, django_db_setup: None) -> Iterator[None]:
    name = settings.DATABASES["default"]["NAME"]
    with replica_alias(pg_server.conninfo(name, role="app")):  # the primary's own address
        yield


def test_a_replica_url_at_the_primary_is_refused() -> None:
    with pytest.raises(replicas.ReplicaIsPrimary, match="REPLICA_DATABASE_URL points at"):
        connections[REPLICA].ensure_connection()
    with pytest.raises(SystemCheckError, match=r"dbops.E030.*REPLICA_DATABASE_URL"):
        call_command("check", databases=[REPLICA])
    with override_settings(DB_REPLICA_CHECK_INTERVAL=0):
        assert reporting_alias() == "default"  # never read from under the replica's name
