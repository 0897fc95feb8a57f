"""`backup rds-pitr` (the RDS restore drill) and `backup rds-replication`, on moto.

moto models the instances (describe, restore to a point in time, the waiter, delete, tags)
but runs no database: the restored endpoint is a name. The drill's checks run against the
test PostgreSQL instead (its migrated test database), by replacing the function that turns
the endpoint into a ConnInfo (dbops.backups.rds.endpoint_conninfo). moto does not model
start/stop of automated-backup replication, nor the restore window (it accepts any
RestoreTime, and its LatestRestorableTime is "now"): those calls are checked with botocore's
Stubber on the real client (the request as boto3 builds it, PreSignedUrl included).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any
from urllib.parse import parse_qs

import boto3
import psycopg
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from django.core.management import CommandError, call_command
from django.test import override_settings

from dbops.backups import rds
from dbops.connections.config import ConnInfo, conninfo
from tests.dbops.awsrds import REGION, SECOND, SOURCE, create_instance
from tests.helpers import REPO

ARN = f"arn:aws:rds:{REGION}:123456789012:db:{SOURCE}"


@pytest.fixture
def restored(project_db: ConnInfo, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Point the drill's checks at the test database; return the endpoints it was given."""
    endpoints: list[tuple[str, int]] = []

    def reach(address: str, port: int) -> ConnInfo:
        endpoints.append((address, port))
        return project_db.named("choregarden-restore-drill")

    monkeypatch.setattr(rds, "endpoint_conninfo", reach)
    return endpoints


