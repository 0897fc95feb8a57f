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
    with pytest.raises(CommandError, match="--database 'reporting' is not in DATABASES"):
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


def test_an_unreachable_database_is_critical(manage_env: dict[str, str]) -> None:
    env = dict(manage_env, DB_POOL="false", DB_SSLMODE="disable")
    env["DATABASE_URL"] = "postgres://monitor:s3cret-Passw0rd@127.0.0.1:1/nowhere"
    proc = run_manage("dbhealth", "--fail-on", "critical", env=env)
    assert proc.returncode == 2
    assert "cannot reach the database 'default'" in proc.stderr
    assert "s3cret-Passw0rd" not in proc.stderr + proc.stdout
