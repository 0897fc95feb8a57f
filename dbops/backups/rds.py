"""RDS: the monthly point-in-time restore drill, and automated-backup replication (docs/backups.md).

On RDS, point-in-time recovery is the service's: the engine keeps the WAL and the daily
snapshots, and `restore_db_instance_to_point_in_time` makes a new instance from them. What
the project adds is the drill that proves it works: restore into a new, tagged, private
instance, wait for it, check it with the project's own checks (migrations validate, the
row count of every table, the application role can read every table), and delete it.

The AWS calls and the checks are apart on purpose: `verify_restored` takes a ConnInfo, so
it runs against any PostgreSQL (the tests' local one, since moto runs no database), and
`RestoreDrill` takes the function that turns the restored endpoint into a ConnInfo (the
command uses `endpoint_conninfo`: the owner's login, the endpoint's address).

Automated-backup replication copies the instance's snapshots and WAL to a second region
(BACKUP_REPLICA_REGION); RDS's calls for it are made on a client of that region.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    WaiterError,
)
from botocore.parsers import ResponseParserError
from django.core.exceptions import ImproperlyConfigured
from psycopg import sql

from dbops.backups import BackupError
from dbops.connections.config import ConnInfo, conninfo
from dbops.roles.privileges import classify
from sqlmigrations.redact import redact

# The drill's instance says what it is, so nobody mistakes it for a database to keep and
# the cleanup deletes nothing else (it checks the first tag before deleting).
DRILL_TAG = "choregarden:restore-drill"
# The IAM action each call needs: named when AWS refuses one.
PERMISSIONS = {
    "DescribeDBInstances": "rds:DescribeDBInstances",
    "DescribeDBInstanceAutomatedBackups": "rds:DescribeDBInstanceAutomatedBackups",
    "RestoreDBInstanceToPointInTime": "rds:RestoreDBInstanceToPointInTime and "
    "rds:AddTagsToResource (on the source instance and the target name)",
    "DeleteDBInstance": "rds:DeleteDBInstance",
    "DescribeDBSnapshots": "rds:DescribeDBSnapshots",
    "RestoreDBInstanceFromDBSnapshot": "rds:RestoreDBInstanceFromDBSnapshot and "
    "rds:AddTagsToResource (on the snapshot, the parameter group and the target name)",
    "StartDBInstanceAutomatedBackupsReplication": "rds:StartDBInstanceAutomatedBackupsReplication "
    "(in BACKUP_REPLICA_REGION), and kms:DescribeKey and kms:CreateGrant on "
    "BACKUP_REPLICA_KMS_KEY_ID for an encrypted instance",
    "StopDBInstanceAutomatedBackupsReplication": "rds:StopDBInstanceAutomatedBackupsReplication "
    "(in BACKUP_REPLICA_REGION)",
}
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
BAD_CREDENTIALS = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
}
# RDS's rule for an instance identifier: a letter first, letters, digits and single hyphens,
# no hyphen last, at most 63 characters.
IDENTIFIER = re.compile(r"[A-Za-z](?:-?[A-Za-z0-9])*")
WAIT_DELAY_SECONDS = 30
# What a boto3 call raises when AWS (or what answers in its place) refuses or fails.
AWS_ERRORS = (BotoCoreError, ClientError, ResponseParserError)


class RdsError(BackupError):
    """An RDS call or a pre-check failed; the message names the setting or permission."""


def rds_client(region: str) -> Any:
    """Return an RDS client of `region` (boto3's default chain when empty)."""
    import boto3

    try:
        return boto3.client("rds", region_name=region or None)
    except BotoCoreError as err:
        raise aws_error(err, "set up the RDS client", "") from err


def aws_error(err: Exception, doing: str, operation: str) -> RdsError:
    """Return one line: what failed, AWS's code, and which setting or permission to fix."""
    if isinstance(err, NoCredentialsError):
        hint = "no AWS credentials: run with an IAM role, or set AWS_PROFILE"
    elif isinstance(err, NoRegionError):
        hint = "no AWS region: set AWS_REGION (the region of RDS_INSTANCE_ID)"
    elif isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        message = str(err.response.get("Error", {}).get("Message", ""))
        if code in DENIED:
            hint = f"the role needs {PERMISSIONS.get(operation, operation)}"
        elif code in BAD_CREDENTIALS:
            hint = "the AWS credentials were refused (expired or wrong): renew them"
        elif code == "DBInstanceNotFound":
            hint = "check RDS_INSTANCE_ID and AWS_REGION (the instance's region)"
        else:
            hint = "check RDS_INSTANCE_ID, AWS_REGION and the role's rds: permissions"
        hint = f"{code}: {message}; {hint}" if code else hint
    elif isinstance(err, ResponseParserError):
        hint = "the answer was not RDS's (an HTTP error page?): check AWS_REGION and the network"
    else:
        hint = f"{err}; check AWS_REGION and the network"
    return RdsError(" ".join(redact(f"cannot {doing}: {hint}.").split()))


def call(client: Any, method: str, doing: str, **params: Any) -> Any:
    """Call `client.method(**params)`; AWS's refusal becomes RdsError's one line."""
    function = getattr(client, method)
    try:
        return function(**params)
    except AWS_ERRORS as err:
        operation = client.meta.method_to_api_mapping.get(method, method)
        raise aws_error(err, doing, operation) from err


def instance_identifier(text: str) -> str:
    """Check an RDS instance identifier the way RDS does (it stores it in lower case)."""
    if len(text) > 63 or not IDENTIFIER.fullmatch(text):
        raise ValueError(
            f"{text!r} is not an RDS instance identifier: 1 to 63 letters, digits and "
            "hyphens, a letter first, no hyphen last and no two in a row"
        )
    return text.lower()


def describe_instance(client: Any, identifier: str) -> dict[str, Any] | None:
    """Return the instance `identifier`, or None if there is none (in the client's region)."""
    try:
        found = client.describe_db_instances(DBInstanceIdentifier=identifier)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "DBInstanceNotFound":
            return None
        raise aws_error(err, f"describe RDS instance {identifier}", "DescribeDBInstances") from err
    except (BotoCoreError, ResponseParserError) as err:
        raise aws_error(err, f"describe RDS instance {identifier}", "DescribeDBInstances") from err
    instances: list[dict[str, Any]] = found.get("DBInstances", [])
    return instances[0] if instances else None


def require_instance_id(identifier: str) -> str:
    """RDS_INSTANCE_ID, refused when unset: checked before the region and the credentials."""
    if not identifier:
        raise ImproperlyConfigured(
            "RDS_INSTANCE_ID is not set: set it to the identifier of the project's RDS "
            "instance (its region in AWS_REGION)."
        )
    return identifier


def source_instance(client: Any, identifier: str) -> dict[str, Any]:
    """Return the source instance; refused when RDS_INSTANCE_ID is unset or not found."""
    require_instance_id(identifier)
    instance = describe_instance(client, identifier)
    if instance is None:
        raise RdsError(
            f"RDS instance {identifier} (RDS_INSTANCE_ID) does not exist in "
            f"{client.meta.region_name}: check RDS_INSTANCE_ID and AWS_REGION."
        )
    return instance


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RestoreWindow:
    """The moments RDS can restore the source to, and where the earliest one came from."""

    earliest: datetime
    latest: datetime
    retention_days: int
    earliest_from: str  # "RestoreWindow" of the automated backups, or "retention"


def restore_window(client: Any, source: dict[str, Any], now: datetime) -> RestoreWindow:
    """Read the source's restorable window; refused without automated backups.

    The latest moment is LatestRestorableTime (it trails now by about five minutes). The
    earliest is the automated backups' RestoreWindow.EarliestTime; where that is missing
    (moto, or a backup listing RDS has not filled), the later of the instance's creation
    and now minus the retention period.
    """
    name = source["DBInstanceIdentifier"]
    retention = int(source.get("BackupRetentionPeriod") or 0)
    if retention == 0:
        raise RdsError(
            f"RDS instance {name} keeps no automated backups (BackupRetentionPeriod 0): it "
            "has no point-in-time restore. Set its backup retention to 1-35 days first."
        )
    latest = source.get("LatestRestorableTime")
    if latest is None:
        raise RdsError(
            f"RDS instance {name} has no restorable time yet (its first automated backup "
            "has not finished): run the drill later."
        )
    backups = call(
        client,
        "describe_db_instance_automated_backups",
        f"list the automated backups of {name}",
        DBInstanceIdentifier=name,
    ).get("DBInstanceAutomatedBackups", [])
    earliest = None
    for backup in backups:
        window = backup.get("RestoreWindow") or {}
        local = backup.get("Region") in (None, client.meta.region_name)
        if local and window.get("EarliestTime"):
            earliest = aware(window["EarliestTime"])
    if earliest is not None:
        return RestoreWindow(earliest, aware(latest), retention, "RestoreWindow")
    created = aware(source.get("InstanceCreateTime") or now)
    return RestoreWindow(
        max(created, now - timedelta(days=retention)), aware(latest), retention, "retention"
    )


def check_in_window(when: datetime, window: RestoreWindow) -> None:
    """Refuse a moment RDS cannot restore to, naming the window."""
    span = f"{window.earliest:%Y-%m-%d %H:%M:%S} to {window.latest:%Y-%m-%d %H:%M:%S} UTC"
    if when > window.latest:
        raise RdsError(
            f"--to {when.isoformat()} is after the latest restorable time ({span} can be "
            "restored; the latest trails now by about 5 minutes): use an earlier time or "
            "--latest."
        )
    if when < window.earliest:
        raise RdsError(
            f"--to {when.isoformat()} is before the earliest restorable time ({span} can be "
            f"restored; backups are kept {window.retention_days} days): use a later time."
        )


def drill_request(
    source: dict[str, Any], target: str, when: datetime | None, now: datetime
) -> dict[str, Any]:
    """The RestoreDBInstanceToPointInTime parameters: the source's network, private, tagged."""
    request: dict[str, Any] = {
        "SourceDBInstanceIdentifier": source["DBInstanceIdentifier"],
        "TargetDBInstanceIdentifier": target,
        **private_copy(source),
        "Tags": [
            {"Key": DRILL_TAG, "Value": "true"},
            {"Key": "choregarden:drill-source", "Value": source["DBInstanceIdentifier"]},
            {"Key": "choregarden:drill-started", "Value": now.isoformat(timespec="seconds")},
        ],
    }
    if when is None:
        request["UseLatestRestorableTime"] = True
    else:
        request["RestoreTime"] = when
    return request


def private_copy(source: dict[str, Any]) -> dict[str, Any]:
    """A restore's parameters for a throwaway copy of `source`: its class and network, private.

    Single-AZ (a copy needs no standby), no deletion protection (it is deleted after), no
    minor-version upgrade while it lives, its snapshots untagged.
    """
    params: dict[str, Any] = {
        "DBInstanceClass": source["DBInstanceClass"],
        "PubliclyAccessible": False,
        "DeletionProtection": False,
        "MultiAZ": False,
        "AutoMinorVersionUpgrade": False,
        "CopyTagsToSnapshot": False,
    }
    subnets = (source.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")
    if subnets:
        params["DBSubnetGroupName"] = subnets
    groups = [g["VpcSecurityGroupId"] for g in source.get("VpcSecurityGroups", [])]
    if groups:
        params["VpcSecurityGroupIds"] = groups
    return params


def wait_available(
    client: Any, target: str, timeout: int, knob: str = "--timeout"
) -> tuple[str, int]:
    """Wait up to `timeout` s for instance `target` to be available; return its endpoint.

    `knob` is what raises the timeout, named when it ran out.
    """
    delay = min(WAIT_DELAY_SECONDS, timeout)
    try:
        client.get_waiter("db_instance_available").wait(
            DBInstanceIdentifier=target,
            WaiterConfig={"Delay": delay, "MaxAttempts": max(1, math.ceil(timeout / delay))},
        )
    except WaiterError as err:
        status = (err.last_response or {}).get("DBInstances", [{}])[0].get("DBInstanceStatus")
        raise RdsError(
            f"RDS instance {target} was not available after {timeout}s "
            f"(status {status or 'unknown'}): raise {knob} for a large database, or "
            "look at its events in the RDS console."
        ) from err
    except AWS_ERRORS as err:
        raise aws_error(err, f"wait for {target}", "DescribeDBInstances") from err
    instance = describe_instance(client, target) or {}
    endpoint = instance.get("Endpoint") or {}
    if not endpoint.get("Address"):
        raise RdsError(f"RDS instance {target} is available but has no endpoint.")
    return str(endpoint["Address"]), int(endpoint.get("Port") or 5432)


def delete_tagged(client: Any, target: str, tags: list[dict[str, str]], what: str) -> bool | None:
    """Delete instance `target` (no final snapshot) if it carries every one of `tags`.

    Returns None when there is no such instance, False when it lacks a tag (then it is
    left alone: it is not the one this run made), True when its deletion was asked.
    """
    instance = describe_instance(client, target)
    if instance is None:
        return None
    found = {t["Key"]: t["Value"] for t in instance.get("TagList", [])}
    if any(found.get(t["Key"]) != t["Value"] for t in tags):
        return False
    if instance.get("DBInstanceStatus") == "deleting":
        return True
    call(
        client,
        "delete_db_instance",
        f"delete {what} {target}",
        DBInstanceIdentifier=target,
        SkipFinalSnapshot=True,
        DeleteAutomatedBackups=True,
    )
    return True


def delete_by_hand(target: str) -> str:
    return (
        "Delete it by hand: aws rds delete-db-instance --db-instance-identifier "
        f"{target} --skip-final-snapshot --delete-automated-backups"
    )


def endpoint_conninfo(address: str, port: int) -> ConnInfo:
    """The restored instance as the owner role: the owner's login (same secret), over SSL.

    A restore has the source's roles and passwords, so the owner's login works on it; the
    address is the new endpoint. Weaker sslmodes than `require` become `require` (or
    `verify-full` when a CA bundle is configured): the drill reads every table.
    """
    owner = conninfo("owner")
    sslmode = owner.sslmode
    if sslmode not in ("require", "verify-ca", "verify-full"):
        sslmode = "verify-full" if owner.sslrootcert else "require"
    return replace(owner, host=address, port=port, sslmode=sslmode).named(
        "choregarden-restore-drill"
    )


# --- the checks of the restored database --------------------------------------------------


@dataclass
class TableCheck:
    table: str
    rows: int | None
    app_can_read: bool


@dataclass
class Verification:
    """What the checks found on the restored database."""

    migrations: int = 0
    schema_version: str | None = None  # the newest applied migration
    pending: int = 0  # files newer than the restored moment (deployed since), not a failure
    problems: list[str] = field(default_factory=list)  # validation problems, failed checks
    tables: list[TableCheck] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def unreadable(self) -> list[str]:
        return [t.table for t in self.tables if not t.app_can_read]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unreadable and bool(self.tables)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "migrations": self.migrations,
            "schema_version": self.schema_version,
            "pending": self.pending,
            "problems": self.problems,
            "tables": [vars(t) for t in self.tables],
            "seconds": self.seconds,
        }


def alias_settings(info: ConnInfo, setting: str) -> dict[str, Any]:
    """The owner alias's Django settings with `info`'s address and login: another server.

    The local-cluster, replica, secret and pooler keys go (the address and login are
    `info`'s), so the engine's options and the one-line connect errors stay the project's;
    `setting` is what an error names as the source of the address.
    """
    from django.db import connections

    from dbops.connections.config import LOCAL_KEY, OWNER_ALIAS, REPLICA_KEY, SETTING_KEY

    config = dict(connections[OWNER_ALIAS].settings_dict)
    for key in (LOCAL_KEY, REPLICA_KEY, "SECRET", "POOLER"):
        config.pop(key, None)
    options = {k: info[k] for k in ("sslmode", "sslrootcert", "application_name") if k in info}
    options["connect_timeout"] = info.connect_timeout or 10
    config.update(
        HOST=info.host,
        PORT=info.port,
        NAME=info.dbname,
        USER=info.user,
        PASSWORD=info.password,
        OPTIONS=options,
        CONN_MAX_AGE=0,
    )
    config[SETTING_KEY] = setting
    return config


@contextmanager
def django_connection(info: ConnInfo) -> Iterator[Any]:
    """A Django connection to `info` (what sqlmigrations' validate takes), for the block only.

    It is the owner alias's settings with the address and login replaced, so the history
    table, the engine's options and the one-line connect errors are the project's. It stays
    out of `connections`, under Django's alias for such side connections (NO_DB_ALIAS, as
    its _nodb_cursor does): django.contrib.postgres's connection_created receiver would
    otherwise look the alias up in `connections` and fail.
    """
    from django.db.backends.base.base import NO_DB_ALIAS
    from django.db.utils import load_backend

    config = alias_settings(info, "the restored instance")
    connection = load_backend(config["ENGINE"]).DatabaseWrapper(config, NO_DB_ALIAS)
    try:
        yield connection
    finally:
        connection.close()


def validate_migrations(info: ConnInfo, result: Verification) -> None:
    """`sqlmigrations validate` on the restored database: its history against the files."""
    from django.db import DatabaseError

    from sqlmigrations import maintenance
    from sqlmigrations.lib.exceptions import SqlMigrationError

    try:
        with django_connection(info) as connection:
            validated = maintenance.validate(connection)
            listed = maintenance.info(connection)
    except (DatabaseError, SqlMigrationError, ImproperlyConfigured) as err:
        result.problems.append(f"migrations cannot be validated: {redact(str(err))}")
        return
    result.migrations = validated.migrations
    result.problems += [f"migrations: {p}" for p in validated.problems]
    version = listed.schema_version
    result.schema_version = None if version is None else str(version)
    result.pending = listed.pending
    if version is None:
        # validate finds nothing wrong with an empty history: every file is just pending.
        result.problems.append(
            "migrations: no migration is applied in the restored database (no history "
            f"in schema {listed.schema}): it is not the project's database"
        )


READABLE = """
SELECT has_schema_privilege(%(app)s::text, %(schema)s::text, 'USAGE')
   AND has_table_privilege(
         %(app)s::text, format('%%I.%%I', %(schema)s::text, %(name)s::text), 'SELECT')
"""


def count_and_probe(info: ConnInfo, app_role: str, result: Verification) -> None:
    """Count the rows of every table (exact count(*)) and ask if the application role reads it.

    The tables are those `dbroles` gives the application (its tables, and the migration
    history it may read): extension members and other roles' objects are not its to read.
    A partitioned table's rows are counted in its partitions.
    """
    with psycopg.connect(**info, autocommit=False) as conn:
        conn.read_only = True
        found = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [app_role]).fetchone()
        if found is None:
            result.problems.append(
                f"the application role {app_role} does not exist on the restored instance"
            )
            return
        for rel in classify(conn, app=app_role):
            if rel.relkind not in ("r", "p") or rel.kind == "other":
                continue
            rows = None
            if rel.relkind == "r":
                query = sql.SQL("SELECT count(*) FROM ONLY {}").format(rel.identifier)
                rows = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
            params = {"app": app_role, "schema": rel.schema, "name": rel.name}
            readable = bool(conn.execute(READABLE, params).fetchone()[0])  # type: ignore[index]
            result.tables.append(TableCheck(rel.qualified, rows, readable))
    if not result.tables:
        result.problems.append("the restored database has no application tables")


