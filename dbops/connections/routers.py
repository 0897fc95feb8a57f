"""Send read-only reporting queries to the read replica, and every write to the primary (D5).

Reporting reads are the queries made inside `with reporting():` (health checks, analytics)
and reads of the models listed in settings.REPORTING_MODELS ("app_label" or
"app_label.ModelName"). Without a "replica" database everything goes to "default".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

REPLICA = "replica"
_reporting: ContextVar[bool] = ContextVar("dbops_reporting", default=False)


def reporting_alias() -> str:
    """Return the alias that serves reporting reads: the replica if configured, else default."""
    return REPLICA if REPLICA in settings.DATABASES else DEFAULT_DB_ALIAS


def reporting_connection() -> BaseDatabaseWrapper:
    """Return the connection for raw reporting SQL (read-only on the replica)."""
    return connections[reporting_alias()]


@contextmanager
def reporting() -> Iterator[str]:
    """Route the ORM reads of this block to the reporting alias, which it yields."""
    token = _reporting.set(True)
    try:
        yield reporting_alias()
    finally:
        _reporting.reset(token)


def is_reporting_model(model: Any) -> bool:
    marked = {label.lower() for label in getattr(settings, "REPORTING_MODELS", ())}
    return model._meta.app_label.lower() in marked or model._meta.label_lower in marked


class ReplicaRouter:
    """Reporting reads to the replica; writes, and the migrations, to the primary only."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        if _reporting.get() or is_reporting_model(model):
            return reporting_alias()
        return None  # Django's default: the instance's database, else "default"

    def db_for_write(self, model: Any, **hints: Any) -> str:
        # Explicit: Django would otherwise save an object read from the replica back to it.
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        both = {obj1._state.db, obj2._state.db}
        return True if both <= {DEFAULT_DB_ALIAS, REPLICA} else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db == REPLICA else None
