"""Fixtures of the backup tests: databases to back up and restore into, a storage folder."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from django.core.files.storage import FileSystemStorage
from django.test import override_settings
from moto import mock_aws
from psycopg import sql

from dbops.backups import rds
from dbops.connections.config import ConnInfo
from dbops.connections.databases import drop_database
from tests.dbops.awsrds import REGION, SECOND, SOURCE, create_instance
from tests.dbops.backupkit import ENV, storages_with, target_for

SEED = """
CREATE TABLE chore (id bigint PRIMARY KEY, title text NOT NULL, due timestamptz,
                    points numeric(6, 2), tags text[], payload jsonb);
INSERT INTO chore
SELECT i, 'chore ' || i, timestamptz '2026-01-01' + i * interval '1 hour', i / 7.0,
       ARRAY['a', 'b' || i], jsonb_build_object('n', i, 'odd', i % 2 = 1)
FROM generate_series(1, 2000) AS i;
CREATE TABLE empty_table (id int);
CREATE SCHEMA audit;
CREATE TABLE audit.event (id bigserial PRIMARY KEY, what text);
INSERT INTO audit.event (what) SELECT md5(i::text) FROM generate_series(1, 300) AS i;
"""


@pytest.fixture
def source(pg_server) -> Iterator[ConnInfo]:
    """A fresh database with a few tables and rows, dropped afterwards."""
    admin = target_for(pg_server, pg_server.dbname)
    name = f"bk_src_{secrets.token_hex(4)}"
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = admin.on(name)
    with psycopg.connect(**target, autocommit=True) as conn:
        conn.execute(SEED)
    yield target
    drop_database(admin, name)


@pytest.fixture
def scratch(pg_server) -> Iterator[str]:
    """A database name for restores; dropped afterwards if it was made."""
    name = f"bk_dst_{secrets.token_hex(4)}"
    yield name
    drop_database(target_for(pg_server, pg_server.dbname), name)


@pytest.fixture
def folder(tmp_path: Path) -> FileSystemStorage:
    return FileSystemStorage(location=tmp_path / "backups")


@pytest.fixture
def project_db(pg_server, db) -> Iterator[ConnInfo]:
    """The migrated test database, with a table of ours in it (committed, then dropped)."""
    from django.conf import settings

    target = target_for(pg_server, settings.DATABASES["default"]["NAME"])
    assert target.dbname.startswith("test_")
    with psycopg.connect(**target, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE backup_probe (id int PRIMARY KEY, note text);"
            "INSERT INTO backup_probe SELECT i, md5(i::text) FROM generate_series(1, 500) i"
        )
    yield target
    with psycopg.connect(**target, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS backup_probe, backup_filler")


@pytest.fixture
def settings_folder(folder):
    with override_settings(STORAGES=storages_with(folder), BACKUP_ENV=ENV):
        yield folder


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto with a source instance in its own subnet group and security group."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with (
        mock_aws(),
        override_settings(
            AWS_REGION=REGION,
            RDS_INSTANCE_ID=SOURCE,
            BACKUP_REPLICA_REGION=SECOND,
            BACKUP_REPLICA_KMS_KEY_ID="",
        ),
    ):
        client = boto3.client("rds", region_name=REGION)
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=zone)[
                "Subnet"
            ]["SubnetId"]
            for i, zone in enumerate((f"{REGION}a", f"{REGION}b"), start=1)
        ]
        group = ec2.create_security_group(GroupName="db", Description="db", VpcId=vpc)
        client.create_db_subnet_group(
            DBSubnetGroupName="cg-private", DBSubnetGroupDescription="db", SubnetIds=subnets
        )
        create_instance(
            client,
            SOURCE,
            DBInstanceClass="db.t4g.medium",
            DBName="choregarden",
            DBSubnetGroupName="cg-private",
            VpcSecurityGroupIds=[group["GroupId"]],
            BackupRetentionPeriod=7,
            PubliclyAccessible=False,
        )
        yield {"client": client, "group": group["GroupId"]}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every RDS request the command makes, as boto3 sends it (operation, parameters)."""
    made: list[tuple[str, dict[str, Any]]] = []
    real = rds.rds_client

    def client(region: str) -> Any:
        found = real(region)

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            made.append((model.name, dict(params)))

        found.meta.events.register("provide-client-params.rds.*", record)
        return found

    monkeypatch.setattr(rds, "rds_client", client)
    return made
