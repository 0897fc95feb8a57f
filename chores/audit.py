"""Name the actor of a transaction's changes for the audit_log triggers (V10)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections, transaction

SETTING = "choregarden.actor"


def set_actor(actor: str, using: str = "default") -> None:
    """Record `actor` (e.g. "user:<uuid>", "staff:alice") for the current transaction."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [SETTING, actor])


def current_actor(using: str = "default") -> str:
    """The actor recorded for the current transaction ("" when none)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT coalesce(current_setting(%s, true), '')", [SETTING])
        return cursor.fetchone()[0]


@contextmanager
def acting_as(actor: str, using: str = "default") -> Iterator[None]:
    """Run the block in a transaction whose changes the audit log attributes to `actor`."""
    # Inside an outer transaction the setting would outlive the block: it is put back.
    outer = connections[using].in_atomic_block
    with transaction.atomic(using=using):
        previous = current_actor(using) if outer else ""
        set_actor(actor, using)
        yield
        if outer:
            set_actor(previous, using)
