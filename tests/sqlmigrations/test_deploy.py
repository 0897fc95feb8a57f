"""The deploy-time migration handler, with moto's Secrets Manager and real PostgreSQL (5.6).

Each invocation runs in a process of its own, as a Lambda does: settings come from the
environment, the owner's credentials from the secret (moto, inside that process), and
several processes at once contend for Flyway's advisory lock on the same database.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections import Counter
from typing import Any

import pytest

from tests.sqlproject import SqlProject

REGION = "eu-west-1"
SECRET_ID = "chore/prod/owner"
MIGRATE = {"action": "migrate"}
# Shapes the handler used to read as "migrate" (only validate_only was looked at).
REFUSED: list[Any] = [
    {},
    None,
    [],
    "migrate",
    {"action": "bogus"},
    {"action": "migrate", "dry_run": True},
    {"validate_only": True},
    {"validate_only": False},
    {"action": "validate", "validate_only": "no"},
]


def invoke(
    env: dict[str, str], secret: str | None, events: list[dict[str, Any]], barrier: Any
) -> list[Any]:
    """In a fresh process: create the secret in moto, then call the handler once per event."""
    os.environ.clear()
    os.environ.update(env)
    sys.path[:0] = env["PYTHONPATH"].split(os.pathsep)
    import boto3
    from moto import mock_aws

    with mock_aws():
        if secret is not None:
            client = boto3.client("secretsmanager", region_name=REGION)
            client.create_secret(Name=SECRET_ID, SecretString=secret)
        from sqlmigrations.deploy import handler

        if barrier is not None:
            barrier.wait(timeout=120)
        return [handler(event, None) for event in events]


def _child(queue: Any, *args: Any) -> None:
    try:
        queue.put(("ok", invoke(*args)))
    except BaseException as err:  # noqa: BLE001 - report anything to the test
        queue.put(("crash", repr(err)))


def run_handlers(
    env: dict[str, str],
    secret: str | None,
    *,
    processes: int = 1,
    events: list[dict[str, Any]] | None = None,
) -> list[list[dict[str, Any]]]:
    """Run `processes` handler processes at once; return each one's summaries."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(processes) if processes > 1 else None
    workers = [
        ctx.Process(target=_child, args=(queue, env, secret, events or [MIGRATE], barrier))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    crashes = [detail for kind, detail in results if kind == "crash"]
    assert not crashes, crashes
    return [detail for _, detail in results]


def handler_env(project: SqlProject, **extra: str) -> dict[str, str]:
    """What the Lambda's configuration holds: no URL, the owner's secret id, the CA bundle."""
    env = project.env()
    del env["DATABASE_URL"]
    env.update(
        DJANGO_ENV="production",
        MIGRATION_DB_SECRET_ID=SECRET_ID,
        AWS_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        ENV_FILE="/nonexistent/.env",
        **extra,
    )
    for key in ("SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"):
        env.pop(key, None)
    return env


def owner_secret(project: SqlProject) -> str:
    server = project.server
    return json.dumps(
        {
            "username": server.user,
            "password": server.password,
            "engine": "postgres",
            "host": server.host,
            "port": server.port,
            "dbname": project.database,
        }
    )


def versions(project: SqlProject) -> list[str | None]:
    return [row[1] for row in project.history()]


def with_files(project: SqlProject) -> SqlProject:
    project.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    project.write("V2__create_b.sql", "CREATE TABLE b (id int);\n")
    project.write("R__view_ab.sql", "CREATE OR REPLACE VIEW ab AS SELECT 1 AS one;\n")
    project.sync_wrappers()
    return project


@pytest.fixture
def project(sqlproject: SqlProject) -> SqlProject:
    return with_files(sqlproject)


@pytest.fixture
def empty_project(empty_sqlproject: SqlProject) -> SqlProject:
    """The project on a database without Django's tables, to see that nothing ran."""
    return with_files(empty_sqlproject)


def test_first_invocation_applies_and_the_second_applies_nothing(project: SqlProject) -> None:
    [summaries] = run_handlers(
        handler_env(project),
        owner_secret(project),
        events=[{"action": "validate"}, MIGRATE, MIGRATE],
    )
    checked, first, second = summaries
    assert checked["status"] == "ok", checked
    assert checked["action"] == "validate"
    assert checked["applied"] == []
    assert checked["pending"] == 2  # V1 and V2 (Django's own are in the template); nothing applied
    assert first["action"] == "migrate"
    assert first["status"] == "ok", first
    assert first["applied"] == ["V1__create_a.sql", "V2__create_b.sql", "R__view_ab.sql"]
    assert first["pending"] == 0
    assert first["errors"] == []
    assert isinstance(first["duration_ms"], int)
    assert json.loads(json.dumps(first)) == first
    assert second["status"] == "ok", second
    assert second["applied"] == []
    assert second["django_migrations"] == []
    assert second["pending"] == 0
    assert versions(project) == ["1", "2", None]


def test_concurrent_invocations_apply_each_file_once(project: SqlProject) -> None:
    # A slow first file keeps the lock long enough for the others to queue behind it.
    project.write("V1__create_a.sql", "CREATE TABLE a (id int);\nSELECT pg_sleep(0.5);\n")
    project.sync_wrappers()
    results = run_handlers(handler_env(project), owner_secret(project), processes=3)
    summaries = [summary for [summary] in results]
    assert [s["status"] for s in summaries] == ["ok"] * 3, summaries
    applied = Counter(script for s in summaries for script in s["applied"])
    assert applied == {"V1__create_a.sql": 1, "V2__create_b.sql": 1, "R__view_ab.sql": 1}
    assert all(s["pending"] == 0 for s in summaries)
    assert versions(project) == ["1", "2", None]


def test_a_missing_secret_is_an_error_summary(
    project: SqlProject, capfd: pytest.CaptureFixture[str]
) -> None:
    [[summary]] = run_handlers(handler_env(project), None)
    assert summary["status"] == "error"
    assert summary["applied"] == []
    [error] = summary["errors"]
    assert f"'{SECRET_ID}'" in error
    assert "does not exist" in error
    assert "MIGRATION_DB_SECRET_ID" in error
    assert "Traceback" not in error
    assert project.query("SELECT to_regclass('flyway_schema_history')") == [(None,)]
    assert project.server.password not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"MIGRATION_DB_SECRET_ID": None}, "MIGRATION_DB_SECRET_ID is not set"),
        ({"DB_SSLROOTCERT": None}, "DB_SSLROOTCERT is not set in production"),
    ],
)
def test_configuration_errors_are_error_summaries(
    project: SqlProject, change: dict[str, str | None], expected: str
) -> None:
    env = handler_env(project)
    env["DATABASE_URL"] = project.server.url(project.database)  # a password to leak
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    [[summary]] = run_handlers(env, owner_secret(project))
    assert summary["status"] == "error"
    assert expected in summary["errors"][0]
    assert "Traceback" not in summary["errors"][0]
    assert project.server.password not in json.dumps(summary)


