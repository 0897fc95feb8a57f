"""Deploy-time migrations: the AWS Lambda entry point `sqlmigrations.deploy.handler`.

The event names the action (sqlmigrations.deploy_event; anything else is refused before any
database work). It logs in as the owner role with the secret named by
MIGRATION_DB_SECRET_ID, validates the files against the history, then, for "migrate",
runs `migrate` in process (Flyway's advisory lock makes concurrent invocations wait, then
find nothing to do), and for "rollback" undoes applied files with their U files
(sqlmigrations.rollback). It returns a JSON summary and never raises: errors are in the
summary, redacted, and logged. See docs/deploy.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import time
from typing import TYPE_CHECKING, Any

from sqlmigrations.deploy_event import DeployRequest, EventError, parse_event
from sqlmigrations.redact import redact

if TYPE_CHECKING:
    from sqlmigrations.applying import MigrateResult
    from sqlmigrations.lib.history import HistoryRow

logger = logging.getLogger("sqlmigrations.deploy")
_django_ready = False


def _setup() -> None:
    """Set Django up once per process (a warm Lambda keeps it)."""
    global _django_ready
    if _django_ready:
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "choregarden.settings")
    os.environ.setdefault("DJANGO_ENV", "production")
    # A migration run signs nothing and serves no HTTP; the production settings still ask
    # for both, so a function without them gets a throwaway key and a local host name.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("ALLOWED_HOSTS", "localhost")
    import django

    django.setup()
    _django_ready = True


def handler(event: object, context: Any) -> dict[str, Any]:
    """Do what the event asks; return {status, action, applied, pending, errors, ...}."""
    started = time.monotonic()
    summary: dict[str, Any] = {
        "status": "error",
        "action": None,
        "applied": [],
        "django_migrations": [],
        "pending": None,
        "duration_ms": 0,
        "errors": [],
    }
    try:
        request = parse_event(event)
    except EventError as err:
        # Refused before Django, the secret or the database: nothing was done.
        summary["errors"].append(f"event refused, nothing was done: {err}")
        request = None
    if request is not None:
        summary["action"] = request.action
        try:
            _setup()
            summary.update(run(request))
        except Exception as err:  # noqa: BLE001 - the handler reports errors, it does not raise
            summary["errors"].append(redact(describe(err)))
        finally:
            _close_connections()
    summary["duration_ms"] = round((time.monotonic() - started) * 1000)
    if summary["errors"]:
        logger.error("Deploy migration %s: %s", summary["status"], json.dumps(summary))
    else:
        logger.info("Deploy migration %s: %s", summary["status"], json.dumps(summary))
    return summary


def _close_connections() -> None:
    """Close the session: a frozen Lambda's idle connection may be dead by the next call."""
    if not _django_ready:
        return
    from django.db import connections

    try:
        connections.close_all()
    except Exception:  # noqa: BLE001 - closing a broken connection must not hide the summary
        logger.warning("Could not close the database connection cleanly.")


def describe(err: BaseException) -> str:
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management.base import CommandError
    from django.db import OperationalError

    # A failed connection's message already says where, which setting and what to do.
    if isinstance(err, (CommandError, ImproperlyConfigured, OperationalError)):
        return str(err)
    return f"{type(err).__name__}: {err}"


