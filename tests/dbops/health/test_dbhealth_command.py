"""`manage.py dbhealth`: table, JSON, exit codes for alerting, CloudWatch metrics (moto)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import boto3
import pytest
from django.core.management import CommandError, call_command
from moto import mock_aws

from dbops import health
from tests.helpers import run_manage

pytestmark = pytest.mark.django_db


def dbhealth(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("dbhealth", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_prints_a_table_of_every_check() -> None:
    out, _ = dbhealth()
    lines = out.splitlines()
    assert lines[0].split() == ["check", "status", "value", "threshold"]
    for name in health.CHECKS:
        assert any(line.startswith(name + " ") for line in lines), name
    connections = next(line for line in lines if line.startswith("connections "))
    assert "OK" in connections
    assert "warning 70, critical 90" in connections
    assert lines[-1].startswith(f"{len(health.CHECKS)} checks: ")
    assert "Overall:" in lines[-1]


def test_it_explains_how_to_enable_pg_stat_statements() -> None:
    out, _ = dbhealth("--check", "slow_queries")
    assert "Slow queries (info): pg_stat_statements is not created" in out
    assert "CREATE EXTENSION pg_stat_statements" in out


def test_json_is_for_machines(settings: Any) -> None:
    out, _ = dbhealth("--json")
    data = json.loads(out)
    assert data["database"] == settings.DATABASES["default"]["NAME"]
    assert data["environment"] == "test"
    assert [c["name"] for c in data["checks"]] == list(health.CHECKS)
    connections = data["checks"][0]
    assert connections["status"] == "ok"
    assert connections["thresholds"] == {"warning": 70, "critical": 90}
    assert connections["values"]["max"] >= connections["values"]["used"] >= 1
    assert set(connections) >= {"title", "summary", "columns", "rows", "hint", "unit"}
    assert data["status"] in {"ok", "warning", "critical"}


def test_fail_on_sets_the_exit_status(settings: Any) -> None:
    only = ("--check", "connections")
    dbhealth(*only, "--fail-on", "warning")  # all well: no exit

    settings.DB_HEALTH_THRESHOLDS = {"connections": {"warning": 0.01}}
    with pytest.raises(SystemExit) as exit_info:
        dbhealth(*only, "--fail-on", "warning")
    assert exit_info.value.code == 1
    out, _ = dbhealth(*only, "--fail-on", "critical")  # a warning is not critical
    assert "Overall: warning." in out

    settings.DB_HEALTH_THRESHOLDS = {"connections": {"warning": 0.01, "critical": 0.02}}
    for level in ("warning", "critical"):
        with pytest.raises(SystemExit) as exit_info:
            dbhealth(*only, "--fail-on", level)
        assert exit_info.value.code == 2
    dbhealth(*only)  # without --fail-on the status is only printed


def test_it_refuses_an_unknown_database_alias() -> None:
    with pytest.raises(CommandError, match="argument --database: invalid choice: 'reporting'"):
        dbhealth("--database", "reporting")


def test_cloudwatch_receives_the_figures(monkeypatch: Any, settings: Any) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.AWS_REGION = "eu-west-1"
    settings.DB_HEALTH_THRESHOLDS = {"connections": {"warning": 0.01}}
    database = settings.DATABASES["default"]["NAME"]
    with mock_aws():
        out, err = dbhealth("--json", "--cloudwatch", "--namespace", "ChoreGarden/Test")
        assert json.loads(out)["checks"]  # stdout stays pure JSON
        assert "Published" in err
        client = boto3.client("cloudwatch", region_name="eu-west-1")
        metrics = client.list_metrics(Namespace="ChoreGarden/Test")["Metrics"]
        names = {m["MetricName"] for m in metrics}
        assert {
            "ConnectionsUsedPercent",
            "ConnectionsUsed",
            "CacheHitRatioTables",
            "SequencesMaxUsedPercent",
            "HealthStatus",
        } <= names
        used = next(m for m in metrics if m["MetricName"] == "ConnectionsUsed")
        assert {d["Name"]: d["Value"] for d in used["Dimensions"]} == {
            "Environment": "test",
            "Database": database,
        }
        now = datetime.now(UTC)
        status = client.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "connections",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "ChoreGarden/Test",
                            "MetricName": "HealthStatus",
                            "Dimensions": [
                                {"Name": "Environment", "Value": "test"},
                                {"Name": "Database", "Value": database},
                                {"Name": "Check", "Value": "connections"},
                            ],
                        },
                        "Period": 60,
                        "Stat": "Maximum",
                    },
                }
            ],
            StartTime=now - timedelta(minutes=5),
            EndTime=now + timedelta(minutes=5),
        )["MetricDataResults"][0]
        assert status["Values"] == [1.0]  # warning


def test_the_command_line_exit_status(manage_env: dict[str, str]) -> None:
    proc = run_manage("dbhealth", "--json", "--check", "connections", env=manage_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["checks"][0]["name"] == "connections"
    bad = run_manage("dbhealth", "--fail-on", "sometimes", env=manage_env)
    assert bad.returncode == 2
    assert "invalid choice: 'sometimes'" in bad.stderr


UNREACHABLE = "postgres://monitor:s3cret-Passw0rd@127.0.0.1:1/nowhere"


@pytest.mark.parametrize("fail_on", [[], ["--fail-on", "warning"], ["--fail-on", "critical"]])
def test_an_unreachable_database_is_critical_whatever_fail_on_says(
    manage_env: dict[str, str], fail_on: list[str]
) -> None:
    env = dict(manage_env, DB_SSLMODE="disable", DATABASE_URL=UNREACHABLE)
    proc = run_manage("dbhealth", *fail_on, env=env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith(
        "CommandError: cannot connect to the database monitor@127.0.0.1:1/nowhere (DATABASE_URL): "
        "Connection refused."
    )
    assert "s3cret-Passw0rd" not in proc.stderr


def test_json_says_what_failed_when_the_database_is_unreachable(
    manage_env: dict[str, str],
) -> None:
    env = dict(manage_env, DB_SSLMODE="disable", DATABASE_URL=UNREACHABLE)
    proc = run_manage("dbhealth", "--json", "--fail-on", "critical", env=env)
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert data["status"] == "critical"
    assert data["database"] == "nowhere"
    assert data["error"].startswith("cannot connect to the database monitor@127.0.0.1:1/nowhere")
    [check] = data["checks"]
    assert check["name"] == "connections"
    assert check["status"] == "critical"
    assert check["summary"] == data["error"]
    assert len(proc.stderr.splitlines()) == 1
    assert "s3cret-Passw0rd" not in proc.stdout + proc.stderr


def test_json_has_no_error_when_the_checks_ran() -> None:
    out, _ = dbhealth("--json", "--check", "connections")
    assert json.loads(out)["error"] is None
