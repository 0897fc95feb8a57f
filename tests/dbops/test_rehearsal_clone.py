"""The copy of `migrate --rehearse --from-snapshot`: an RDS instance cloned from a snapshot.

moto plays RDS (snapshots, the clone, the waiter, tags, the delete) and runs no database:
the clone's endpoint is a name. The rehearsal connects to the test PostgreSQL instead,
by replacing the function that turns the endpoint into a ConnInfo
(dbops.backups.rds.endpoint_conninfo), as the restore drill's tests do. The whole
`manage.py migrate --rehearse --from-snapshot` is run in tests/sqlmigrations/test_rehearse.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from django.core.management import CommandError
from django.db import connections
from django.test import override_settings

from dbops.backups import rds, rds_clone, rehearsal
from dbops.connections.config import ConnInfo, from_settings
from sqlmigrations import rehearse
from tests.dbops.awsrds import ACCOUNT, REGION, SOURCE, create_instance


@pytest.fixture
def reached(project_db: ConnInfo, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Point the clone's endpoint at the test database; return the endpoints it was given."""
    endpoints: list[tuple[str, int]] = []

    def reach(address: str, port: int) -> ConnInfo:
        endpoints.append((address, port))
        return project_db

    monkeypatch.setattr(rds, "endpoint_conninfo", reach)
    return endpoints


def instances(client: Any) -> dict[str, dict[str, Any]]:
    return {i["DBInstanceIdentifier"]: i for i in client.describe_db_instances()["DBInstances"]}


def clones(client: Any) -> list[str]:
    return [name for name in instances(client) if "-rehearse-" in name]


def made(calls: list[tuple[str, dict[str, Any]]], operation: str) -> list[dict[str, Any]]:
    return [params for name, params in calls if name == operation]


def clone(snapshot: str = "latest", said: list[str] | None = None) -> Any:
    return rehearsal.scratch_database("latest", (said if said is not None else []).append, snapshot)


def test_latest_snapshot_is_cloned_like_the_source_reached_and_deleted(
    aws, calls, reached, project_db
):
    client = aws["client"]
    client.create_db_parameter_group(
        DBParameterGroupName="cg-params", DBParameterGroupFamily="postgres15", Description="cg"
    )
    client.modify_db_instance(DBInstanceIdentifier=SOURCE, DBParameterGroupName="cg-params")
    client.create_db_snapshot(DBSnapshotIdentifier="cg-manual", DBInstanceIdentifier=SOURCE)
    said: list[str] = []

    with clone("latest", said) as scratch:
        # The rehearsal's alias reaches the copy with the source's SETTINGS.
        with rehearse.scratch_alias("default", scratch) as alias:
            used = connections.settings[alias]
            info = from_settings(used)
        assert (used["HOST"], used["PORT"], used["USER"]) == (
            project_db.host,
            project_db.port,
            project_db.user,
        )
        assert not {"LOCAL", "SECRET", "POOLER", "REPLICA"} & set(used)
        assert used["SETTING"] == rds_clone.SETTING
        with psycopg.connect(**info) as conn:
            found = conn.execute("SELECT current_database(), count(*) FROM backup_probe")
            assert found.fetchone() == (project_db.dbname, 500)
        during = clones(client)

    (request,) = made(calls, "RestoreDBInstanceFromDBSnapshot")
    # The newest snapshot: the manual one, taken after the automated one of the creation.
    assert request["DBSnapshotIdentifier"] == "cg-manual"
    assert request["DBInstanceIdentifier"] == during[0]
    assert during[0].startswith(f"{SOURCE}-rehearse-")
    source = instances(client)[SOURCE]
    assert request["DBInstanceClass"] == source["DBInstanceClass"] == "db.t4g.medium"
    assert request["DBParameterGroupName"] == "cg-params"
    assert request["DBSubnetGroupName"] == "cg-private"
    assert request["VpcSecurityGroupIds"] == [aws["group"]]
    assert request["PubliclyAccessible"] is False
    assert request["MultiAZ"] is False
    assert request["DeletionProtection"] is False
    tags = {t["Key"]: t["Value"] for t in request["Tags"]}
    assert tags[rds_clone.TAG] == "true" and tags[rds_clone.SOURCE_TAG] == SOURCE
    assert scratch["NAME"] == project_db.dbname
    assert scratch["BACKUP"].startswith("RDS snapshot cg-manual of ")
    assert during[0] in scratch["PLACE"]
    assert "LEFT_BEHIND" not in scratch
    assert len(reached) == 1
    (delete,) = made(calls, "DeleteDBInstance")
    assert delete == {
        "DBInstanceIdentifier": during[0],
        "SkipFinalSnapshot": True,
        "DeleteAutomatedBackups": True,
    }
    assert clones(client) == []
    assert said[0].startswith("Cloning RDS snapshot cg-manual (") and "db.t4g.medium" in said[0]
    assert said[-1] == f"Deleting RDS instance {during[0]} (no final snapshot)."