def drill(*args: str) -> str:
    out = StringIO()
    call_command("backup", "rds-pitr", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def instance(client: Any, name: str) -> dict[str, Any] | None:
    return rds.describe_instance(client, name)


def operations(calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in calls]


def test_the_drill_restores_checks_and_deletes_the_instance(aws, calls, restored):
    out = drill("--latest", "--target-instance", "Drill-Latest")

    latest = r"latest \(\d{4}-\d\d-\d\dT\d\d:\d\d:[\d.]+\+00:00\)"
    done = rf"^Done! Restore drill passed: cg-prod at {latest} restored into drill-latest, "
    assert re.search(done, out, re.M), out
    assert "Instance drill-latest deleted (no final snapshot)." in out
    assert restored == [("drill-latest.aaaaaaaaaa.eu-west-1.rds.amazonaws.com", 5432)]
    assert instance(aws["client"], "drill-latest") is None
    # The row count of every table, and the application role reads each one.
    probe = next(line for line in out.splitlines() if line.startswith("public.backup_probe "))
    assert probe.split() == ["public.backup_probe", "500", "yes"]
    assert re.search(
        r"^Migrations: \d+ validated \(schema version \d+\), no problems\.$", out, re.M
    )
    for step in ("restore requested", "instance available", "checks", "delete requested"):
        assert f"  {step} " in out, step
    request = dict(calls)["RestoreDBInstanceToPointInTime"]
    assert request["UseLatestRestorableTime"] is True and "RestoreTime" not in request
    assert request["SourceDBInstanceIdentifier"] == SOURCE
    assert request["DBInstanceClass"] == "db.t4g.medium"
    assert request["DBSubnetGroupName"] == "cg-private"
    assert request["VpcSecurityGroupIds"] == [aws["group"]]
    assert request["PubliclyAccessible"] is False and request["DeletionProtection"] is False
    assert {"Key": rds.DRILL_TAG, "Value": "true"} in request["Tags"]
    deleted = dict(calls)["DeleteDBInstance"]
    assert deleted == {
        "DBInstanceIdentifier": "drill-latest",
        "SkipFinalSnapshot": True,
        "DeleteAutomatedBackups": True,
    }


def test_keep_leaves_the_tagged_instance_and_json_reports_each_step(aws, calls, restored):
    created = aws["client"].describe_db_instances(DBInstanceIdentifier=SOURCE)["DBInstances"][0]
    moment = created["InstanceCreateTime"].astimezone(UTC)

    out = drill("--to", moment.isoformat(), "--target-instance", "drill-kept", "--keep", "--json")

    report = json.loads(out)
    assert report["ok"] is True and report["kept"] is True and report["deleted"] is False
    assert report["restore_time"] == report["restored_to"] == moment.isoformat()
    assert set(report["steps"]) == {"restore_request", "wait_available", "verify"}
    tables = {t["table"]: t for t in report["verification"]["tables"]}
    assert tables["public.backup_probe"] == {
        "table": "public.backup_probe",
        "rows": 500,
        "app_can_read": True,
    }
    assert report["verification"]["problems"] == []
    kept = instance(aws["client"], "drill-kept")
    assert kept is not None
    assert {"Key": rds.DRILL_TAG, "Value": "true"} in kept["TagList"]
    request = dict(calls)["RestoreDBInstanceToPointInTime"]
    assert request["RestoreTime"] == moment and "UseLatestRestorableTime" not in request
    assert "DeleteDBInstance" not in operations(calls)


def test_an_existing_target_is_refused_and_left_alone(aws, calls, restored):
    create_instance(aws["client"], "drill-taken")

    with pytest.raises(CommandError, match=r"RDS instance drill-taken exists already: the drill"):
        drill("--latest", "--target-instance", "drill-taken")

    assert instance(aws["client"], "drill-taken") is not None
    assert "RestoreDBInstanceToPointInTime" not in operations(calls)
    assert "DeleteDBInstance" not in operations(calls)
    with pytest.raises(CommandError, match=r"--target-instance cg-prod is the source instance"):
        drill("--latest", "--target-instance", SOURCE)


def test_a_time_outside_the_restorable_window_is_refused(aws, calls, restored):
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with pytest.raises(CommandError, match=r"is after the latest restorable time \(.* can be"):
        drill("--to", later, "--target-instance", "drill-future")
    # The source was created a moment ago: nothing before that can be restored.
    earlier = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    with pytest.raises(CommandError, match=r"is before the earliest restorable time .* 7 days"):
        drill("--to", earlier, "--target-instance", "drill-past")

    assert "RestoreDBInstanceToPointInTime" not in operations(calls)
    assert restored == []


def test_the_window_comes_from_the_automated_backups_when_rds_gives_it():
    """moto's automated backups have no RestoreWindow: a Stubber gives one, as RDS does."""
    client = boto3.client(
        "rds", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    earliest = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    latest = datetime(2026, 12, 7, 11, 55, tzinfo=UTC)
    with Stubber(client) as stub:
        stub.add_response(
            "describe_db_instance_automated_backups",
            {
                "DBInstanceAutomatedBackups": [
                    {
                        "DBInstanceIdentifier": SOURCE,
                        "Region": REGION,
                        "RestoreWindow": {"EarliestTime": earliest, "LatestTime": latest},
                    }
                ]
            },
            {"DBInstanceIdentifier": SOURCE},
        )
        source = {
            "DBInstanceIdentifier": SOURCE,
            "BackupRetentionPeriod": 7,
            "LatestRestorableTime": latest,
            "InstanceCreateTime": datetime(2025, 1, 1, tzinfo=UTC),
        }
        window = rds.restore_window(client, source, datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
    assert (window.earliest, window.latest, window.earliest_from) == (
        earliest,
        latest,
        "RestoreWindow",
    )
    with pytest.raises(rds.RdsError, match="before the earliest restorable time"):
        rds.check_in_window(earliest - timedelta(seconds=1), window)
    rds.check_in_window(earliest, window)
    with pytest.raises(rds.RdsError, match="keeps no automated backups"):
        rds.restore_window(client, {**source, "BackupRetentionPeriod": 0}, latest)


@pytest.fixture
def unreadable_probe(project_db: ConnInfo) -> Iterator[str]:
    """The application role loses SELECT on one table (given back afterwards)."""
    app = conninfo("app").user
    with psycopg.connect(**project_db, autocommit=True) as conn:
        conn.execute(f'REVOKE SELECT ON backup_probe FROM "{app}"')
    yield app
    with psycopg.connect(**project_db, autocommit=True) as conn:
        conn.execute(f'GRANT SELECT ON backup_probe TO "{app}"')


def test_a_failed_check_fails_the_drill_and_still_deletes(aws, calls, restored, unreadable_probe):
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("backup", "rds-pitr", "--latest", "--target-instance", "drill-bad", stdout=out)

    message = str(failed.value)
    assert message.startswith("Restore drill FAILED: the application role cannot read 1 table")
    assert "public.backup_probe" in message and "Instance drill-bad deleted" in message
    assert instance(aws["client"], "drill-bad") is None
    assert "DeleteDBInstance" in operations(calls)
    lines = out.getvalue().splitlines()
    probe = next(line for line in lines if line.startswith("public.backup_probe "))
    assert probe.split() == ["public.backup_probe", "500", "NO"]


def test_ctrl_c_during_the_checks_still_deletes(aws, calls, monkeypatch):
    def interrupted(address: str, port: int) -> ConnInfo:
        raise KeyboardInterrupt

    monkeypatch.setattr(rds, "endpoint_conninfo", interrupted)

    with pytest.raises(CommandError, match=r"^Interrupted\. Instance drill-stop deleted"):
        drill("--latest", "--target-instance", "drill-stop")

    assert instance(aws["client"], "drill-stop") is None


def test_sigterm_during_the_checks_still_deletes(aws, calls, monkeypatch):
    """A stopped container or cron job sends SIGTERM: treated as Ctrl-C, then restored."""
    before = signal.getsignal(signal.SIGTERM)

    def terminated(address: str, port: int) -> ConnInfo:
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt the drill")

    monkeypatch.setattr(rds, "endpoint_conninfo", terminated)

    with pytest.raises(CommandError, match=r"^Interrupted\. Instance drill-term deleted"):
        drill("--latest", "--target-instance", "drill-term")

    assert instance(aws["client"], "drill-term") is None
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_refused_restore_names_the_permission_and_deletes_nothing(aws, calls, restored):
    client = aws["client"]

    def deny(**_: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "not authorized"}},
            "RestoreDBInstanceToPointInTime",
        )

    real = rds.rds_client

    def denying(region: str) -> Any:
        found = real(region)
        found.meta.events.register("before-call.rds.RestoreDBInstanceToPointInTime", deny)
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rds, "rds_client", denying)
        with pytest.raises(CommandError) as failed:
            drill("--latest", "--target-instance", "drill-denied")

    message = str(failed.value)
    assert "cannot restore cg-prod into drill-denied: AccessDenied: not authorized" in message
    assert "rds:RestoreDBInstanceToPointInTime" in message
    assert "No instance was created." in message
    assert instance(client, "drill-denied") is None
    assert restored == []


