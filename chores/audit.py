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


@contextmanager
def acting_as(actor: str, using: str = "default") -> Iterator[None]:
    """Run the block in a transaction whose changes the audit log attributes to `actor`."""
    with transaction.atomic(using=using):
        set_actor(actor, using)
        yield