def test_a_named_snapshot_is_the_one_cloned(aws, calls, reached):
    client = aws["client"]
    client.create_db_snapshot(DBSnapshotIdentifier="before-release", DBInstanceIdentifier=SOURCE)
    client.create_db_snapshot(DBSnapshotIdentifier="newer", DBInstanceIdentifier=SOURCE)

    with clone("before-release"):
        pass

    (request,) = made(calls, "RestoreDBInstanceFromDBSnapshot")
    assert request["DBSnapshotIdentifier"] == "before-release"
    assert clones(client) == []


def test_refusals_make_nothing(aws, calls, reached):
    client = aws["client"]
    create_instance(client, "other-db")
    client.create_db_snapshot(DBSnapshotIdentifier="other-snap", DBInstanceIdentifier="other-db")

    refused = {
        "nosuch": "There is no RDS snapshot nosuch in eu-west-1: `aws rds describe-db-snapshots "
        f"--db-instance-identifier {SOURCE}` lists them (or use --from-snapshot latest). "
        "Nothing was rehearsed.",
        "other-snap": "RDS snapshot other-snap is of instance other-db, not of cg-prod "
        "(RDS_INSTANCE_ID): a rehearsal runs on a copy of the database it will migrate. "
        "Nothing was rehearsed.",
    }
    for snapshot, message in refused.items():
        with pytest.raises(CommandError) as failed, clone(snapshot):
            pytest.fail("a refused snapshot was cloned")
        assert str(failed.value) == message

    # Named first, also with no region set: it is the setting that says which region.
    unset = override_settings(RDS_INSTANCE_ID="", AWS_REGION="")
    with unset, pytest.raises(CommandError) as failed, clone():
        pytest.fail("cloned with no RDS_INSTANCE_ID")
    assert str(failed.value).startswith("RDS_INSTANCE_ID is not set: set it to the identifier")

    assert made(calls, "RestoreDBInstanceFromDBSnapshot") == []
    assert reached == []


def test_no_snapshot_and_one_not_available_are_refused(aws, calls, reached):
    from moto.rds.models import rds_backends

    backend = rds_backends[ACCOUNT][REGION]
    client = aws["client"]
    client.create_db_snapshot(DBSnapshotIdentifier="half-done", DBInstanceIdentifier=SOURCE)
    backend.database_snapshots["half-done"].status = "creating"

    with pytest.raises(CommandError) as failed, clone("half-done"):
        pytest.fail("a snapshot still being made was cloned")
    assert str(failed.value).startswith(
        "RDS snapshot half-done is creating, not available yet: wait for it"
    )

    for name in list(backend.database_snapshots):
        backend.database_snapshots[name].status = "creating"
    for name in list(getattr(backend, "automated_snapshots", {})):
        backend.automated_snapshots[name].status = "creating"
    with pytest.raises(CommandError) as failed, clone("latest"):
        pytest.fail("cloned with no available snapshot")
    assert str(failed.value).startswith(
        f"RDS instance {SOURCE} (RDS_INSTANCE_ID) has no available snapshot: turn on"
    )
    assert made(calls, "RestoreDBInstanceFromDBSnapshot") == []


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_a_rehearsal_stopped_midway_still_deletes_the_clone(aws, calls, reached, stop):
    client = aws["client"]

    with pytest.raises(stop), clone():
        assert len(clones(client)) == 1
        raise stop()

    assert clones(client) == []
    assert len(made(calls, "DeleteDBInstance")) == 1


