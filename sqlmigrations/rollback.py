"""Undo applied SQL files with their U files, newest first: the deploy handler's rollback.

Two callers: `{"action": "rollback"}` (undo what is above a version) and `{"action":
"migrate", "rollback_on_failure": true}` (undo what the failed run applied). Both check
every file first and refuse, naming each file, when one cannot be undone, so a rollback
that cannot complete is never started. Each file is undone by `migrate <app> <the
wrapper before it>`: Django's backward path, which runs the U file, removes the
flyway_schema_history row and the django_migrations row in one transaction.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmigrations import engine
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.history import HistoryRow
from sqlmigrations.lib.validation import applied_versions, baseline_version
from sqlmigrations.lib.versions import Version
from sqlmigrations.redact import redact

# What `makesqlmigration` writes into a U file it cannot generate (generator.rendering.
# irreversible_statement): kept, it marks the file irreversible on purpose.
IRREVERSIBLE_MARK = re.compile(r"RAISE\s+EXCEPTION\s+'[^']*has no generated undo", re.IGNORECASE)


class RollbackRefused(Exception):
    """A rollback that cannot complete: nothing was undone (the message names each file)."""


@dataclass
class Outcome:
    """What undoing did: the files undone, newest first, and the error that stopped it."""

    undone: list[str] = field(default_factory=list)
    error: str | None = None


def schema_version(rows: Iterable[HistoryRow]) -> str | None:
    """Return the newest applied version (or the baseline's), as Flyway's info shows it."""
    rows = list(rows)
    versions = list(applied_versions(rows))
    baseline = baseline_version(rows)
    if baseline is not None:
        versions.append(baseline)
    newest = max(versions, default=None)
    return str(newest) if newest is not None else None


def undo_reason(
    script: str, placeholders: Mapping[str, str | None] | None
) -> tuple[MigrationFile | None, str | None]:
    """The undo file of V file `script`, and why it cannot undo it (None when it can).

    It has none; it cannot be read (rendered with `placeholders`, or read as it is when
    they are None); or it still holds makesqlmigration's stop (IRREVERSIBLE_MARK).
    """
    undo, reason = engine.undo_file(script)
    if undo is None:
        return None, reason
    try:
        text = undo.render(placeholders) if placeholders is not None else undo.read_text()
    except SqlMigrationError as err:
        return undo, f"its undo file {undo.script} cannot be read: {err.detail}"
    except OSError as err:
        return undo, f"its undo file {undo.script} cannot be read: {err}"
    if IRREVERSIBLE_MARK.search(text):
        return undo, (
            f"its undo file {undo.script} is marked irreversible (it raises 'has no "
            "generated undo'): write the reverse SQL there, or restore from a backup"
        )
    return undo, None


def undo_problem(
    mf: MigrationFile, placeholders: Mapping[str, str | None], wrappers: Mapping[str, Any]
) -> str | None:
    """Say why a V file cannot be undone by its U file, or None when it can."""
    undo, reason = undo_reason(mf.script, placeholders)
    if reason:
        return f"{mf.script} {reason}" if undo is None else f"{mf.script}: {reason}"
    if mf.script not in wrappers:
        return f"{mf.script}: no Django migration wraps it, so Django's records cannot follow"
    return None


def wrappers_by_script() -> dict[str, Any]:
    """Return the Wrapper (sqlmigrations.wrappers) that runs each SQL file, read once."""
    from sqlmigrations.wrappers import find_wrappers

    return {script: w for w in find_wrappers() for script in w.scripts}


def files_above(rows: list[HistoryRow], target: Version) -> list[MigrationFile]:
    """Return the applied V files above target, newest first (the order they are undone)."""
    by_version = {mf.name.version: mf for mf in engine.load_files() if mf.kind == "V"}
    found = []
    for version in sorted(applied_versions(rows), reverse=True):
        if version > target and version in by_version:
            found.append(by_version[version])
    return found


def pending_files(rows: list[HistoryRow]) -> list[MigrationFile]:
    """Return the V files a migrate run would apply (not applied, above any baseline)."""
    applied = applied_versions(rows)
    baseline = baseline_version(rows)
    return [
        mf
        for mf in engine.load_files()
        if mf.kind == "V"
        and mf.name.version is not None
        and mf.name.version not in applied
        and (baseline is None or mf.name.version > baseline)
    ]


def plan(
    rows: list[HistoryRow],
    to_version: str,
    release_floor: str,
    placeholders: Mapping[str, str | None],
) -> list[MigrationFile]:
    """Return the files to undo to reach to_version; raise RollbackRefused with every reason."""
    target, floor = Version(to_version), Version(release_floor)
    applied = applied_versions(rows)
    baseline = baseline_version(rows)
    reasons = []
    if target < floor:
        reasons.append(
            f"to_version {target} is below release_floor {floor}, the version the previous "
            "release needs: roll back no further than it"
        )
    if baseline is not None and target < baseline:
        reasons.append(
            f"to_version {target} is below the baseline {baseline}: the files up to it never "
            "ran here and cannot be undone"
        )
    elif target not in applied and target != baseline:
        known = ", ".join(str(v) for v in sorted(applied)) or "none"
        reasons.append(
            f"to_version {target} is not an applied version (applied: {known}): "
            "name the version the previous release left the schema at"
        )
    files = files_above(rows, target)
    wrappers = wrappers_by_script()
    reasons += [p for mf in files if (p := undo_problem(mf, placeholders, wrappers))]
    if reasons:
        raise RollbackRefused("rollback refused, nothing was undone: " + "; ".join(reasons))
    return files


def precheck_pending(rows: list[HistoryRow], placeholders: Mapping[str, str | None]) -> list[str]:
    """Return why a failed run could not be rolled back: one reason per pending file."""
    wrappers = wrappers_by_script()
    return [p for mf in pending_files(rows) if (p := undo_problem(mf, placeholders, wrappers))]


def undo(connection: Any, files: list[MigrationFile]) -> Outcome:
    """Undo each file, newest first, one `migrate` (one transaction) each; stop at a failure.

    Call it while holding the migration lock on the same connection: `migrate` takes the
    session's advisory lock again (PostgreSQL counts them), so no deploy runs in between.
    """
    from django.core.management import call_command

    from sqlmigrations.management.commands.migrate import Command as Migrate

    outcome = Outcome()
    wrappers = wrappers_by_script()
    for mf in files:
        wrapper = wrappers.get(mf.script)
        if wrapper is None:  # checked before; a file unwrapped since cannot be undone here
            outcome.error = f"undoing {mf.script}: no Django migration wraps it"
            return outcome
        app, target = wrapper.app_label, previous_in_app(wrapper)
        out = io.StringIO()
        try:
            call_command(
                Migrate(), app, target, interactive=False, verbosity=1, stdout=out, stderr=out
            )
        except Exception as err:  # noqa: BLE001 - report it; the caller says what is left
            outcome.error = redact(f"undoing {mf.script}: {describe(err)}")
            return outcome
        outcome.undone.append(mf.script)
    return outcome


def previous_in_app(wrapper: Any) -> str:
    """Return the migration `migrate <app>` goes back to so that only this wrapper is undone.

    Django rolls an app back through the target's children in the same app, so the target
    is the wrapper's parent in its own app (a wrapper's parent may be in another app), or
    "zero" for the app's first migration. Its newer dependants are undone already.
    """
    same_app = [name for app, name in wrapper.dependencies if app == wrapper.app_label]
    return same_app[0] if same_app else "zero"


def describe(err: BaseException) -> str:
    from django.core.management.base import CommandError

    return str(err) if isinstance(err, CommandError) else f"{type(err).__name__}: {err}"