def test_an_edited_applied_file_stops_the_run_before_anything_applies(
    project: SqlProject,
) -> None:
    [[first]] = run_handlers(handler_env(project), owner_secret(project))
    assert first["status"] == "ok", first
    project.write("V1__create_a.sql", "CREATE TABLE a (id bigint);\n")
    project.write("V3__create_c.sql", "CREATE TABLE c (id int);\n")
    project.sync_wrappers()
    [[summary]] = run_handlers(handler_env(project), owner_secret(project))
    assert summary["status"] == "invalid"
    assert any("V1__create_a.sql" in error for error in summary["errors"]), summary
    assert summary["applied"] == []
    assert summary["pending"] == 1
    assert versions(project) == ["1", "2", None]


def test_a_failing_file_is_reported_with_what_applied_before_it(
    project: SqlProject, capfd: pytest.CaptureFixture[str]
) -> None:
    project.write("V3__broken.sql", "CREATE TABLE c (id int);\nSELEC 1;\n")
    project.sync_wrappers()
    [[summary]] = run_handlers(handler_env(project), owner_secret(project))
    assert summary["status"] == "failed", summary
    assert summary["applied"] == ["V1__create_a.sql", "V2__create_b.sql"]
    assert summary["pending"] >= 1  # V3, and Django's migrations that would have followed
    [error] = summary["errors"]
    assert "V3__broken.sql" in error
    assert "Traceback" not in error
    output = capfd.readouterr()
    assert project.server.password not in output.out + output.err + json.dumps(summary)
    assert versions(project) == ["1", "2"]


def test_refused_events_do_nothing_and_say_what_to_send(empty_project: SqlProject) -> None:
    """Each shape that used to migrate is refused, and the database is left as it was."""
    [summaries] = run_handlers(
        handler_env(empty_project),
        owner_secret(empty_project),
        events=[*REFUSED, {"action": "validate"}],
    )
    *refused, validated = summaries
    for event, summary in zip(REFUSED, refused, strict=True):
        assert summary["status"] == "error", (event, summary)
        assert summary["action"] is None
        assert summary["applied"] == [] and summary["django_migrations"] == []
        [error] = summary["errors"]
        assert error.startswith("event refused, nothing was done: "), error
        assert '"migrate"' in error or '"validate"' in error, error  # what to send instead
    # Nothing ran: no history table, no Django tables; a valid event still works after them.
    assert empty_project.query("SELECT to_regclass('flyway_schema_history')") == [(None,)]
    assert empty_project.query("SELECT to_regclass('django_migrations')") == [(None,)]
    assert validated["status"] == "ok", validated
    assert validated["pending"] > 2


def test_a_refused_event_reads_no_secret_and_opens_no_connection(project: SqlProject) -> None:
    """No secret exists and the URL points at a closed port: only the event is judged."""
    env = handler_env(project, DB_HOST="127.0.0.1", DB_PORT="1")
    [summaries] = run_handlers(env, None, events=[{"action": "validate"}, *REFUSED])
    first, *refused = summaries
    assert "does not exist" in first["errors"][0]  # a valid event does go for the secret
    for summary in refused:
        [error] = summary["errors"]
        assert error.startswith("event refused, nothing was done: "), error
        assert "secret" not in error and "connect" not in error


def test_info_reports_every_file_state_without_applying(project: SqlProject) -> None:
    [[before, applied, after]] = run_handlers(
        handler_env(project),
        owner_secret(project),
        events=[{"action": "info"}, MIGRATE, {"action": "info"}],
    )
    assert before["status"] == "ok", before
    assert before["schema_version"] is None
    states = {m["script"]: m["state"] for m in before["migrations"]}
    assert states == {
        "V1__create_a.sql": "Pending",
        "V2__create_b.sql": "Pending",
        "R__view_ab.sql": "Pending",
    }
    assert before["applied"] == []
    assert applied["status"] == "ok", applied
    assert after["schema_version"] == "2"
    assert {m["script"]: m["state"] for m in after["migrations"]} == {
        "V1__create_a.sql": "Success",
        "V2__create_b.sql": "Success",
        "R__view_ab.sql": "Success",
    }
    assert after["pending"] == 0