def test_the_drill_needs_its_settings(aws, calls, monkeypatch):
    unset = pytest.raises(CommandError, match=r"^RDS_INSTANCE_ID is not set: set it to")
    with override_settings(RDS_INSTANCE_ID=""), unset:
        drill("--latest", "--target-instance", "drill-x")
    # With no region either, the instance is named first: it says which region to set.
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    for argv in (
        ["rds-pitr", "--latest", "--target-instance", "drill-x"],
        ["rds-replication", "status"],
    ):
        with (
            override_settings(RDS_INSTANCE_ID="", AWS_REGION=""),
            pytest.raises(CommandError) as failed,
        ):
            call_command("backup", *argv, stdout=StringIO(), stderr=StringIO())
        assert str(failed.value).startswith("RDS_INSTANCE_ID is not set: set it to"), argv
    missing = pytest.raises(CommandError, match=r"RDS instance nosuch \(RDS_INSTANCE_ID\) does")
    with override_settings(RDS_INSTANCE_ID="nosuch"), missing:
        drill("--latest", "--target-instance", "drill-x")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--to", "2026-12-06 10:15:00"], "has no time zone"),
        (["--to", "yesterday"], "is not a time"),
        (["--latest", "--to", "2026-12-06T10:15:00+00:00"], "not allowed with argument"),
    ],
)
def test_bad_arguments_are_usage_errors(argv, message):
    with pytest.raises(CommandError, match=message):
        drill(*argv, "--target-instance", "drill-x")


@pytest.mark.parametrize("name", ["1drill", "drill--x", "drill-", "d" * 64, "drill_x"])
def test_a_target_that_is_no_rds_identifier_is_a_usage_error(name):
    with pytest.raises(CommandError, match="is not an RDS instance identifier"):
        drill("--latest", "--target-instance", name)


# --- replication of the automated backups --------------------------------------------------


