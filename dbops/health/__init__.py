"""Database health checks in the style of PgHero, shared by the admin page and `dbhealth`.

Each check reads PostgreSQL's statistics views and returns a CheckResult: the figures,
the thresholds they were judged against, a status and the detail rows behind it. The
checks only read; they run on the connection alias given (a read replica for reporting
when one is configured), in one read-only transaction with a statement timeout. The
`replica` check alone connects to the `replica` alias itself, whichever alias is given:
a replica's health is seen from its own side (dbops.health.replication).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, connections, transaction

from dbops.connections.errors import DatabaseUnavailable, one_line
from dbops.connections.replicas import ReplicaIsPrimary
from dbops.health.activity import (
    check_blocked_queries,
    check_connections,
    check_long_running_queries,
)
from dbops.health.backups import check_backup_replica
from dbops.health.base import (
    CRITICAL,
    DEFAULT_THRESHOLDS,
    INFO,
    OK,
    SEVERITY,
    WARNING,
    CheckResult,
    fmt,
    third_party_tables,
    thresholds,
)
from dbops.health.indexes import (
    check_duplicate_indexes,
    check_invalid_indexes,
    check_missing_indexes,
    check_unused_indexes,
)
from dbops.health.replication import (
    check_replica,
    check_replication,
    check_replication_slots,
)
from dbops.health.statements import ENABLE_PG_STAT_STATEMENTS, check_slow_queries
from dbops.health.storage import (
    check_cache_hit_ratio,
    check_dead_tuples,
    check_index_sizes,
    check_sequences,
    check_table_sizes,
)
from sqlmigrations.redact import redact

__all__ = [
    "CANNOT_CHECK",
    "CHECKS",
    "CRITICAL",
    "DEFAULT_THRESHOLDS",
    "ENABLE_PG_STAT_STATEMENTS",
    "INFO",
    "OK",
    "SEVERITY",
    "WARNING",
    "CheckResult",
    "fmt",
    "run_checks",
    "third_party_tables",
    "thresholds",
    "unreachable",
    "worst_status",
]

logger = logging.getLogger(__name__)

# What stops every check of a database: no connection, or (the `replica` alias) a
# connection the backend refused because the server is a primary.
CANNOT_CHECK = (DatabaseError, ReplicaIsPrimary)

CHECKS: dict[str, Callable[[Any], CheckResult]] = {
    "connections": check_connections,
    "long_running_queries": check_long_running_queries,
    "blocked_queries": check_blocked_queries,
    "cache_hit_ratio": check_cache_hit_ratio,
    "table_sizes": check_table_sizes,
    "index_sizes": check_index_sizes,
    "invalid_indexes": check_invalid_indexes,
    "unused_indexes": check_unused_indexes,
    "duplicate_indexes": check_duplicate_indexes,
    "missing_indexes": check_missing_indexes,
    "sequences": check_sequences,
    "dead_tuples": check_dead_tuples,
    "slow_queries": check_slow_queries,
    "replication": check_replication,
    "replication_slots": check_replication_slots,
    "replica": check_replica,
    "backup_replica": check_backup_replica,
}


def run_checks(using: str = "default", names: list[str] | None = None) -> list[CheckResult]:
    """Run the named checks (all by default) on connection `using`; one failing check
    is reported as a warning and does not stop the others."""
    for name in names or []:
        if name not in CHECKS:
            raise ValueError(f"unknown check {name!r}: use {', '.join(CHECKS)}")
    timeout = int(thresholds("statement_timeout_ms")["value"])
    connection = connections[using]
    results = []
    own_transaction = not connection.in_atomic_block
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if own_transaction:
            # Our own transaction (not a caller's): make sure nothing in it can write.
            cursor.execute("SET TRANSACTION READ ONLY")
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout)])
        # Statistics views are snapshotted per transaction: start from fresh figures.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        for name, check in CHECKS.items():
            if names and name not in names:
                continue
            try:
                with transaction.atomic(using=using):
                    results.append(check(cursor))
            except DatabaseError as err:
                logger.warning("health check %s failed: %s", name, redact(str(err)))
                results.append(
                    CheckResult(
                        name=name,
                        title=name.replace("_", " ").capitalize(),
                        status=WARNING,
                        summary=f"The check could not run: {redact(str(err)).strip()}",
                        hint="The reporting role may lack privileges: GRANT pg_monitor TO it.",
                    )
                )
    return results


def unreachable(using: str, err: DatabaseError | ReplicaIsPrimary) -> CheckResult:
    """Return the connections check of a database the checks could not query: critical."""
    if isinstance(err, DatabaseUnavailable | ReplicaIsPrimary):
        summary = str(err)  # one line naming the setting (dbops.connections)
    else:
        summary = f"cannot query the database {using!r}: {one_line(redact(str(err)))}"
    return CheckResult(
        name="connections",
        title="Connections",
        status=CRITICAL,
        summary=summary,
        hint="No other check could run (docs/operations.md, 'Connection problems').",
    )


def worst_status(results: list[CheckResult]) -> str:
    worst = max(results, key=lambda r: r.severity, default=None)
    return worst.status if worst is not None and worst.severity else OK