def verify_restored(info: ConnInfo, app_role: str) -> Verification:
    """Run the drill's checks on a restored database; a failure is recorded, not raised."""
    result = Verification()
    started = time.monotonic()
    try:
        psycopg.connect(**info).close()
    except psycopg.Error as err:
        cause = " ".join(str(err).split())
        result.problems.append(
            redact(
                f"cannot connect to the restored instance as {info.user}@{info.host}:"
                f"{info.port}/{info.dbname}: {cause}. Run the drill where the source's "
                "security groups let it connect (in the VPC), with DB_SSLROOTCERT set to the "
                "RDS CA bundle"
            )
        )
        result.seconds["connect"] = round(time.monotonic() - started, 2)
        return result
    validate_migrations(info, result)
    result.seconds["validate"] = round(time.monotonic() - started, 2)
    started = time.monotonic()
    try:
        count_and_probe(info, app_role, result)
    except psycopg.Error as err:
        result.problems.append(f"tables cannot be read: {redact(str(err).strip())}")
    result.seconds["tables"] = round(time.monotonic() - started, 2)
    return result


# --- the drill -----------------------------------------------------------------------------


@dataclass
class DrillResult:
    source: str
    target: str
    region: str
    restore_time: str  # as asked: an ISO time, or "latest"
    # The moment restored to: --to, or the source's LatestRestorableTime at the pre-check
    # (with --latest RDS takes its latest when it starts: a little later).
    restored_to: str = ""
    endpoint: str = ""
    steps: dict[str, float] = field(default_factory=dict)
    verification: Verification | None = None
    error: str = ""
    created: bool = False
    kept: bool = False
    deleted: bool = False
    cleanup_error: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.error
            and not self.cleanup_error
            and self.verification is not None
            and self.verification.ok
        )

    def as_json(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k != "verification"}
        data["ok"] = self.ok
        data["verification"] = self.verification.as_json() if self.verification else None
        return data