def replication(*args: str) -> str:
    out = StringIO()
    call_command("backup", "rds-replication", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


REPLICATED_ARN = f"arn:aws:rds:{SECOND}:123456789012:auto-backup:ab-7example"


def replicated(status: str = "replicating") -> dict[str, Any]:
    return {
        "DBInstanceArn": ARN,
        "DBInstanceIdentifier": SOURCE,
        "Region": REGION,
        "Status": status,
        "BackupRetentionPeriod": 7,
        "DBInstanceAutomatedBackupsArn": REPLICATED_ARN,
        "RestoreWindow": {
            "EarliestTime": datetime(2026, 12, 1, tzinfo=UTC),
            "LatestTime": datetime(2026, 12, 7, 11, 0, tzinfo=UTC),
        },
    }


@pytest.fixture
def second_region(aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The second region's client under a Stubber (moto lacks start/stop of replication).

    The source region stays moto's. The Stubber checks each call's parameters as the code
    passes them, and fails on any call it was not given a response for.
    """
    client = boto3.client("rds", region_name=SECOND)
    real = rds.rds_client
    monkeypatch.setattr(rds, "rds_client", lambda r: client if r == SECOND else real(r))
    with Stubber(client) as stub:
        yield {"stub": stub}
        stub.assert_no_pending_responses()


def test_status_in_moto_says_not_replicated(aws):
    out = replication("status")
    assert out.strip() == (
        f"RDS instance {SOURCE} ({REGION}): automated backups replicated to {SECOND}: no."
    )
    data = json.loads(replication("status", "--json"))
    assert data["replicating"] is False and data["source_arn"] == ARN
    assert data["region"] == SECOND and data["backups"] == []


def test_start_asks_the_second_region(second_region):
    stub = second_region["stub"]
    stub.add_response("describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": []})
    stub.add_response(
        "start_db_instance_automated_backups_replication",
        {"DBInstanceAutomatedBackup": {**replicated("pending")}},
        {"SourceDBInstanceArn": ARN, "BackupRetentionPeriod": 7, "SourceRegion": REGION},
    )

    out = replication("start")

    assert "Done! Started replicating cg-prod's automated backups to eu-central-1" in out
    assert "(status pending)" in out


class Raw:
    """The body of a canned HTTP response (botocore reads it with stream())."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def answer(action: str, inner: str) -> bytes:
    xmlns = "http://rds.amazonaws.com/doc/2014-10-31/"
    return (
        f'<{action}Response xmlns="{xmlns}"><{action}Result>{inner}</{action}Result>'
        f"</{action}Response>"
    ).encode()


def test_start_sends_a_presigned_url_signed_for_the_source_region():
    """The request as it leaves botocore: no moto, no Stubber, an HTTP answer of our own.

    The Stubber answers before botocore's handlers build the PreSignedUrl (which RDS needs
    to read an encrypted source from the other region), so this test stops at the send.
    """
    keys = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "not-a-real-key"}
    source = boto3.client("rds", region_name=REGION, **keys)
    replica = boto3.client("rds", region_name=SECOND, **keys)
    sent: list[dict[str, list[str]]] = []

    def send(request: Any, **_: Any) -> AWSResponse:
        body = parse_qs(request.body.decode() if isinstance(request.body, bytes) else request.body)
        sent.append(body)
        action = body["Action"][0]
        inner = (
            "<DBInstanceAutomatedBackups/>"
            if action == "DescribeDBInstanceAutomatedBackups"
            else "<DBInstanceAutomatedBackup><Status>pending</Status></DBInstanceAutomatedBackup>"
        )
        return AWSResponse(request.url, 200, {}, Raw(answer(action, inner)))

    replica.meta.events.register("before-send.rds.*", send)
    key = f"arn:aws:kms:{SECOND}:123456789012:key/1234abcd"
    with Stubber(source) as stub:
        stub.add_response(
            "describe_db_instances",
            {"DBInstances": [{"DBInstanceIdentifier": SOURCE, "DBInstanceArn": ARN,
                              "BackupRetentionPeriod": 7, "StorageEncrypted": True}]},
            {"DBInstanceIdentifier": SOURCE},
        )  # fmt: skip
        _, started = rds.start_replication(source, replica, SOURCE, kms_key_id=key)

    assert started == {"Status": "pending"}
    start = sent[-1]
    assert replica.meta.region_name == SECOND
    assert start["Action"] == ["StartDBInstanceAutomatedBackupsReplication"]
    assert start["SourceDBInstanceArn"] == [ARN] and start["KmsKeyId"] == [key]
    assert start["BackupRetentionPeriod"] == ["7"] and "SourceRegion" not in start
    url = start["PreSignedUrl"][0]
    assert url.startswith(f"https://rds.{REGION}.amazonaws.com/?")
    signed = parse_qs(url.split("?", 1)[1])
    assert signed["Action"] == ["StartDBInstanceAutomatedBackupsReplication"]
    assert signed["DestinationRegion"] == [SECOND]
    assert signed["X-Amz-Credential"][0].split("/")[2] == REGION  # signed for the source


def test_start_with_a_kms_key_and_retention(second_region):
    stub = second_region["stub"]
    key = f"arn:aws:kms:{SECOND}:123456789012:key/1234abcd"
    stub.add_response("describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": []})
    stub.add_response(
        "start_db_instance_automated_backups_replication",
        {"DBInstanceAutomatedBackup": replicated("pending")},
        {
            "SourceDBInstanceArn": ARN,
            "BackupRetentionPeriod": 14,
            "KmsKeyId": key,
            "SourceRegion": REGION,
        },
    )
    with override_settings(BACKUP_REPLICA_KMS_KEY_ID=key):
        data = json.loads(replication("start", "--retention", "14", "--json"))
    assert data["changed"] is True and data["operation"] == "start"