def run(request: DeployRequest) -> dict[str, Any]:
    """Carry out an accepted request as the owner role."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connections

    from sqlmigrations import engine, maintenance

    if not getattr(settings, "MIGRATION_DB_SECRET_ID", ""):
        raise ImproperlyConfigured(
            "MIGRATION_DB_SECRET_ID is not set: set it to the name or ARN of the Secrets "
            "Manager secret holding the owner role's credentials (RDS JSON)."
        )
    connection = connections[engine.migration_alias()]
    if request.action == "info":
        # The states themselves show an edited or missing file: info works on any history.
        found = maintenance.info(connection)
        version = found.schema_version
        return {
            "status": "ok",
            "schema_version": str(version) if version is not None else None,
            "migrations": [i.as_json() for i in found.migrations],
            "pending": pending_count(connection),
        }
    # Validate before migrate takes the lock, so that a bad deploy changes nothing and the
    # summary lists every problem; migrate validates again under the lock.
    validation = engine.read_and_validate(connection)
    problems = validation.problems
    if problems:
        return {
            "status": "invalid",
            "errors": [redact(str(p)) for p in problems],
            "pending": pending_count(connection),
        }
    if request.action == "validate":
        return {"status": "ok", "pending": pending_count(connection)}

    if request.action == "rollback":
        return rollback(connection, request)
    return migrate(connection, request, validation.rows)


def migrate(connection: Any, request: DeployRequest, rows: list[HistoryRow]) -> dict[str, Any]:
    """Apply what is pending; with rollback_on_failure, undo this run's files on a failure.

    `rows` is the history as validated just before.
    """
    from django.core.management import call_command

    from sqlmigrations import engine
    from sqlmigrations import rollback as undoing
    from sqlmigrations.management.commands.migrate import Command as Migrate

    back_out = bool(request.options.get("rollback_on_failure"))
    started_from = undoing.schema_version(rows)
    if back_out:
        # A rollback that cannot complete must not be promised: refuse before applying.
        with connection.cursor() as cursor:
            values = engine.placeholders_for(cursor)
        reasons = undoing.precheck_pending(rows, values)
        if reasons:
            return {
                "status": "refused",
                "schema_version": started_from,
                "started_from": started_from,
                "pending": pending_count(connection),
                "errors": [
                    redact(
                        "rollback_on_failure refused, nothing was applied: " + "; ".join(reasons)
                    )
                ],
            }
    command = Migrate()
    out = io.StringIO()
    errors: list[str] = []
    summary: dict[str, Any] = {}
    # With rollback_on_failure the lock is held from the run through its undo, so no other
    # deploy comes in between (migrate takes the same session lock again inside).
    with engine.migration_lock(connection) if back_out else contextlib.nullcontext():
        try:
            call_command(command, interactive=False, verbosity=1, stdout=out, stderr=out)
        except Exception as err:  # noqa: BLE001 - report what did apply before the failure
            errors.append(redact(describe(err)))
        result = command.result  # complete up to a failure
        if errors and back_out:
            summary = back_out_run(connection, result, errors)
    with connection.cursor() as cursor:
        after = undoing.schema_version(engine.history_for(cursor).rows())
    return {
        "status": "failed" if errors else "ok",
        "applied": result.scripts,
        "django_migrations": result.django_migrations,
        "started_from": started_from,
        "schema_version": after,
        "pending": pending_count(connection),
        "errors": errors,
        **summary,
    }


def back_out_run(connection: Any, result: MigrateResult, errors: list[str]) -> dict[str, Any]:
    """Undo, newest first, the V files a failed run applied; report what is left applied."""
    from sqlmigrations import engine
    from sqlmigrations import rollback as undoing

    files = {mf.script: mf for mf in engine.load_files()}
    ran = [files[a.script] for a in result.files if a.outcome == "applied" and a.script in files]
    with connection.cursor() as cursor:
        failed_rows = [r.script for r in engine.history_for(cursor).rows() if not r.success]
    if failed_rows:
        # A non-transactional file stopped midway: what it ran stays, and undoing below it
        # would bury that. Clean it up by hand first (docs/deploy.md, "Rolling back").
        return {
            "status": "failed_rollback_incomplete",
            "undone": [],
            "left_applied": [mf.script for mf in ran],
            "errors": [
                *errors,
                f"not rolled back: {', '.join(failed_rows)} ran outside a transaction and "
                "left statements and a failed history row behind; clean up what it ran, run "
                "`manage.py sqlmigrations repair`, then roll back with "
                '{"action": "rollback"}',
            ],
        }
    outcome = undoing.undo(connection, list(reversed(ran)))
    left = [mf.script for mf in ran if mf.script not in outcome.undone]
    if outcome.error is not None:
        errors.append(outcome.error)
    return {
        "status": "failed_rollback_incomplete" if left else "failed_rolled_back",
        "undone": outcome.undone,
        "left_applied": left,
    }


def rollback(connection: Any, request: DeployRequest) -> dict[str, Any]:
    """Undo the applied files above to_version, newest first, each in its own transaction."""
    from sqlmigrations import engine
    from sqlmigrations import rollback as undoing

    summary: dict[str, Any] = {"undone": [], "errors": []}
    with engine.migration_lock(connection) as (cursor, history):
        rows = history.rows()
        try:
            files = undoing.plan(
                rows,
                request.options["to_version"],
                request.options["release_floor"],
                engine.placeholders_for(cursor),
            )
        except undoing.RollbackRefused as err:
            return {
                **summary,
                "status": "refused",
                "schema_version": undoing.schema_version(rows),
                "errors": [redact(str(err))],
            }
        if request.options.get("dry_run"):
            return {
                **summary,
                "status": "ok",
                "would_undo": [mf.script for mf in files],
                "schema_version": undoing.schema_version(rows),
            }
        outcome = undoing.undo(connection, files)
        after = undoing.schema_version(history.rows())
    return {
        "status": "failed" if outcome.error else "rolled_back",
        "undone": outcome.undone,
        "left_applied": [mf.script for mf in files if mf.script not in outcome.undone],
        "schema_version": after,
        "pending": pending_count(connection),
        "errors": [outcome.error] if outcome.error else [],
    }


def pending_count(connection: Any) -> int:
    """Count the migrations (SQL wrappers and Django's own) not applied yet."""
    from sqlmigrations.django_internals import MigrationExecutor

    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
