"""Send read-only reporting queries to the read replica, and every write to the primary (D5, D9).

Reporting reads are the queries made inside `with reporting():` (health checks, analytics)
and reads of the models listed in settings.REPORTING_MODELS ("app_label" or
"app_label.ModelName"). They go to the "replica" database only while it is fit for them
(dbops.connections.replicas: a standby, reachable, at most DB_REPLICA_MAX_LAG behind), and
not for a client that wrote in the last DB_READ_YOUR_WRITES seconds (read-your-writes,
dbops.web.replicarouting): its own change may not have reached the replica yet. Without a
"replica" database everything goes to "default".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from dbops.connections import replicas

REPLICA = replicas.REPLICA
_reporting: ContextVar[bool] = ContextVar("dbops_reporting", default=False)
# The primary serves every read: the client wrote recently, or the replica failed mid-request.
_pinned: ContextVar[bool] = ContextVar("dbops_pinned_to_primary", default=False)
# Set when this request (or task) wrote through the ORM: its later reads stay on the primary.
_wrote: ContextVar[list[bool] | None] = ContextVar("dbops_wrote", default=None)


def reporting_alias() -> str:
    """Return the alias that serves reporting reads now: the replica if fit, else default."""
    if REPLICA not in settings.DATABASES or _pinned.get() or wrote():
        return DEFAULT_DB_ALIAS
    return REPLICA if replicas.usable(REPLICA) else DEFAULT_DB_ALIAS


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


@contextmanager
def primary_only() -> Iterator[None]:
    """Serve every read of this block from the primary (read-your-writes, a failed replica)."""
    token = _pinned.set(True)
    try:
        yield
    finally:
        _pinned.reset(token)


@contextmanager
def tracking_writes() -> Iterator[list[bool]]:
    """Note the ORM writes of this block (a request); the list is non-empty after one."""
    marks: list[bool] = []
    token = _wrote.set(marks)
    try:
        yield marks
    finally:
        _wrote.reset(token)


def wrote() -> bool:
    return bool(_wrote.get())


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
        marks = _wrote.get()
        if marks is not None and not marks:
            marks.append(True)
        # Explicit: Django would otherwise save an object read from the replica back to it.
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        both = {obj1._state.db, obj2._state.db}
        return True if both <= {DEFAULT_DB_ALIAS, REPLICA} else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if db == REPLICA else None