Reach = Callable[[str, int], ConnInfo]


class RestoreDrill:
    """Restore the source to a moment into a new instance, check it, delete it (unless kept).

    The pre-checks refuse before anything is created: a target name that exists (never
    touched), a moment outside the restorable window. Once RDS accepted the restore, the
    instance is deleted in a `finally` (a failed check, an AWS error, Ctrl-C), unless `keep`.
    """

    def __init__(
        self,
        client: Any,
        source: str,
        target: str,
        when: datetime | None,
        *,
        app_role: str | None = None,
        keep: bool = False,
        timeout: int = 7200,
        reach: Reach = endpoint_conninfo,
        now: datetime | None = None,
    ) -> None:
        self.client = client
        self.source_id = source
        self.target = instance_identifier(target)
        self.when = when
        self.app_role = app_role
        self.keep = keep
        self.timeout = timeout
        self.reach = reach
        self.now = now or datetime.now(UTC)
        self.result = DrillResult(
            source=source,
            target=self.target,
            region=str(client.meta.region_name),
            restore_time=when.isoformat() if when else "latest",
            kept=keep,
        )
        self.request: dict[str, Any] = {}
        # Set before the restore call: a Ctrl-C during it may leave an instance behind.
        # The cleanup deletes only an instance carrying this run's tags.
        self.attempted = False

    def precheck(self) -> RestoreWindow:
        """Refuse a target that exists, or a moment outside the window; change nothing."""
        source = source_instance(self.client, self.source_id)
        if self.target == self.source_id.lower():
            raise RdsError(f"--target-instance {self.target} is the source instance itself.")
        if describe_instance(self.client, self.target) is not None:
            raise RdsError(
                f"RDS instance {self.target} exists already: the drill never touches an "
                "existing instance. Pick another --target-instance (or delete that one "
                "yourself if it is a drill left over)."
            )
        window = restore_window(self.client, source, self.now)
        if self.when is not None:
            check_in_window(self.when, window)
        self.result.restored_to = (self.when or window.latest).isoformat()
        self.request = drill_request(source, self.target, self.when, self.now)
        return window

    def run(self) -> DrillResult:
        """Pre-check, restore, wait, verify, and delete unless kept. Ctrl-C still deletes."""
        self.precheck()
        try:
            self._restore_wait_verify()
        except RdsError as err:
            self.result.error = str(err)
        finally:
            self._cleanup()
        return self.result

    def _step(self, name: str, started: float) -> None:
        self.result.steps[name] = round(time.monotonic() - started, 2)

    def _restore_wait_verify(self) -> None:
        started = time.monotonic()
        where = f"restore {self.source_id} into {self.target}"
        self.attempted = True
        call(self.client, "restore_db_instance_to_point_in_time", where, **self.request)
        self.result.created = True
        self._step("restore_request", started)
        started = time.monotonic()
        address, port = wait_available(self.client, self.target, self.timeout)
        self._step("wait_available", started)
        self.result.endpoint = f"{address}:{port}"
        started = time.monotonic()
        try:
            info = self.reach(address, port)
            # The application role of the settings (DB_SECRET_ID's user on RDS).
            app_role = self.app_role or conninfo("app").user
        except ImproperlyConfigured as err:
            raise RdsError(f"cannot check {self.target}: {err}") from err
        self.result.verification = verify_restored(info, app_role)
        self._step("verify", started)

    def _cleanup(self) -> None:
        """Delete the drill's instance, after checking it is the one this drill made."""
        if not self.attempted or self.keep:
            return
        started = time.monotonic()
        try:
            deleted = delete_tagged(
                self.client, self.target, self.request["Tags"], "the drill's instance"
            )
            if deleted is None:  # the restore was refused, or someone deleted it
                self.result.deleted = self.result.created
            elif deleted:
                self.result.deleted = True
            elif self.result.created:
                self.result.cleanup_error = (
                    f"RDS instance {self.target} lacks this drill's tags ({DRILL_TAG}): "
                    "not deleted. Check what it is before deleting it by hand."
                )
        except RdsError as err:
            self.result.cleanup_error = f"{err} {delete_by_hand(self.target)}"
        finally:
            self._step("delete", started)