def test_start_refuses_an_encrypted_source_without_a_key(aws, second_region):
    create_instance(aws["client"], "cg-encrypted", StorageEncrypted=True, BackupRetentionPeriod=7)
    second_region["stub"].add_response(
        "describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": []}
    )
    refused = pytest.raises(CommandError, match=r"is encrypted: .* Set BACKUP_REPLICA_KMS_KEY_ID")
    with override_settings(RDS_INSTANCE_ID="cg-encrypted"), refused:
        replication("start")  # the Stubber would fail on a start call: none is made


def test_status_and_stop_of_a_running_replication(second_region):
    stub = second_region["stub"]
    other = {**replicated(), "DBInstanceArn": ARN.replace(SOURCE, "someone-else")}
    stub.add_response(
        "describe_db_instance_automated_backups",
        {"DBInstanceAutomatedBackups": [replicated(), other]},
    )
    status = replication("status")
    assert "automated backups replicated to eu-central-1: yes." in status
    assert f"  {REPLICATED_ARN}: replicating, kept 7 days, restorable 2026-12-01" in status
    assert "someone-else" not in status

    stub.add_response(
        "describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": [replicated()]}
    )
    stub.add_response(
        "stop_db_instance_automated_backups_replication",
        {"DBInstanceAutomatedBackup": replicated("stopping")},
        {"SourceDBInstanceArn": ARN},
    )
    out = replication("stop")
    assert "Done! Stopped replicating cg-prod's automated backups to eu-central-1" in out


def test_start_and_stop_change_nothing_when_there_is_nothing_to_do(second_region):
    stub = second_region["stub"]
    stub.add_response(
        "describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": [replicated()]}
    )
    assert "runs already: nothing to do." in replication("start")
    stub.add_response("describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": []})
    assert "are not replicated: nothing to stop." in replication("stop")
    # No start or stop call was made: the Stubber fails on a call it has no response for.


def test_replication_needs_a_second_region(aws):
    unset = pytest.raises(CommandError, match=r"^BACKUP_REPLICA_REGION is not set")
    with override_settings(BACKUP_REPLICA_REGION=""), unset:
        replication("status")
    same = pytest.raises(CommandError, match=r"is the region of RDS_INSTANCE_ID itself")
    with override_settings(BACKUP_REPLICA_REGION=REGION), same:
        replication("start")


def test_a_refused_replication_call_names_the_permission(second_region):
    stub = second_region["stub"]
    stub.add_response("describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": []})
    stub.add_client_error(
        "start_db_instance_automated_backups_replication",
        service_error_code="AccessDenied",
        service_message="not authorized",
    )
    with pytest.raises(CommandError) as failed:
        replication("start")
    assert "rds:StartDBInstanceAutomatedBackupsReplication (in BACKUP_REPLICA_REGION)" in str(
        failed.value
    )


