"""The "replica" alias for a test module, registered before Django's per-test set-up.

Django's test cases refuse connections to aliases that are not in their `databases`, and
check those when each test starts: the alias must exist before the module's first test,
hence a module-scoped fixture. TEST["MIRROR"] keeps Django from emptying it after a
transactional test (a standby is read-only; the primary's flush reaches it by replay).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connections

from dbops.connections import replicas
from dbops.connections.config import REPLICA_KEY
from dbops.connections.routers import REPLICA
from tests.helpers import direct_settings

BOTH = ["default", REPLICA]


@contextmanager
def replica_alias(info: Any) -> Iterator[dict[str, Any]]:
    """Register "replica" as settings make it (REPLICA_KEY), connecting as `info` says."""
    config = direct_settings(settings.DATABASES["default"], info)
    # A read that waits on replay (a lock the standby replays) fails the test, not hangs it.
    config["OPTIONS"]["options"] = "-c statement_timeout=20s"
    config["TEST"] = {**config.get("TEST", {}), "MIRROR": "default"}
    config[REPLICA_KEY] = True
    config["SETTING"] = "REPLICA_DATABASE_URL"
    settings.DATABASES[REPLICA] = config  # the same dict as connections.settings
    replicas.forget()
    try:
        yield config
    finally:
        connections[REPLICA].close()
        del connections[REPLICA]
        del settings.DATABASES[REPLICA]
        replicas.forget()