# --- automated-backup replication to the second region -------------------------------------


def region_of(arn: str) -> str:
    """The region in an ARN (arn:aws:rds:REGION:ACCOUNT:db:NAME)."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def replica_region(source_region: str, setting: str) -> str:
    """BACKUP_REPLICA_REGION, refused when unset or the source's own region."""
    if not setting:
        raise ImproperlyConfigured(
            "BACKUP_REPLICA_REGION is not set: set it to the second region the RDS automated "
            "backups are replicated to (e.g. eu-central-1)."
        )
    if setting == source_region:
        raise ImproperlyConfigured(
            f"BACKUP_REPLICA_REGION={setting} is the region of RDS_INSTANCE_ID itself: set it "
            "to another region."
        )
    return setting


@dataclass
class Replication:
    """The source instance and its replicated automated backups in the second region."""

    source: str
    source_arn: str
    source_region: str
    region: str
    retention_days: int
    encrypted: bool
    listed_on_source: list[str]  # DBInstanceAutomatedBackupsReplications of the source
    backups: list[dict[str, Any]]  # describe_db_instance_automated_backups in the region

    @property
    def replicating(self) -> bool:
        return bool(self.backups or self.listed_on_source)

    def as_json(self) -> dict[str, Any]:
        data = dict(vars(self))
        data["replicating"] = self.replicating
        data["backups"] = [
            {
                "arn": b.get("DBInstanceAutomatedBackupsArn"),
                "status": b.get("Status"),
                "retention_days": b.get("BackupRetentionPeriod"),
                "kms_key_id": b.get("KmsKeyId"),
                "earliest": _iso((b.get("RestoreWindow") or {}).get("EarliestTime")),
                "latest": _iso((b.get("RestoreWindow") or {}).get("LatestTime")),
            }
            for b in self.backups
        ]
        return data


