"""`manage.py dbalarms sync`: the plan, create, update, prune, and AWS's refusals (moto)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from io import StringIO
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from moto import mock_aws

from dbops import health
from dbops.connections.config import database_name
from dbops.health import alarms
from tests.helpers import REPO
from tests.test_docs_links import anchors

REGION = "eu-west-1"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:ops"
PREFIX = "choregarden-test-"


@pytest.fixture(autouse=True)
def test_environment(settings: Any) -> None:
    settings.DJANGO_ENV = "test"  # whatever the shell says: the prefix names it


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Any]:
    """moto's CloudWatch in REGION, with the settings the command reads set to known values."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.AWS_REGION = REGION
    settings.ALARM_SNS_TOPIC_ARN = TOPIC
    settings.RDS_INSTANCE_ID = ""
    settings.RDS_REPLICA_INSTANCE_ID = ""
    settings.DB_ALARM_PREFIX = "choregarden-"
    settings.DB_ALARM_THRESHOLDS = {}
    settings.DB_HEALTH_THRESHOLDS = {}
    with mock_aws():
        yield boto3.client("cloudwatch", region_name=REGION)


def sync(*args: str) -> str:
    out = StringIO()
    call_command("dbalarms", "sync", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def alarms_in(client: Any, prefix: str = "") -> dict[str, dict[str, Any]]:
    found = client.describe_alarms(**({"AlarmNamePrefix": prefix} if prefix else {}))
    return {a["AlarmName"]: a for a in found["MetricAlarms"]}


def plan_lines(out: str, action: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines() if line.startswith(f"  {action} ")]


def test_a_dry_run_prints_the_plan_and_changes_nothing(cloudwatch: Any) -> None:
    out = sync("--dry-run")
    lines = out.splitlines()
    assert lines[0] == f"Alarms {PREFIX}* in {REGION}, notifying {TOPIC} (dry run):"
    created = plan_lines(out, "create")
    assert f"{PREFIX}db-connections-used-percent-warning" in created
    assert re.search(
        rf"  create +{PREFIX}db-connections-used-percent-critical +ConnectionsUsedPercent >= 90 "
        r"\(Maximum, 1 x 300 s\)",
        out,
    )
    assert re.search(rf"{PREFIX}db-replication-slots-max-retained-bytes-critical +"
                     r"ReplicationSlotsMaxRetainedBytes >= 5\.0 GB", out)  # fmt: skip
    assert f"{PREFIX}db-connections-status-critical" in created
    assert f"{PREFIX}db-dbhealth-silent" in created
    assert "Note: RDS_INSTANCE_ID is not set: no CPUUtilization alarms." in lines
    assert lines[-1] == (
        f"Dry run: {len(created)} to create, 0 to update, 0 to delete, 0 unchanged; "
        "nothing changed."
    )
    assert alarms_in(cloudwatch) == {}


def test_sync_creates_the_alarms_and_a_second_sync_changes_nothing(
    cloudwatch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = sync()
    created = plan_lines(out, "create")
    made = alarms_in(cloudwatch)
    assert sorted(made) == sorted(created)
    assert out.splitlines()[-1] == f"Done: {len(made)} created, 0 updated, 0 deleted, 0 unchanged."

    warning = made[f"{PREFIX}db-connections-used-percent-warning"]
    assert warning["Namespace"] == "ChoreGarden/Database"
    assert warning["MetricName"] == "ConnectionsUsedPercent"
    assert {d["Name"]: d["Value"] for d in warning["Dimensions"]} == {
        "Environment": "test",  # as `dbhealth --cloudwatch` publishes them
        "Database": database_name("default"),
    }
    assert (warning["Threshold"], warning["ComparisonOperator"]) == (
        70.0,
        "GreaterThanOrEqualToThreshold",
    )
    assert warning["AlarmActions"] == warning["OKActions"] == [TOPIC]
    assert "docs/monitoring-playbook.md#connections" in warning["AlarmDescription"]
    status = made[f"{PREFIX}db-replica-status-critical"]
    assert {d["Name"]: d["Value"] for d in status["Dimensions"]}["Check"] == "replica"
    assert (status["MetricName"], status["Threshold"]) == ("HealthStatus", 2.0)
    silent = made[f"{PREFIX}db-dbhealth-silent"]
    assert (silent["Statistic"], silent["TreatMissingData"]) == ("SampleCount", "breaching")

    puts: list[str] = []
    real_client = alarms.client

    def counting_client() -> Any:
        client = real_client()
        client.meta.events.register(
            "before-call.cloudwatch.PutMetricAlarm", lambda **kw: puts.append("put")
        )
        return client

    monkeypatch.setattr(alarms, "client", counting_client)
    again = sync()
    assert puts == []
    assert plan_lines(again, "unchanged") == created
    assert again.splitlines()[-1] == (
        f"Done: 0 created, 0 updated, 0 deleted, {len(made)} unchanged."
    )


def test_a_changed_threshold_or_topic_is_an_update_that_says_what_changes(
    cloudwatch: Any, settings: Any
) -> None:
    settings.ALARM_SNS_TOPIC_ARN = ""
    out = sync()
    assert "Note: ALARM_SNS_TOPIC_ARN is not set: the alarms notify nobody." in out
    name = f"{PREFIX}db-connections-used-percent-warning"
    assert alarms_in(cloudwatch)[name]["AlarmActions"] == []

    settings.DB_HEALTH_THRESHOLDS = {"connections": {"warning": 60}}
    out = sync("--dry-run")
    assert re.search(rf"  update +{name} +Threshold 70 -> 60\n", out)
    assert plan_lines(out, "update") == [name]
    assert alarms_in(cloudwatch)[name]["Threshold"] == 70.0  # a dry run

    out = sync()
    assert alarms_in(cloudwatch)[name]["Threshold"] == 60.0
    assert out.splitlines()[-1].startswith("Done: 0 created, 1 updated, 0 deleted, ")

    settings.ALARM_SNS_TOPIC_ARN = TOPIC
    out = sync()
    assert f"AlarmActions [] -> [{TOPIC}]; OKActions [] -> [{TOPIC}]" in out
    assert alarms_in(cloudwatch)[name]["AlarmActions"] == [TOPIC]
    assert "0 updated" in sync().splitlines()[-1]


def test_an_alarm_no_longer_wanted_is_left_until_prune_which_keeps_to_the_prefix(
    cloudwatch: Any, settings: Any
) -> None:
    sync()
    # Alarms that are not this environment's: someone's own, and production's.
    for other in ("ops-disk-full", "choregarden-production-db-connections-status-critical"):
        cloudwatch.put_metric_alarm(
            AlarmName=other, Namespace="AWS/RDS", MetricName="CPUUtilization",
            Statistic="Average", Period=300, EvaluationPeriods=1, Threshold=90,
            ComparisonOperator="GreaterThanThreshold",
        )  # fmt: skip
    settings.DB_ALARM_THRESHOLDS = {"unused_indexes": None}
    gone = f"{PREFIX}db-unused-indexes-count-warning"

    out = sync()
    assert re.search(rf"  left +{gone} +no longer wanted: --prune deletes it", out)
    assert gone in alarms_in(cloudwatch)
    assert "1 left (--prune deletes them)." in out.splitlines()[-1]

    out = sync("--prune", "--dry-run")
    assert plan_lines(out, "delete") == [gone]
    assert gone in alarms_in(cloudwatch)

    before = set(alarms_in(cloudwatch))
    out = sync("--prune")
    assert plan_lines(out, "delete") == [gone]
    assert set(alarms_in(cloudwatch)) == before - {gone}
    assert "ops-disk-full" in before and "choregarden-production-" in " ".join(before)
    assert ", 1 deleted, " in out.splitlines()[-1]


def test_production_without_a_topic_is_refused_but_its_plan_is_shown(
    cloudwatch: Any, settings: Any
) -> None:
    settings.ALARM_SNS_TOPIC_ARN = ""
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match=r"^ALARM_SNS_TOPIC_ARN is not set: production's"):
        sync()
    assert alarms_in(cloudwatch) == {}
    assert "Note: ALARM_SNS_TOPIC_ARN is not set: the alarms notify nobody." in sync("--dry-run")


def test_the_rds_alarms_watch_the_instances_the_settings_name(
    cloudwatch: Any, settings: Any
) -> None:
    settings.RDS_INSTANCE_ID = "choregarden-prod"
    settings.DB_ALARM_THRESHOLDS = {"rds_cpu": {"warning": None, "critical": 90}}
    out = sync()
    assert "Note: RDS_REPLICA_INSTANCE_ID is not set: no ReplicaLag alarms." in out
    rds = alarms_in(cloudwatch, f"{PREFIX}rds-")
    assert sorted(rds) == [
        f"{PREFIX}rds-connections-critical",
        f"{PREFIX}rds-connections-warning",
        f"{PREFIX}rds-cpu-critical",
        f"{PREFIX}rds-free-storage-critical",
        f"{PREFIX}rds-free-storage-warning",
    ]
    for alarm in rds.values():
        assert alarm["Namespace"] == "AWS/RDS"
        dimension = {"Name": "DBInstanceIdentifier", "Value": "choregarden-prod"}
        assert alarm["Dimensions"] == [dimension]
    assert rds[f"{PREFIX}rds-cpu-critical"]["Threshold"] == 90.0
    storage = rds[f"{PREFIX}rds-free-storage-critical"]
    assert (storage["ComparisonOperator"], storage["Threshold"]) == (
        "LessThanThreshold",
        2.0 * 1024**3,
    )

    settings.RDS_REPLICA_INSTANCE_ID = "choregarden-prod-replica"
    settings.RDS_INSTANCE_ID = "choregarden-prod-2"
    out = sync()
    lag = alarms_in(cloudwatch, f"{PREFIX}rds-replica-lag-")
    assert {a["Dimensions"][0]["Value"] for a in lag.values()} == {"choregarden-prod-replica"}
    assert {a["MetricName"] for a in lag.values()} == {"ReplicaLag"}
    assert re.search(
        r"  update +\S+rds-cpu-critical +(AlarmDescription changed; )?Dimensions "
        r"DBInstanceIdentifier=choregarden-prod -> "
        r"DBInstanceIdentifier=choregarden-prod-2",
        out,
    )


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("ALARM_SNS_TOPIC_ARN", "ops", r"ALARM_SNS_TOPIC_ARN is not an SNS topic's ARN"),
        (
            "ALARM_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:ops",
            r"ALARM_SNS_TOPIC_ARN is a topic of us-east-1, the alarms are in eu-west-1",
        ),
        ("DB_ALARM_PREFIX", "", r"DB_ALARM_PREFIX='' is not a prefix"),
        ("RDS_INSTANCE_ID", "prod db", r"RDS_INSTANCE_ID='prod db' is not an RDS instance"),
        ("DB_ALARM_THRESHOLDS", {"rds_disk": None}, r"DB_ALARM_THRESHOLDS names unknown alarms"),
        (
            "DB_ALARM_THRESHOLDS",
            {"connections": {"warning": 50}},
            r"DB_ALARM_THRESHOLDS\['connections'\] can only be None .* DB_HEALTH_THRESHOLDS",
        ),
        (
            "DB_ALARM_THRESHOLDS",
            {"rds_free_storage": {"warning_bytes": 1}},
            r"critical_bytes 2147483648 must be below warning_bytes 1\.",
        ),
    ],
)
def test_a_refused_setting_is_one_line_and_nothing_changes(
    cloudwatch: Any, settings: Any, setting: str, value: Any, message: str
) -> None:
    setattr(settings, setting, value)
    with pytest.raises(CommandError, match=message) as info:
        sync()
    assert "\n" not in str(info.value)
    assert alarms_in(cloudwatch) == {}


