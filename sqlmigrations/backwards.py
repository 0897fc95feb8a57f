"""Check a backward plan before the first undo file runs (`migrate <app> <earlier>`).

Django finds an irreversible migration only when it reaches it, after it has undone the
newer ones, and the database is left half-reverted. Here every migration of the plan is
checked first, and the run is refused with every one that cannot be undone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmigrations.django_internals import AmbiguityError, MigrationExecutor, NodeNotFoundError
from sqlmigrations.operations import RunSQLFile
from sqlmigrations.rollback import undo_reason
from sqlmigrations.wrappers import database_operations

Plan = list[tuple[Any, bool]]


@dataclass(frozen=True)
class Blocker:
    """One migration of a backward plan that cannot be undone, and why."""

    migration: str  # app_label.name
    what: str  # the V file, or the operation
    reason: str

    def __str__(self) -> str:
        return f"{self.what} {self.reason}"


def blockers(plan: Plan, placeholders: Mapping[str, str | None]) -> list[Blocker]:
    """Return every migration of the plan's backward steps that cannot be undone."""
    found: list[Blocker] = []
    for migration, backwards in plan:
        if not backwards:
            continue
        label = f"{migration.app_label}.{migration.name}"
        for operation in migration.operations:
            for op in database_operations(operation):
                if isinstance(op, RunSQLFile):
                    _, reason = undo_reason(op.script, placeholders)
                    if reason:
                        found.append(Blocker(label, op.script, reason))
                elif not op.reversible:
                    found.append(Blocker(label, f"{label} ({op.describe()})", "is irreversible"))
    return found


def refusal(plan: Plan, found: list[Blocker]) -> str:
    """Say, in one line, which migrations cannot be undone and how far back is possible."""
    undoing = [m for m, backwards in plan if backwards]
    first = next(m for m in undoing if f"{m.app_label}.{m.name}" == found[0].migration)
    listed = "; ".join(str(b) for b in found)
    return (
        f"{len(found)} of the {len(undoing)} migrations to undo cannot be undone: {listed}. "
        f"Fix that first, or migrate back no further than {first.app_label}.{first.name}."
    )


def requested_plan(
    connection: Any, app_label: str | None, migration_name: str | None
) -> Plan | None:
    """Return the plan `migrate [app_label] [migration_name]` runs, as Django computes it.

    None when the target does not resolve: Django's `migrate` then says why.
    """
    executor = MigrationExecutor(connection)
    loader = executor.loader
    try:
        if app_label and migration_name:
            if migration_name == "zero":
                targets: list[tuple[str, str | None]] = [(app_label, None)]
            else:
                migration = loader.get_migration_by_prefix(app_label, migration_name)
                target = (app_label, migration.name)
                # A partly applied squashed migration stands for the last one it replaces.
                if target not in loader.graph.nodes and target in loader.replacements:
                    target = loader.replacements[target].replaces[-1]
                targets = [target]
        elif app_label:
            targets = [key for key in loader.graph.leaf_nodes() if key[0] == app_label]
        else:
            targets = loader.graph.leaf_nodes()
        return executor.migration_plan(targets)
    except (AmbiguityError, KeyError, LookupError, NodeNotFoundError):
        return None