def _iso(value: Any) -> str | None:
    return aware(value).isoformat() if isinstance(value, datetime) else value


def replication_status(source_client: Any, replica_client: Any, source_id: str) -> Replication:
    """The source's replication list, and its automated backups found in the second region."""
    source = source_instance(source_client, source_id)
    arn = source["DBInstanceArn"]
    listed = [
        r["DBInstanceAutomatedBackupsArn"]
        for r in source.get("DBInstanceAutomatedBackupsReplications") or []
    ]
    region = replica_client.meta.region_name
    backups = []
    pages = replica_client.get_paginator("describe_db_instance_automated_backups")
    try:
        for page in pages.paginate():
            for backup in page.get("DBInstanceAutomatedBackups", []):
                # A replicated backup names the source instance's ARN (and its region).
                if backup.get("DBInstanceArn") == arn:
                    backups.append(backup)
    except AWS_ERRORS as err:
        raise aws_error(
            err, f"list the automated backups in {region}", "DescribeDBInstanceAutomatedBackups"
        ) from err
    return Replication(
        source=source["DBInstanceIdentifier"],
        source_arn=arn,
        source_region=region_of(arn) or source_client.meta.region_name,
        region=region,
        retention_days=int(source.get("BackupRetentionPeriod") or 0),
        encrypted=bool(source.get("StorageEncrypted")),
        listed_on_source=listed,
        backups=backups,
    )


