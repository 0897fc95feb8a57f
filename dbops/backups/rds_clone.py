"""`migrate --rehearse --from-snapshot`: the copy is a new RDS instance made from a snapshot.

A logical backup restored on the live server shows what the files do to the data, but
on the live server's disk and CPU, and a restore of a large database takes long. A
snapshot clone is the production database as RDS saved it, on an instance of the same
class with the same parameter group: the rehearsal's times and locks are the ones a
deploy will meet. This module makes that instance and deletes it:

- the snapshot: `latest` is the newest available snapshot (automated or manual) of
  RDS_INSTANCE_ID; a named one must be available and of that instance;
- the instance: `restore_db_instance_from_db_snapshot` into
  `<source>-rehearse-<UTC time>-<hex>`, with the source's class, parameter group, subnet
  group and security groups, private, single-AZ, no deletion protection, tagged;
- the rehearsal connects to it as the owner role (the snapshot has the source's roles
  and passwords: `rds.endpoint_conninfo`), to the same database name;
- the instance is deleted (no final snapshot) when the rehearsal ends, also after a
  failure, Ctrl-C or SIGTERM, and only if it carries this run's tags. A run that is
  killed (kill -9, a lost runner) leaves it behind: the next rehearsal deletes instances
  that carry the rehearsal tag of the same source and started STALE_AFTER ago or more.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from dbops.backups import rds
from dbops.backups.rds import RdsError, call

TAG = "choregarden:rehearsal"
SOURCE_TAG = "choregarden:rehearsal-source"
STARTED_TAG = "choregarden:rehearsal-started"
STALE_AFTER = timedelta(hours=12)
# Where the rehearsal's connection goes, as a connect error names it.
SETTING = "the rehearsal's clone of RDS_INSTANCE_ID"


def _snapshots(client: Any, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    try:
        pages = client.get_paginator("describe_db_snapshots").paginate(**params)
        for page in pages:
            found += page.get("DBSnapshots", [])
    except rds.AWS_ERRORS as err:
        if getattr(err, "response", {}).get("Error", {}).get("Code") == "DBSnapshotNotFound":
            return []
        raise rds.aws_error(err, "list the RDS snapshots", "DescribeDBSnapshots") from err
    return found


def find_snapshot(client: Any, source_id: str, wanted: str) -> dict[str, Any]:
    """The snapshot to clone: the newest available one of `source_id`, or the one named.

    Refused (RdsError) when there is none, when the named one is not available yet, and
    when it is a snapshot of another instance: that would rehearse on other data.
    """
    if wanted == "latest":
        ready = [
            s
            for s in _snapshots(client, DBInstanceIdentifier=source_id)
            if s.get("Status") == "available" and s.get("SnapshotCreateTime")
        ]
        if not ready:
            raise RdsError(
                f"RDS instance {source_id} (RDS_INSTANCE_ID) has no available snapshot: "
                "turn on automated backups (BackupRetentionPeriod > 0) or take one with "
                "`aws rds create-db-snapshot`, or rehearse from a backup (--from-backup)."
            )
        return max(ready, key=lambda s: rds.aware(s["SnapshotCreateTime"]))
    found = _snapshots(client, DBSnapshotIdentifier=wanted)
    if not found:
        raise RdsError(
            f"There is no RDS snapshot {wanted} in {client.meta.region_name}: "
            f"`aws rds describe-db-snapshots --db-instance-identifier {source_id}` lists them "
            "(or use --from-snapshot latest)."
        )
    snapshot = found[0]
    if str(snapshot.get("DBInstanceIdentifier", "")).lower() != source_id.lower():
        raise RdsError(
            f"RDS snapshot {wanted} is of instance {snapshot.get('DBInstanceIdentifier')}, "
            f"not of {source_id} (RDS_INSTANCE_ID): a rehearsal runs on a copy of the "
            "database it will migrate."
        )
    if snapshot.get("Status") != "available":
        raise RdsError(
            f"RDS snapshot {wanted} is {snapshot.get('Status')}, not available yet: wait "
            "for it, or use another one."
        )
    return snapshot


def clone_identifier(source_id: str, now: datetime) -> str:
    """`<source>-rehearse-<UTC time>-<hex>`: says what it is and since when (63 at most)."""
    head = source_id[:30].rstrip("-")
    return rds.instance_identifier(
        f"{head}-rehearse-{now.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}"
    )


def tags(source_id: str, now: datetime) -> list[dict[str, str]]:
    return [
        {"Key": TAG, "Value": "true"},
        {"Key": SOURCE_TAG, "Value": source_id},
        {"Key": STARTED_TAG, "Value": now.isoformat(timespec="seconds")},
    ]


def clone_request(
    source: dict[str, Any], snapshot: dict[str, Any], target: str, now: datetime
) -> dict[str, Any]:
    """RestoreDBInstanceFromDBSnapshot's parameters: the source's size and network, private."""
    request: dict[str, Any] = {
        "DBInstanceIdentifier": target,
        "DBSnapshotIdentifier": snapshot["DBSnapshotIdentifier"],
        # The source's class: the rehearsal's times are the ones a deploy will meet.
        **rds.private_copy(source),
        "Tags": tags(source["DBInstanceIdentifier"], now),
    }
    groups = [g["DBParameterGroupName"] for g in source.get("DBParameterGroups", [])]
    if groups:  # the same lock_timeout, work_mem, ... as the live database
        request["DBParameterGroupName"] = groups[0]
    return request


def stale_clones(client: Any, source_id: str, now: datetime) -> list[str]:
    """Rehearsal instances of `source_id` left by killed runs: STALE_AFTER old or more."""
    stale = []
    try:
        for page in client.get_paginator("describe_db_instances").paginate():
            for instance in page.get("DBInstances", []):
                found = {t["Key"]: t["Value"] for t in instance.get("TagList", [])}
                if found.get(TAG) != "true" or found.get(SOURCE_TAG) != source_id:
                    continue
                if instance.get("DBInstanceStatus") == "deleting":
                    continue
                try:
                    started = rds.aware(datetime.fromisoformat(found.get(STARTED_TAG, "")))
                except ValueError:
                    continue
                if now - started >= STALE_AFTER:
                    stale.append(str(instance["DBInstanceIdentifier"]))
    except rds.AWS_ERRORS as err:
        raise rds.aws_error(err, "list the RDS instances", "DescribeDBInstances") from err
    return sorted(stale)


@contextlib.contextmanager
def snapshot_clone(
    wanted: str, say: Callable[[str], None], *, now: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Clone snapshot `wanted` (or `latest`) into a new instance; yield it, then delete it.

    Yields the scratch of `migrate --rehearse`: {"NAME": the database, "BACKUP": the
    snapshot, "PLACE": where, "SETTINGS": the Django settings that reach it}. A failure
    to delete it is put under "LEFT_BEHIND", with the command that deletes it by hand.
    Errors before the clone exists are RdsError (nothing was made).
    """
    now = now or datetime.now(UTC)
    source_id = rds.require_instance_id(settings.RDS_INSTANCE_ID)
    client = rds.rds_client(settings.AWS_REGION)
    source = rds.source_instance(client, source_id)
    snapshot = find_snapshot(client, source_id, wanted)
    wait_s = int(settings.REHEARSAL_CLONE_TIMEOUT)  # env_int: 1 or more
    for leftover in stale_clones(client, source_id, now):
        say(f"Deleting RDS instance {leftover}, left by an interrupted rehearsal.")
        try:
            rds.delete_tagged(client, leftover, [{"Key": TAG, "Value": "true"}], "the instance")
        except RdsError as err:
            say(f"{err} {rds.delete_by_hand(leftover)}")
    target = clone_identifier(source_id, now)
    request = clone_request(source, snapshot, target, now)
    name = snapshot["DBSnapshotIdentifier"]
    made = rds.aware(snapshot["SnapshotCreateTime"]).isoformat(timespec="seconds")
    scratch: dict[str, Any] = {"BACKUP": f"RDS snapshot {name} of {made}"}
    say(
        f"Cloning RDS snapshot {name} ({made}) into RDS instance {target} "
        f"({source['DBInstanceClass']}); waiting up to {wait_s}s for it..."
    )
    try:
        call(client, "restore_db_instance_from_db_snapshot", f"clone {name}", **request)
        address, port = rds.wait_available(client, target, wait_s, "REHEARSAL_CLONE_TIMEOUT")
        info = rds.endpoint_conninfo(address, port).named("choregarden-rehearse")
        scratch.update(
            NAME=info.dbname,
            PLACE=f"RDS instance {target} ({address}:{port}), database {info.dbname}",
            SETTINGS=rds.alias_settings(info, SETTING),
        )
        yield scratch
    finally:
        try:
            deleted = rds.delete_tagged(client, target, request["Tags"], "the rehearsal's instance")
        except RdsError as err:
            scratch["LEFT_BEHIND"] = f"{err} {rds.delete_by_hand(target)}"
        else:
            if deleted is False:
                scratch["LEFT_BEHIND"] = (
                    f"RDS instance {target} lacks this rehearsal's tags ({TAG}): not deleted. "
                    "Check what it is before deleting it by hand."
                )
            elif deleted:
                say(f"Deleting RDS instance {target} (no final snapshot).")
        if "LEFT_BEHIND" in scratch:
            say(scratch["LEFT_BEHIND"])