# --- the runbook ----------------------------------------------------------------------------


def procedure(page: str, name: str) -> list[str]:
    """The commands of the fenced block after `<!-- procedure: NAME -->` in docs/PAGE."""
    text = (REPO / "docs" / page).read_text()
    match = re.search(rf"<!-- procedure: {name} -->\n```sh\n(.*?)\n```", text, re.S)
    assert match, f"docs/{page} has no procedure {name}"
    return [line for line in match[1].splitlines() if line.strip()]


def test_the_monthly_drill_of_the_docs_runs(aws, calls, restored):
    outputs = run_procedure("rds-restore-drill")

    assert "automated backups replicated to eu-central-1: no." in outputs[0]
    assert "Done! Restore drill passed: cg-prod at latest (" in outputs[1]
    assert ") restored into choregarden-drill, " in outputs[1]
    assert instance(aws["client"], "choregarden-drill") is None


def test_an_instance_that_never_becomes_available_fails_and_is_deleted(aws, calls, restored):
    from moto.rds.models import rds_backends

    def still_creating(parsed: dict[str, Any], **_: Any) -> None:
        name = parsed["DBInstance"]["DBInstanceIdentifier"]
        rds_backends["123456789012"][REGION].databases[name].status = "creating"

    real = rds.rds_client

    def slow(region: str) -> Any:
        found = real(region)
        found.meta.events.register("after-call.rds.RestoreDBInstanceToPointInTime", still_creating)
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rds, "rds_client", slow)
        with pytest.raises(CommandError) as failed:
            drill("--latest", "--target-instance", "drill-slow", "--timeout", "1")

    message = str(failed.value)
    assert "RDS instance drill-slow was not available after 1s (status creating): raise" in message
    assert message.endswith("Instance drill-slow deleted (no final snapshot).")
    assert instance(aws["client"], "drill-slow") is None
    assert restored == []  # no checks ran


def test_the_endpoint_is_reached_as_the_owner_over_ssl(settings):
    owner = conninfo("owner")

    info = rds.endpoint_conninfo("drill.abc.eu-west-1.rds.amazonaws.com", 5433)

    assert (info.host, info.port) == ("drill.abc.eu-west-1.rds.amazonaws.com", 5433)
    assert (info.user, info.password, info.dbname) == (owner.user, owner.password, owner.dbname)
    assert info.sslmode in ("require", "verify-ca", "verify-full")
    assert info.application_name == "choregarden-restore-drill"


def test_a_database_that_is_not_the_projects_fails_the_checks(source, db):
    """No migration history, and tables the application role was never given."""
    result = rds.verify_restored(source, conninfo("app").user)

    assert not result.ok
    assert result.schema_version is None and result.pending == result.migrations > 0
    assert result.problems == [
        "migrations: no migration is applied in the restored database (no history in schema "
        "public): it is not the project's database"
    ]
    assert {t.table for t in result.tables if not t.app_can_read} == {
        "audit.event",
        "public.chore",
        "public.empty_table",
    }
    rows = {t.table: t.rows for t in result.tables}
    assert rows["public.chore"] == 2000 and rows["audit.event"] == 300


def run_procedure(name: str) -> list[str]:
    outputs = []
    for line in procedure("backups.md", name):
        argv = shlex.split(line)
        assert argv[:2] == ["python", "manage.py"], line
        out = StringIO()
        call_command(*argv[2:], stdout=out, stderr=StringIO())
        outputs.append(out.getvalue())
    return outputs


def test_starting_replication_as_the_docs_say(second_region):
    stub = second_region["stub"]
    stub.add_response("describe_db_instance_automated_backups", {"DBInstanceAutomatedBackups": []})
    stub.add_response(
        "start_db_instance_automated_backups_replication",
        {"DBInstanceAutomatedBackup": replicated("pending")},
        {"SourceDBInstanceArn": ARN, "BackupRetentionPeriod": 7, "SourceRegion": REGION},
    )
    stub.add_response(
        "describe_db_instance_automated_backups",
        {"DBInstanceAutomatedBackups": [replicated("pending")]},
    )

    started, status = run_procedure("rds-replication-start")

    assert "Done! Started replicating cg-prod's automated backups to eu-central-1" in started
    assert f"  {REPLICATED_ARN}: pending, kept 7 days" in status