def start_replication(
    source_client: Any,
    replica_client: Any,
    source_id: str,
    *,
    retention_days: int | None = None,
    kms_key_id: str = "",
) -> tuple[Replication, dict[str, Any] | None]:
    """Start replicating the source's automated backups to the replica client's region.

    Refused: no automated backups on the source, or an encrypted source without a KMS key
    of the second region. Nothing is done when the replication exists already (None).
    The call is made in the second region; SourceRegion makes botocore sign the PreSignedUrl
    RDS needs to read the source from there.
    """
    status = replication_status(source_client, replica_client, source_id)
    if status.replicating:
        return status, None
    if status.retention_days == 0:
        raise RdsError(
            f"RDS instance {status.source} keeps no automated backups (BackupRetentionPeriod "
            "0): there is nothing to replicate. Set its backup retention first."
        )
    if status.encrypted and not kms_key_id:
        raise ImproperlyConfigured(
            f"RDS instance {status.source} is encrypted: its replicated backups need a KMS "
            f"key of {status.region}. Set BACKUP_REPLICA_KMS_KEY_ID to that key's ARN."
        )
    request: dict[str, Any] = {
        "SourceDBInstanceArn": status.source_arn,
        "BackupRetentionPeriod": retention_days or status.retention_days,
        "SourceRegion": status.source_region,
    }
    if kms_key_id:
        request["KmsKeyId"] = kms_key_id
    answer = call(
        replica_client,
        "start_db_instance_automated_backups_replication",
        f"start replicating the automated backups of {status.source} to {status.region}",
        **request,
    )
    return status, answer.get("DBInstanceAutomatedBackup", {})


def stop_replication(
    source_client: Any, replica_client: Any, source_id: str
) -> tuple[Replication, dict[str, Any] | None]:
    """Stop the replication (the replicated backups stay until their retention ends)."""
    status = replication_status(source_client, replica_client, source_id)
    if not status.replicating:
        return status, None
    answer = call(
        replica_client,
        "stop_db_instance_automated_backups_replication",
        f"stop replicating the automated backups of {status.source} to {status.region}",
        SourceDBInstanceArn=status.source_arn,
    )
    return status, answer.get("DBInstanceAutomatedBackup", {})


def aware_time(text: str) -> datetime:
    """Parse `--to`: an ISO 8601 time with its zone; a naive time is refused (ValueError)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 with a zone, e.g. 2026-12-06T10:15:00+00:00"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{text!r} has no time zone: add one, e.g. {value.isoformat()}+00:00 for UTC "
            "(RDS restores to an exact moment)"
        )
    return value.astimezone(UTC)