def test_a_clone_that_never_becomes_available_is_deleted_naming_the_setting(
    aws, calls, reached, monkeypatch
):
    from moto.rds.models import rds_backends

    def still_creating(parsed: dict[str, Any], **_: Any) -> None:
        name = parsed["DBInstance"]["DBInstanceIdentifier"]
        rds_backends[ACCOUNT][REGION].databases[name].status = "creating"

    real = rds.rds_client

    def slow(region: str) -> Any:
        found = real(region)
        found.meta.events.register("after-call.rds.RestoreDBInstanceFromDBSnapshot", still_creating)
        return found

    monkeypatch.setattr(rds, "rds_client", slow)
    slow_clone = override_settings(REHEARSAL_CLONE_TIMEOUT=1)
    with slow_clone, pytest.raises(CommandError) as failed, clone():
        pytest.fail("the rehearsal ran on a clone that was not available")

    assert "was not available after 1s (status creating): raise REHEARSAL_CLONE_TIMEOUT" in str(
        failed.value
    )
    assert clones(aws["client"]) == []
    assert reached == []


def test_a_clone_that_lost_our_tags_is_left_and_named(aws, calls, reached):
    client = aws["client"]
    said: list[str] = []

    with clone("latest", said) as scratch:
        (name,) = clones(client)
        arn = instances(client)[name]["DBInstanceArn"]
        client.remove_tags_from_resource(ResourceName=arn, TagKeys=[rds_clone.TAG])

    assert clones(client) == [name]
    assert scratch["LEFT_BEHIND"] == (
        f"RDS instance {name} lacks this rehearsal's tags ({rds_clone.TAG}): not deleted. "
        "Check what it is before deleting it by hand."
    )
    assert said[-1] == scratch["LEFT_BEHIND"]
    assert made(calls, "DeleteDBInstance") == []


def test_clones_left_by_killed_rehearsals_are_deleted_once_stale(aws, calls, reached):
    client = aws["client"]
    now = datetime.now(UTC)

    def leftover(name: str, started: datetime, source: str = SOURCE) -> None:
        client.restore_db_instance_from_db_snapshot(
            DBInstanceIdentifier=name,
            DBSnapshotIdentifier=client.describe_db_snapshots(DBInstanceIdentifier=SOURCE)[
                "DBSnapshots"
            ][0]["DBSnapshotIdentifier"],
            Tags=rds_clone.tags(source, started),
        )

    leftover("cg-prod-rehearse-old", now - rds_clone.STALE_AFTER - timedelta(minutes=1))
    leftover("cg-prod-rehearse-recent", now - timedelta(minutes=30))
    leftover("other-rehearse-old", now - timedelta(days=3), source="other-db")
    said: list[str] = []

    with clone("latest", said):
        pass

    left = set(instances(client))
    assert "cg-prod-rehearse-old" not in left
    assert {"cg-prod-rehearse-recent", "other-rehearse-old"} <= left
    assert said[0] == (
        "Deleting RDS instance cg-prod-rehearse-old, left by an interrupted rehearsal."
    )


def test_clone_names_are_rds_identifiers():
    now = datetime(2026, 12, 7, 16, 5, 9, tzinfo=UTC)
    long_source = "a" * 29 + "-" + "b" * 30

    for source in (SOURCE, long_source):
        name = rds_clone.clone_identifier(source, now)
        assert rds.instance_identifier(name) == name
        assert "-rehearse-20261207160509-" in name
        assert len(name) <= 63