def test_no_credentials_is_one_line_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings.AWS_REGION = REGION
    with pytest.raises(CommandError) as info:
        sync("--dry-run")
    assert str(info.value) == (
        "cannot list the alarms named choregarden-test-*: no AWS credentials: run with an IAM "
        "role, or set AWS_PROFILE."
    )


def stubbed(monkeypatch: pytest.MonkeyPatch) -> Stubber:
    client = boto3.client(
        "cloudwatch", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    monkeypatch.setattr(alarms, "client", lambda: client)
    return Stubber(client)


def test_access_denied_and_throttling_say_what_to_do(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.ALARM_SNS_TOPIC_ARN = TOPIC
    stub = stubbed(monkeypatch)
    stub.add_client_error(
        "describe_alarms",
        "AccessDenied",
        "User: arn:aws:sts::123456789012:assumed-role/app is not authorized",
        403,
    )
    with stub, pytest.raises(CommandError) as info:
        sync()
    assert str(info.value).startswith(
        "cannot list the alarms named choregarden-test-*: AccessDenied: User: "
    )
    assert str(info.value).endswith(
        "the role needs cloudwatch:DescribeAlarms, cloudwatch:PutMetricAlarm and "
        "cloudwatch:DeleteAlarms on the alarms named choregarden-test-*."
    )

    stub = stubbed(monkeypatch)
    stub.add_response("describe_alarms", {"MetricAlarms": []})
    stub.add_response("put_metric_alarm", {})
    stub.add_client_error("put_metric_alarm", "Throttling", "Rate exceeded", 400)
    with stub, pytest.raises(CommandError) as info:
        sync()
    assert re.fullmatch(
        r"cannot change the alarms \(1 of \d+ changes made; sync again\): Throttling: Rate "
        r"exceeded; CloudWatch throttled the calls: run sync again in a minute\.",
        str(info.value),
    )


def test_every_page_of_existing_alarms_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = stubbed(monkeypatch)
    page = {"AlarmNamePrefix": PREFIX, "AlarmTypes": ["MetricAlarm"]}
    stub.add_response(
        "describe_alarms", {"MetricAlarms": [{"AlarmName": f"{PREFIX}a"}], "NextToken": "t"}, page
    )
    last = {"MetricAlarms": [{"AlarmName": f"{PREFIX}b"}]}
    stub.add_response("describe_alarms", last, {**page, "NextToken": "t"})
    with stub:
        assert sorted(alarms.existing(alarms.client(), PREFIX)) == [f"{PREFIX}a", f"{PREFIX}b"]


def test_every_alarm_points_to_its_playbook_section(settings: Any) -> None:
    settings.RDS_INSTANCE_ID = "primary"
    settings.RDS_REPLICA_INSTANCE_ID = "replica"
    wanted = alarms.desired(namespace="N", database="d", topic=TOPIC).alarms
    sections = anchors(REPO / "docs" / "monitoring-playbook.md")
    for alarm in wanted:
        anchor = re.search(r"monitoring-playbook\.md#([\w-]+)", alarm.description)
        assert anchor and anchor[1] in sections, alarm.name
    assert {a.metric for a in wanted} >= {
        "CPUUtilization",
        "FreeStorageSpace",
        "DatabaseConnections",
        "ReplicaLag",
    }


@pytest.mark.django_db
def test_the_figures_alarmed_on_are_ones_dbhealth_publishes() -> None:
    results = {r.name: r for r in health.run_checks()}
    for check, key, suffix in alarms.FIGURES:
        if check in ("slow_queries", "replica") and not results[check].values:
            continue  # no pg_stat_statements, no replica configured: nothing to publish
        assert key in results[check].values, (check, key)
        # Each figure has a threshold to be judged against, at one level at least.
        assert any(f"{level}{suffix}" in health.thresholds(check) for level in alarms.LEVELS)


NUMBERS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
)
KEYS = st.sampled_from(sorted({k for v in alarms.RDS_THRESHOLDS.values() for k in v} | {"x"}))
GROUP_VALUES = st.one_of(st.none(), st.dictionaries(KEYS, NUMBERS, max_size=3), NUMBERS)
CONFIGS = st.one_of(
    st.dictionaries(st.sampled_from([*alarms.GROUPS, "nope"]), GROUP_VALUES, max_size=4),
    NUMBERS,
    st.lists(st.integers(), max_size=2),
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(CONFIGS)
def test_any_alarm_thresholds_are_refused_in_one_line_or_are_sound(configured: Any) -> None:
    with override_settings(DB_ALARM_THRESHOLDS=configured, DB_HEALTH_THRESHOLDS={}):
        try:
            limits = alarms.alarm_thresholds()
        except ImproperlyConfigured as err:
            assert "\n" not in str(err) and str(err).startswith("DB_ALARM_THRESHOLDS")
            return
    for group, spec in alarms.RDS_METRICS.items():
        group_limits = limits[group]
        if group_limits is None:
            continue
        assert set(group_limits) <= set(alarms.RDS_THRESHOLDS[group])
        for value in group_limits.values():
            assert not isinstance(value, bool) and isinstance(value, int | float)
            assert math.isfinite(value) and value >= 0
        warning = group_limits.get(f"warning{spec.suffix}")
        critical = group_limits.get(f"critical{spec.suffix}")
        if warning is not None and critical is not None:
            assert (critical < warning) if spec.below else (warning < critical)
