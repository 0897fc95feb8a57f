"""The exit codes of docs/operations.md are a contract: each is driven and checked here.

The table "Exit codes" in docs/operations.md lists, for each command, when it exits 1, 2
and 3. Every cell has a scenario below (or, where setting the failure up takes a whole
project, the test elsewhere that drives it), and each scenario runs `manage.py` as an
operator would and checks the code and the one line that says why.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, run_manage
from tests.sqlproject import SqlProject
from tests.test_database_unavailable import DOWN_URL, base_env

DOCS = REPO / "docs" / "operations.md"


@dataclass(frozen=True)
class Scenario:
    """One documented failure: where to run, what to run, the code and the line it prints."""

    command: str  # as the table names it: `migrate`, or "any command"
    code: int
    argv: list[str]
    line: str  # the start of the line that says why (a regular expression)
    env: str = "none"  # none: no database; down: a closed port; db: the test database
    extra: dict[str, str] = field(default_factory=dict)
    stream: str = "stderr"  # where the line is: the last line of stderr, or of stdout
    files: dict[str, str] = field(default_factory=dict)  # SQL files of a throwaway project
    before: list[str] = field(default_factory=list)  # a command to run first, e.g. migrate


# A weekday neither today nor yesterday (UTC): a window on it cannot hold the present.
LATER_DAY = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[(datetime.now(UTC).weekday() + 3) % 7]
HEALTH_SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.dbops.health.thresholds_settings"}
PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "k" * 30 + "0123456789abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "admin.example.com",
    "DB_SSLMODE": "verify-full",
    "DB_SSLROOTCERT": str(REPO / "pyproject.toml"),  # a readable file; never used to connect
}
SCENARIOS = {
    "unreachable": Scenario(
        "any command",
        1,
        ["showmigrations"],
        r"CommandError: cannot connect to the database app@127\.0\.0\.1:1/choregarden "
        r"\(DATABASE_URL\): Connection refused\.",
        env="down",
    ),
    "setting refused": Scenario(
        "any command",
        2,
        ["check"],
        r"error: DB_SSLMODE='sometimes' is not a libpq sslmode: use one of disable,",
        extra={"DB_SSLMODE": "sometimes"},
    ),
    "health warning": Scenario(
        "dbhealth",
        1,
        ["dbhealth", "--check", "connections", "--fail-on", "warning"],
        r"1 checks: 0 ok, 0 info, 1 warning, 0 critical\. Overall: warning\.",
        env="db",
        extra={**HEALTH_SETTINGS, "HEALTH_TEST_LEVEL": "warning"},
        stream="stdout",
    ),
    "cloudwatch refused": Scenario(
        "dbhealth",
        1,
        ["dbhealth", "--check", "connections", "--cloudwatch"],
        r"CommandError: cannot publish to CloudWatch: .*cloudwatch:PutMetricData",
        env="db",
        extra={
            "AWS_ENDPOINT_URL_CLOUDWATCH": "http://127.0.0.1:1",
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
    ),
    "health critical": Scenario(
        "dbhealth",
        2,
        ["dbhealth", "--check", "connections", "--fail-on", "critical"],
        r"1 checks: 0 ok, 0 info, 0 warning, 1 critical\. Overall: critical\.",
        env="db",
        extra={**HEALTH_SETTINGS, "HEALTH_TEST_LEVEL": "critical"},
        stream="stdout",
    ),
    "health record refused": Scenario(
        "dbhealth",
        1,
        ["dbhealth", "--record"],
        r"CommandError: cannot record a health snapshot without the table_sizes check: "
        r"The check could not run: LIMIT must not be negative\. Nothing was recorded",
        env="db",
        extra={
            "DJANGO_SETTINGS_MODULE": "tests.dbops.health.history_settings",
            "LOG_LEVEL": "ERROR",  # the failed check's warning would come first
        },
    ),
    "alarms refused": Scenario(
        "dbalarms",
        1,
        ["dbalarms", "sync"],
        r"CommandError: cannot list the alarms named choregarden-test-\*: Could not connect to "
        r"the endpoint URL: .*; check AWS_REGION and the network\.",
        extra={
            "AWS_ENDPOINT_URL_CLOUDWATCH": "http://127.0.0.1:1",
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
    ),
    "health unreachable": Scenario(
        "dbhealth",
        2,
        ["dbhealth", "--json"],
        r"CommandError: cannot connect to the database app@127\.0\.0\.1:1/choregarden",
        env="down",
    ),
    "no binaries": Scenario(
        "devdb",
        1,
        ["devdb", "start"],
        r"CommandError: PG_BINDIR=.* does not contain initdb, pg_ctl and postgres",
        extra={"PG_BINDIR": str(REPO / "docs")},
    ),
    "not running": Scenario("devdb", 3, ["devdb", "status"], r" running: False", stream="stdout"),
    "misplaced option": Scenario(
        "devdb",
        2,
        ["devdb", "stop", "--with-replica"],
        r"CommandError: --with-replica does not go with `devdb stop`",
    ),
    "file failed": Scenario(
        "migrate",
        1,
        ["migrate", "--no-input"],
        r"CommandError: V2__broken\.sql:2: migration failed, line 2: ERROR: syntax error",
        env="project",
        files={"V1__create_a.sql": "CREATE TABLE a (id int);\n", "V2__broken.sql": "\nSELEC 1;\n"},
    ),
    "dangerous operation": Scenario(
        "migrate",
        1,
        ["migrate", "--no-input"],
        r"CommandError: V2__rename\.sql:1: 1 operation in pending migrations would lock or "
        r"rewrite a large table or break the running code, so nothing was applied:",
        env="project",
        files={
            "V1__create_a.sql": "CREATE TABLE a (id int);\n",
            "V2__rename.sql": "ALTER TABLE a RENAME TO b;\n",
        },
    ),
    "validate problem": Scenario(
        "sqlmigrations",
        1,
        ["sqlmigrations", "validate"],
        r"CommandError: Validation failed: 1 problem:",
        env="project",
        files={"V1__create_a.sql": "CREATE TABLE a (id int);\n", "V3__create_c.sql": "SELECT 1;\n"},
    ),
    "generator refused": Scenario(
        "makesqlmigration",
        1,
        ["makesqlmigration", "chores", "AddThing", "--empty", "--dry-run"],
        r"CommandError: migration name 'AddThing' is not snake_case",
        env="down",  # a database is configured (system check dbops.E001), never reached
    ),
    "docs out of date": Scenario(
        "schemadoc",
        1,
        ["schemadoc", "--check", "--output", "/nonexistent/schema.md"],
        r"CommandError: /nonexistent/schema\.md is out of date with the database schema: run ",
        env="project",
        files={"V1__create_a.sql": "CREATE TABLE a (id int);\n"},
        before=["migrate", "--no-input"],
    ),
    "no such backup": Scenario(
        "backup",
        1,
        ["backup", "restore", "nosuch", "--database", "choregarden_restore"],
        r"CommandError: 'nosuch' is not a backup name: use `latest` or a name from `backup list`",
    ),
    "rds drill unconfigured": Scenario(
        "backup",
        1,
        ["backup", "rds-pitr", "--latest", "--target-instance", "choregarden-drill"],
        r"CommandError: RDS_INSTANCE_ID is not set: set it to the identifier of the project's "
        r"RDS instance",
        extra={
            "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "RDS_INSTANCE_ID": "",
        },
    ),
    "maintenance outside its window": Scenario(
        "dbmaintenance",
        1,
        ["dbmaintenance", "--execute", "--window", f"{LATER_DAY} 03:00-05:00 UTC"],
        rf"CommandError: outside the maintenance window {LATER_DAY} 03:00-05:00 UTC \(now ",
        env="db",
    ),
    "no backup replica": Scenario(
        "backup",
        1,
        ["backup", "list", "--replica"],
        r"CommandError: No backup replica is configured: set BACKUP_REPLICA_BUCKET and "
        r"BACKUP_REPLICA_REGION",
    ),
    "no WAL archive": Scenario(
        "backup",
        1,
        ["backup", "pitr", "--latest", "--cluster-dir", "/nonexistent/pitr", "--port", "5440"],
        r"CommandError: The local cluster in .* has no WAL archive: run `python manage\.py "
        r"devdb start --with-wal-archive`",
    ),
    "partitions refused": Scenario(
        "partitions",
        1,
        ["partitions", "create", "--from", "2999-01", "--months-ahead", "0"],
        r"CommandError: --from 2999-01 is after the last month ",
        env="db",
    ),
    "no user pool": Scenario(
        "cognitosync",
        1,
        ["cognitosync", "--dry-run"],
        r"CommandError: no user pool: pass --user-pool-id or set COGNITO_USER_POOL_ID",
        env="down",
    ),
    "schedule unreachable": Scenario(
        "scheduleassignments",
        1,
        ["scheduleassignments"],
        r"CommandError: cannot connect to the database app@127\.0\.0\.1:1/choregarden",
        env="down",
    ),
    "demodata in production": Scenario(
        "demodata",
        1,
        ["demodata"],
        r"CommandError: demodata refuses to run with DJANGO_ENV=production\.",
        env="down",
        extra=PRODUCTION,
    ),
}
# Failures that take a whole project to set up: the test that drives each (code and message).
ELSEWHERE = {
    (
        "addtotp",
        1,
    ): "tests.dbops.signin.test_twofactor:test_addtotp_refuses_an_unknown_or_non_staff_user",
    ("makesqlmigration", 1): "tests.sqlmigrations.generator.test_safeguards:"
    "test_a_rename_is_refused_with_or_without_a_terminal",
    ("schemadrift", 1): "tests.dbops.drift.test_drift:test_it_reports_every_hand_made_change",
    ("analytics", 1): "tests.chores.analytics.test_analytics_command:"
    "test_a_failing_day_is_named_and_the_days_before_it_stay",
    ("dbroles", 1): "tests.dbops.roles.test_dbroles:"
    "test_check_fails_on_an_extra_privilege_and_provision_takes_it_back",
    ("migrate", 2): "tests.sqlmigrations.test_lock_timeout:"
    "test_a_bad_lock_setting_is_a_usage_error",
}
# A bad value is a usage error (2): argparse's message, before any connection is made.
USAGE = {
    "dbhealth --database": ["dbhealth", "--database", "reporting"],
    "dbhealth --fail-on": ["dbhealth", "--fail-on", "sometimes"],
    "dbhealth --record --check": ["dbhealth", "--record", "--check", "connections"],
    "scheduleassignments --days": ["scheduleassignments", "--days", "0"],
    "analytics --since": ["analytics", "refresh", "--since", "2026-13-01"],
    "analytics --since future": ["analytics", "refresh", "--since", "2999-01-01"],
    "analytics --since --full": ["analytics", "refresh", "--full", "--since", "2026-01-01"],
    "cognitosync --page-size": ["cognitosync", "--page-size", "61"],
    "backup --max-rate": ["backup", "create", "--max-rate", "fast"],
    "backup --keep-days": ["backup", "prune", "--keep-days", "0"],
    "backup pitr --to": ["backup", "pitr", "--to", "10:15", "--cluster-dir", "x", "--port", "1"],
    "backup replicate": ["backup", "replicate"],
    "backup replicate both": ["backup", "replicate", "latest", "--all-missing"],
    "backup rds-pitr --to": ["backup", "rds-pitr", "--to", "2026-12-06 10:15", "--latest"],
    "backup rds-pitr --target": ["backup", "rds-pitr", "--latest", "--target-instance", "2"],
    "dbmaintenance --window": ["dbmaintenance", "--window", "Sun 3-5"],
    "dbmaintenance --budget": ["dbmaintenance", "--budget", "soon"],
    "dbmaintenance --execute": ["dbmaintenance", "--execute"],
    "partitions --from": ["partitions", "create", "--from", "2026-13"],
    "partitions --months-ahead": ["partitions", "create", "--months-ahead", "-1"],
    "partitions --keep-months": ["partitions", "archive", "--keep-months", "0"],
    "migrate --wait-for-blockers": ["migrate", "--wait-for-blockers", "soon"],
    "migrate --lock-budget": ["migrate", "--rehearse", "--lock-budget", "soon"],
}
PROJECT_COMMANDS = [
    "addtotp",
    "analytics",
    "backup",
    "cognitosync",
    "dbalarms",
    "dbhealth",
    "dbmaintenance",
    "dbroles",
    "demodata",
    "devdb",
    "makesqlmigration",
    "migrate",
    "partitions",
    "schemadoc",
    "schemadrift",
    "scheduleassignments",
    "sqlmigrations",
]


def documented() -> set[tuple[str, int]]:
    """Return (command, code) for every filled cell of the per-command exit-code table."""
    text = DOCS.read_text()
    table = text[text.index("| command | exit 1 |") :].split("\n\n", 1)[0]
    cells = set()
    for row in table.splitlines()[2:]:
        name, *codes = [cell.strip() for cell in row.strip("|").split("|")]
        for code, cell in zip((1, 2, 3), codes, strict=True):
            if cell:
                cells.add((name.strip("`"), code))
    return cells


def test_every_documented_code_is_driven() -> None:
    driven = {(s.command, s.code) for s in SCENARIOS.values()} | set(ELSEWHERE)
    assert documented() == driven


@pytest.mark.parametrize("where", sorted(ELSEWHERE.values()))
def test_the_tests_elsewhere_exist(where: str) -> None:
    module, name = where.split(":")
    assert callable(getattr(importlib.import_module(module), name))


@pytest.fixture
def environment(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[Scenario], tuple[dict[str, str], Path]]:
    def make(scenario: Scenario) -> tuple[dict[str, str], Path]:
        env, cwd = base_env(tmp_path), tmp_path
        if scenario.env == "down":
            env.update(DATABASE_URL=DOWN_URL, DB_SSLMODE="disable")
        elif scenario.env == "db":
            env.update(request.getfixturevalue("manage_env"), LOG_LEVEL="WARNING")
        elif scenario.env == "project":
            project: SqlProject = request.getfixturevalue("sqlproject")
            for name, text in scenario.files.items():
                project.write(name, text)
            project.sync_wrappers()
            env.update(project.env(), LOG_LEVEL="WARNING")
            cwd = project.root
        env.update(scenario.extra)
        return env, cwd

    return make


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_documented_failure_has_its_code_and_one_line(
    name: str, environment: Callable[[Scenario], tuple[dict[str, str], Path]]
) -> None:
    scenario = SCENARIOS[name]
    env, cwd = environment(scenario)
    if scenario.before:
        assert run_manage(*scenario.before, env=env, cwd=cwd).returncode == 0
    proc = run_manage(*scenario.argv, env=env, cwd=cwd)
    output = proc.stdout + proc.stderr
    assert proc.returncode == scenario.code, (name, proc.returncode, output)
    assert "Traceback" not in output, (name, output)
    if scenario.stream == "stderr":
        # The reason is the first line on stderr; further lines may list details under it.
        line = proc.stderr.strip().splitlines()[0]
    else:
        line = proc.stdout.strip().splitlines()[-1]
    assert re.match(scenario.line, line), (name, line)
    if scenario.env == "down":
        assert "Leaky-Passw0rd" not in output


def test_a_bad_value_is_a_usage_error_before_any_connection(tmp_path: Path) -> None:
    """Run with the database down: a usage error must come before any attempt to connect."""
    env = {**base_env(tmp_path), "DATABASE_URL": DOWN_URL, "DB_SSLMODE": "disable"}
    runs = {**USAGE, **{f"{c} --no-such-option": [c, "--no-such-option"] for c in PROJECT_COMMANDS}}
    results = run_forked(list(runs.values()), env, tmp_path)
    for name, result in zip(runs, results, strict=True):
        assert result["code"] == 2, (name, result)
        last = result["stderr"].strip().splitlines()[-1]
        assert re.match(r"manage\.py [a-z]+( [a-z-]+)?: error: ", last), (name, last)
        assert "cannot connect" not in result["stderr"] and "Traceback" not in result["stderr"]


def run_forked(runs: list[list[str]], env: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "commandfork.py")],
        input=json.dumps(runs),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return results
